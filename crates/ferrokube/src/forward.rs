//! Host port mappings (kind's `extraPortMappings`): a small TCP relay from
//! `listenAddress:hostPort` on the host to `nodeIP:containerPort`, run as a
//! cluster process (`ferrokube forward-port`, hidden), so `delete cluster`
//! stops it with the rest.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};

use crate::config::PortMapping;
use crate::process::{Component, Readiness};
use crate::state::{Layout, NodeState};

/// The process name of a mapping (unique: a host port is mapped once).
pub fn process_name(m: &PortMapping) -> String {
    format!("port-{}-{}", m.protocol.to_ascii_lowercase(), m.host_port)
}

/// The relay for one of `node`'s mappings.
pub fn component(
    layout: &Layout,
    node: &NodeState,
    m: &PortMapping,
    ferrokube: &std::path::Path,
) -> Component {
    let listen = SocketAddr::new(
        m.listen_address.parse().unwrap_or([0, 0, 0, 0].into()),
        m.host_port,
    );
    Component {
        name: process_name(m),
        binary: ferrokube.to_path_buf(),
        args: vec![
            "forward-port".into(),
            format!("--listen={listen}"),
            format!("--to={}:{}", node.ip, m.container_port),
        ],
        env: vec![],
        log_file: layout.log_file(&process_name(m)),
        readiness: Readiness::None,
        netns: None,
    }
}

/// Relay connections from `listen` to `to` until SIGTERM/SIGINT.
pub async fn run(listen: SocketAddr, to: SocketAddr) -> Result<()> {
    let l = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!("forwarding {listen} -> {to}");
    let accept = async {
        loop {
            let (mut inbound, peer) = match l.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                match TcpStream::connect(to).await {
                    Ok(mut outbound) => {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    Err(e) => eprintln!("{peer} -> {to}: {e}"),
                }
            });
        }
    };
    tokio::select! {
        _ = accept => Ok(()),
        _ = component_base::signals::shutdown_signal() => Ok(()),
    }
}
