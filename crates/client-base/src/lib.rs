//! client-base: what every kube-rs based ferrokube daemon (kube-scheduler,
//! kube-controller-manager, and later the kubelet) shares:
//!
//! * [`client`]: a `kube::Client` from `--kubeconfig` (or the in-cluster /
//!   default config), and the cluster CA of a kubeconfig;
//! * [`leader`]: leader election on a `coordination.k8s.io/v1` Lease with the
//!   upstream `--leader-elect*` flags and semantics;
//! * [`serving`]: the HTTPS `/healthz` `/livez` `/readyz` `/metrics` server on
//!   the secure port (`--bind-address`, `--secure-port`, `--tls-cert-file`,
//!   `--tls-private-key-file`; a self-signed certificate otherwise);
//! * [`manifests`]: creating the objects of a YAML manifest (add-ons);
//! * [`watch`]: a reflector as a background task with an event callback;
//! * [`events`]: a non-blocking core/v1 Event recorder with upstream-style
//!   aggregation of repeats.

pub mod client;
pub mod events;
pub mod leader;
pub mod manifests;
pub mod serving;
pub mod watch;

/// The host name (upstream's `os.Hostname()`), "localhost" when unknown.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let s = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if !s.is_empty() {
            return s;
        }
    }
    "localhost".into()
}
