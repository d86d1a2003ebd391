use std::process::ExitCode;

use local_path_provisioner::options::Options;

fn main() -> ExitCode {
    let opts = Options::parse_args(std::env::args_os());
    component_base::daemon::run(
        "local-path-provisioner",
        opts.verbosity,
        local_path_provisioner::run(opts),
    )
}
