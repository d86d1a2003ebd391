//! component-base: what every ferrokube daemon (and the `ferrokube` CLI)
//! shares — logging setup, TLS configuration, certificate generation, a tiny
//! health/metrics server, signal handling, the body of a daemon's `main`,
//! the TLS servers' accept loop, Go-style durations, relaying HTTP upgrades
//! to a backend, and the mount table.

pub mod accept;
pub mod certs;
pub mod daemon;
pub mod duration;
pub mod http_client;
pub mod logging;
pub mod mounts;
pub mod serve;
pub mod signals;
pub mod tls;
pub mod upgrade;
