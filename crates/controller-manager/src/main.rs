use std::process::ExitCode;

use clap::Parser;
use controller_manager::options::Options;

fn main() -> ExitCode {
    let opts = Options::parse();
    component_base::daemon::run(
        "kube-controller-manager",
        opts.verbosity,
        controller_manager::run(opts),
    )
}
