//! Logging setup shared by all daemons.
//!
//! The `-v` flag follows klog conventions: 0–1 log at info, 2–4 at debug,
//! 5 and above at trace. `RUST_LOG` (an `EnvFilter` directive string), when
//! set and valid, takes precedence over the verbosity flag. Chatty protocol
//! crates (h2, hyper, rustls, ...) are kept one level quieter than the rest.

use tracing_subscriber::EnvFilter;

/// The tracing level a klog-style verbosity maps to.
pub fn level_for_verbosity(verbosity: u8) -> tracing::Level {
    match verbosity {
        0 | 1 => tracing::Level::INFO,
        2..=4 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// Build the filter: `RUST_LOG` when it is set and parses, otherwise the
/// level for `verbosity`.
pub fn filter_for(verbosity: u8, rust_log: Option<&str>) -> EnvFilter {
    if let Some(directives) = rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        if let Ok(f) = EnvFilter::try_new(directives) {
            return f;
        }
    }
    let level = level_for_verbosity(verbosity);
    let mut directives = level.as_str().to_ascii_lowercase();
    // Protocol libraries are very chatty below info (every HTTP/2 frame);
    // keep them one step quieter than our own code.
    let deps = match level {
        tracing::Level::TRACE => Some("debug"),
        tracing::Level::DEBUG => Some("info"),
        _ => None,
    };
    if let Some(dep_level) = deps {
        for krate in NOISY_CRATES {
            directives.push_str(&format!(",{krate}={dep_level}"));
        }
    }
    EnvFilter::new(directives)
}

/// Third-party crates whose debug output drowns everything else.
const NOISY_CRATES: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "rustls",
    "tokio_util",
    "tower",
    "tonic",
    "mio",
    "want",
];

/// Install the global subscriber writing to stderr. Calling it more than once
/// (or after another subscriber was installed) is harmless: later calls are
/// ignored.
pub fn init(verbosity: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter_for(verbosity, rust_log.as_deref());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(verbosity >= 2)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_levels() {
        assert_eq!(level_for_verbosity(0), tracing::Level::INFO);
        assert_eq!(level_for_verbosity(1), tracing::Level::INFO);
        assert_eq!(level_for_verbosity(2), tracing::Level::DEBUG);
        assert_eq!(level_for_verbosity(4), tracing::Level::DEBUG);
        assert_eq!(level_for_verbosity(5), tracing::Level::TRACE);
        assert_eq!(level_for_verbosity(255), tracing::Level::TRACE);
    }

    #[test]
    fn rust_log_overrides_and_bad_rust_log_falls_back() {
        assert_eq!(filter_for(0, Some("warn")).to_string(), "warn");
        let f = filter_for(3, None).to_string();
        assert!(
            f.split(',').any(|d| d == "debug") && f.contains("h2=info"),
            "{f}"
        );
        let f = filter_for(6, Some("  ")).to_string();
        assert!(
            f.split(',').any(|d| d == "trace") && f.contains("hyper=debug"),
            "{f}"
        );
        // An unparsable directive must not panic; it falls back to -v.
        assert_eq!(filter_for(0, Some("[[[=")).to_string(), "info");
        init(0);
        init(3);
    }
}
