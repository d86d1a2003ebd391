//! Throw-away network namespaces for the dataplane tests: created with
//! `ip netns add`, removed on drop. Code runs inside one on a dedicated
//! thread that joined it with setns(2), so all traffic stays in the netns.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct Netns {
    pub name: String,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A new netns with lo up, a veth pair `pod0`/`pod1` carrying
    /// `pod_ips` (on pod0), a "node" address on `node0`/`node1`, and routes
    /// so ClusterIPs are routable.
    pub fn new(pod_ips: &[&str], node_ip: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("fkp-test-{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&[
            "ip", "link", "add", "pod0", "type", "veth", "peer", "name", "pod1",
        ]);
        ns.exec(&["ip", "link", "set", "pod0", "up"]);
        ns.exec(&["ip", "link", "set", "pod1", "up"]);
        for ip in pod_ips {
            ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "pod0"]);
        }
        ns.exec(&[
            "ip", "link", "add", "node0", "type", "veth", "peer", "name", "node1",
        ]);
        ns.exec(&["ip", "link", "set", "node0", "up"]);
        ns.exec(&["ip", "link", "set", "node1", "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{node_ip}/24"),
            "dev",
            "node0",
        ]);
        // The service CIDR is routed (as on a node: default route).
        ns.exec(&["ip", "route", "add", "10.96.0.0/16", "dev", "node0"]);
        ns
    }

    /// A new netns with only lo up.
    pub fn bare() -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("fkp-test-{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A "pod" netns attached to bridge `bridge` of this (node) netns by a
    /// veth: `ip/24` on its eth0, default route via `gateway`.
    pub fn add_pod(&self, bridge: &str, host_if: &str, ip: &str, gateway: &str) -> Netns {
        let pod = Netns::bare();
        self.exec(&[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns",
            &pod.name,
        ]);
        self.exec(&["ip", "link", "set", host_if, "master", bridge]);
        self.exec(&["ip", "link", "set", host_if, "up"]);
        self.exec(&[
            "ip",
            "link",
            "set",
            host_if,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ]);
        pod.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        pod.exec(&["ip", "link", "set", "eth0", "up"]);
        pod.exec(&["ip", "route", "add", "default", "via", gateway]);
        pod
    }

    pub fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nft list table ip kube-proxy` ("" when absent).
    pub fn table(&self) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "nft",
                "list",
                "table",
                "ip",
                "kube-proxy",
            ])
            .output()
            .expect("nft list");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `f` on a thread inside the netns.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// A TCP server on `addr` inside the netns answering every connection
    /// with `reply` (runs until the process ends; the netns going away
    /// closes it).
    pub fn serve(&self, addr: &str, reply: &str) {
        let path = format!("/var/run/netns/{}", self.name);
        let addr: SocketAddr = addr.parse().unwrap();
        let reply = reply.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            enter(&path);
            let l = TcpListener::bind(addr).expect("bind backend");
            tx.send(()).unwrap();
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.write_all(reply.as_bytes());
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("backend listening");
    }

    /// A UDP server on `addr` inside the netns answering every datagram
    /// with `reply`.
    pub fn serve_udp(&self, addr: &str, reply: &str) {
        let path = format!("/var/run/netns/{}", self.name);
        let addr: SocketAddr = addr.parse().unwrap();
        let reply = reply.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            enter(&path);
            let s = std::net::UdpSocket::bind(addr).expect("bind udp backend");
            tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while let Ok((_, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(reply.as_bytes(), from);
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("udp backend listening");
    }

    /// A UDP socket created inside the netns (it stays there), connected
    /// to `peer`.
    pub fn udp_socket(&self, peer: &str) -> std::net::UdpSocket {
        let peer: SocketAddr = peer.parse().unwrap();
        self.run(move || {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
            s.connect(peer).expect("udp connect");
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        })
    }

    /// Connect to `addr` inside the netns and read the reply.
    pub fn get(&self, addr: &str) -> std::io::Result<String> {
        let addr: SocketAddr = addr.parse().unwrap();
        self.run(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
    }
}

fn enter(path: &str) {
    let f = std::fs::File::open(path).expect("open netns");
    // SAFETY: setns on a valid fd; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// An EndpointSlice `name` of Service `default/svc`: every address in `ips`
/// a ready endpoint on node-a, port "http" 8080/TCP.
pub fn ready_slice(
    svc: &str,
    name: &str,
    ips: &[&str],
) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    use k8s_openapi::api::discovery::v1::{
        Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
    };
    EndpointSlice {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([("kubernetes.io/service-name".to_string(), svc.to_string())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: ips
            .iter()
            .map(|ip| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                node_name: Some("node-a".into()),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}
