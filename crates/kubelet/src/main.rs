use clap::Parser;

fn main() -> std::process::ExitCode {
    let opts = kubelet::Options::parse();
    component_base::logging::init(opts.verbosity);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubelet: starting runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(kubelet::run(opts)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("kubelet: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
