use std::process::ExitCode;

use clap::Parser;
use cluster_dns::options::Options;

fn main() -> ExitCode {
    let opts = Options::parse();
    component_base::daemon::run("cluster-dns", opts.verbosity, cluster_dns::run(opts))
}
