//! Free loopback port selection.

use std::net::{Ipv4Addr, TcpListener};

use anyhow::{Context, Result};

/// Pick `n` distinct free TCP ports on 127.0.0.1 by binding port 0 and
/// reading what the kernel chose. All listeners are held until every port is
/// picked, so the ports are distinct; they are released on return, so the
/// daemons that get them can bind them.
pub fn pick_free_ports(n: usize) -> Result<Vec<u16>> {
    let mut listeners = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let l =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a free loopback port")?;
        ports.push(l.local_addr()?.port());
        listeners.push(l);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_nonzero_and_bindable() {
        let ports = pick_free_ports(5).unwrap();
        assert_eq!(ports.len(), 5);
        let mut sorted = ports.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        for p in ports {
            assert_ne!(p, 0);
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("port is free again");
        }
        assert!(pick_free_ports(0).unwrap().is_empty());
    }
}
