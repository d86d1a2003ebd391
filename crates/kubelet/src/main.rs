//! kubelet: thin main over the `kubelet` library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let opts = kubelet::Options::parse();
    component_base::daemon::run("kubelet", opts.verbosity, kubelet::run(opts))
}
