//! kube-apiserver: thin main over the `apiserver` library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let opts = apiserver::Options::parse();
    component_base::daemon::run("kube-apiserver", opts.verbosity, apiserver::run(opts))
}
