use std::process::ExitCode;

use clap::Parser;
use cloud_controller_manager::options::Options;

fn main() -> ExitCode {
    let opts = Options::parse();
    component_base::daemon::run(
        "cloud-controller-manager",
        opts.verbosity,
        cloud_controller_manager::run(opts),
    )
}
