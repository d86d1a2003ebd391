//! The body of every daemon's `main`: logging, the tokio runtime, and the
//! exit code.

use std::future::Future;
use std::process::ExitCode;

/// Set up logging at `verbosity` (see [`crate::logging`]), run `run` to
/// completion on a multi-threaded tokio runtime and map its outcome to the
/// exit code. A failure is logged and printed to stderr as
/// `<name>: <error chain>`.
pub fn run<F>(name: &str, verbosity: u8, run: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    crate::logging::init(verbosity);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(
            run("d", 0, async {
                tokio::task::yield_now().await;
                Ok(())
            }),
            ExitCode::SUCCESS
        );
        assert_eq!(
            run("d", 0, async { Err(anyhow::anyhow!("boom")) }),
            ExitCode::FAILURE
        );
    }
}
