//! kube-proxy: programs Services into the node's packet filter (nftables).

use std::process::ExitCode;

use clap::Parser;
use proxy::options::Options;

fn main() -> ExitCode {
    let opts = Options::parse();
    component_base::daemon::run("kube-proxy", opts.verbosity, proxy::run(opts))
}
