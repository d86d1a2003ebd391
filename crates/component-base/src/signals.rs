//! Shutdown signal handling.

/// Resolves once the process receives SIGTERM or SIGINT.
///
/// If a handler cannot be installed (which should not happen on Linux), that
/// signal is simply not watched; if neither can be installed the future never
/// resolves rather than triggering a spurious shutdown.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            None
        }
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot watch SIGINT: {e}");
            None
        }
    };
    let term_fut = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let int_fut = async {
        match int.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term_fut => tracing::info!("received SIGTERM, shutting down"),
        _ = int_fut => tracing::info!("received SIGINT, shutting down"),
    }
}

/// Cancel `token` when the process receives SIGTERM or SIGINT (a daemon's
/// `run` over its `run_until`).
pub fn cancel_on_signal(token: &tokio_util::sync::CancellationToken) {
    let token = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn resolves_on_sigterm() {
        let waiter = tokio::spawn(super::shutdown_signal());
        // Give the handler time to be installed before raising the signal.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let pid = std::process::id();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("shutdown_signal resolved")
            .expect("task ok");
    }
}
