//! component-base: what every ferrokube daemon (and the `ferrokube` CLI)
//! shares — logging setup, TLS configuration, certificate generation, a tiny
//! health/metrics server and signal handling.

pub mod certs;
pub mod http_client;
pub mod logging;
pub mod serve;
pub mod signals;
pub mod tls;
