use std::process::ExitCode;

use clap::Parser;
use scheduler::options::Options;

fn main() -> ExitCode {
    let opts = Options::parse();
    component_base::daemon::run("kube-scheduler", opts.verbosity, scheduler::run(opts))
}
