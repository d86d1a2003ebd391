//! Lifecycle hooks (postStart, preStop): exec in the container, HTTP GET
//! against the pod, or sleep. Errors carry upstream's messages.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::spec;
use crate::runtime::Runtime;

/// Resolves a named or numeric port against the container's ports.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port number: {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            c.ports
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", c.name))
        }
    }
}

/// Runs a hook; on failure returns upstream's error message.
pub async fn run(
    runtime: &Runtime,
    pod: &Pod,
    c: &Container,
    container_id: &str,
    pod_ip: Option<&str>,
    handler: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
    let full = spec::full_name(pod);
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let shown = format!("[{}]", cmd.join(" "));
        let res = runtime.exec_sync(container_id, cmd.clone(), timeout).await;
        return match res {
            Ok(r) if r.exit_code == 0 => Ok(()),
            Ok(r) => {
                let mut out = r.stdout;
                out.extend_from_slice(&r.stderr);
                let out = String::from_utf8_lossy(&out).into_owned();
                Err(format!(
                    "Exec lifecycle hook ({shown}) for Container {:?} in Pod {:?} failed - error: command '{}' exited with {}: {out}, message: {out:?}",
                    c.name,
                    full,
                    cmd.join(" "),
                    r.exit_code
                ))
            }
            Err(e) => Err(format!(
                "Exec lifecycle hook ({shown}) for Container {:?} in Pod {:?} failed - error: {e}, message: \"\"",
                c.name, full
            )),
        };
    }
    if let Some(http) = &handler.http_get {
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        let fail = |e: String| {
            format!(
                "HTTP lifecycle hook ({path}) for Container {:?} in Pod {:?} failed - error: {e}",
                c.name, full
            )
        };
        let port = resolve_port(&http.port, c).map_err(fail)?;
        let host = http
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| pod_ip.map(String::from))
            .unwrap_or_default();
        if http
            .scheme
            .as_deref()
            .unwrap_or("HTTP")
            .eq_ignore_ascii_case("HTTPS")
        {
            return Err(fail("HTTPS lifecycle hooks are not supported".into()));
        }
        let addr: SocketAddr = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(mut it) => it
                    .next()
                    .ok_or_else(|| fail(format!("no address for host {host:?}")))?,
                Err(e) => return Err(fail(e.to_string())),
            },
        };
        return match component_base::http_client::get(addr, &path, None, timeout).await {
            Ok(r) if (200..400).contains(&r.status) => Ok(()),
            Ok(r) => Err(fail(format!(
                "HTTP lifecycle hook failed with status {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ))),
            Err(e) => Err(fail(format!("{e:#}"))),
        };
    }
    if let Some(sleep) = &handler.sleep {
        let d = Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout);
        tokio::time::sleep(d).await;
        return Ok(());
    }
    if let Some(tcp) = &handler.tcp_socket {
        // Deprecated; upstream only checks it can connect.
        let port = resolve_port(&tcp.port, c)?;
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| pod_ip.map(String::from))
            .unwrap_or_default();
        let fut = tokio::net::TcpStream::connect((host.as_str(), port));
        return match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout".into()),
        };
    }
    Err("invalid handler: no action".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn ports() {
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert!(resolve_port(&IntOrString::String("x".into()), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
    }
}
