//! The host side of the `local` provider: network namespaces and the main
//! routing table, through iproute2 (`ip -j`). Every route we write carries
//! our route protocol number, and every delete names it, so the kernel
//! never lets us remove a route someone else installed.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::Ipv4Net;
use serde_json::Value;

/// Runs `ip args...`; stdout on success, stderr in the error otherwise.
async fn ip(args: &[String]) -> Result<String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Whether the named network namespace exists.
pub fn netns_exists(dir: &Path, ns: &str) -> bool {
    !ns.contains('/') && dir.join(ns).exists()
}

/// An interface inside a node's netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Administratively up.
    pub up: bool,
    pub ipv4: Vec<Ipv4Addr>,
}

/// Parses `ip -j -4 addr show dev X` output.
pub fn parse_iface(json: &str) -> Result<Option<Iface>> {
    let v: Value = serde_json::from_str(json.trim()).context("parsing ip -j addr output")?;
    let Some(link) = v.as_array().and_then(|a| a.first()) else {
        return Ok(None);
    };
    let up = link
        .get("flags")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("UP")));
    let ipv4 = link
        .get("addr_info")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|i| i.get("family").and_then(Value::as_str) == Some("inet"))
                .filter_map(|i| i.get("local").and_then(Value::as_str))
                .filter_map(|s| s.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Iface { up, ipv4 }))
}

/// The interface `iface` in netns `ns`; None when the netns exists but the
/// interface does not.
pub async fn netns_iface(ns: &str, iface: &str) -> Result<Option<Iface>> {
    let args = s(&["-j", "-n", ns, "-4", "addr", "show", "dev", iface]);
    match ip(&args).await {
        Ok(out) => parse_iface(&out),
        Err(e) if e.to_string().contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

/// A route of ours in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub dst: Ipv4Net,
    /// Next hops (gateway, device); empty for unreachable routes.
    pub hops: Vec<(Ipv4Addr, String)>,
    pub unreachable: bool,
}

/// Parses `ip -j -4 route show` output.
pub fn parse_routes(json: &str) -> Result<Vec<KernelRoute>> {
    let text = json.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text).context("parsing ip -j route output")?;
    let mut out = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        let Some(dst) = r.get("dst").and_then(Value::as_str) else {
            continue;
        };
        let dst: Ipv4Net = if dst.contains('/') {
            match dst.parse() {
                Ok(d) => d,
                Err(_) => continue,
            }
        } else {
            match dst.parse::<Ipv4Addr>() {
                Ok(a) => Ipv4Net::from(a),
                Err(_) => continue,
            }
        };
        let hop = |h: &Value| -> Option<(Ipv4Addr, String)> {
            Some((
                h.get("gateway")?.as_str()?.parse().ok()?,
                h.get("dev")?.as_str()?.to_string(),
            ))
        };
        let mut hops: Vec<(Ipv4Addr, String)> = Vec::new();
        if let Some(nh) = r.get("nexthops").and_then(Value::as_array) {
            hops.extend(nh.iter().filter_map(hop));
        } else if let Some(h) = hop(r) {
            hops.push(h);
        }
        let unreachable = matches!(
            r.get("type").and_then(Value::as_str),
            Some("unreachable" | "blackhole" | "prohibit")
        );
        out.push(KernelRoute {
            dst,
            hops,
            unreachable,
        });
    }
    Ok(out)
}

/// Our routes (protocol `proto`) in the main table.
pub async fn list_routes(proto: u8) -> Result<Vec<KernelRoute>> {
    let out = ip(&s(&[
        "-j",
        "-4",
        "route",
        "show",
        "table",
        "main",
        "proto",
        &proto.to_string(),
    ]))
    .await?;
    parse_routes(&out)
}

/// The `ip route replace` arguments for `dst` via `hops` on `dev`
/// (ECMP for several hops, `unreachable` for none).
pub fn replace_args(dst: Ipv4Net, hops: &[Ipv4Addr], dev: &str, proto: u8) -> Vec<String> {
    let mut hops: Vec<Ipv4Addr> = hops.to_vec();
    hops.sort();
    hops.dedup();
    let mut a = s(&["-4", "route", "replace"]);
    match hops.len() {
        0 => {
            a.push("unreachable".into());
            a.push(dst.to_string());
        }
        1 => {
            a.extend([
                dst.to_string(),
                "via".into(),
                hops[0].to_string(),
                "dev".into(),
                dev.into(),
            ]);
        }
        _ => {
            // `ip` reads everything after the first `nexthop` as nexthops:
            // the route's own options go before them.
            a.push(dst.to_string());
            a.extend(s(&["table", "main", "proto", &proto.to_string()]));
            for h in &hops {
                a.extend([
                    "nexthop".into(),
                    "via".into(),
                    h.to_string(),
                    "dev".into(),
                    dev.into(),
                ]);
            }
        }
    }
    if hops.len() < 2 {
        a.extend(s(&["table", "main", "proto", &proto.to_string()]));
    }
    a
}

/// Installs (replaces) a route of ours.
pub async fn replace_route(dst: Ipv4Net, hops: &[Ipv4Addr], dev: &str, proto: u8) -> Result<()> {
    ip(&replace_args(dst, hops, dev, proto)).await.map(|_| ())
}

/// Deletes our route to `dst` (no error when there is none).
pub async fn delete_route(dst: Ipv4Net, proto: u8) -> Result<()> {
    let args = s(&[
        "-4",
        "route",
        "del",
        &dst.to_string(),
        "table",
        "main",
        "proto",
        &proto.to_string(),
    ]);
    match ip(&args).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("No such process") => Ok(()),
        Err(e) => Err(anyhow!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let r = parse_routes(r#"[{"dst":"10.255.250.128/28","gateway":"10.255.250.10","dev":"fkccmx","flags":[]},{"dst":"10.255.250.200","flags":[],"nexthops":[{"gateway":"10.255.250.10","dev":"fkccmx","weight":1,"flags":[]},{"gateway":"10.255.250.11","dev":"fkccmx","weight":1,"flags":[]}]},{"type":"unreachable","dst":"10.255.250.201","flags":[]}]"#).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].dst.to_string(), "10.255.250.128/28");
        assert_eq!(
            r[0].hops,
            vec![("10.255.250.10".parse().unwrap(), "fkccmx".into())]
        );
        assert_eq!(r[1].dst.to_string(), "10.255.250.200/32");
        assert_eq!(r[1].hops.len(), 2);
        assert!(r[2].unreachable && r[2].hops.is_empty());
        assert!(parse_routes("").unwrap().is_empty());
        let i = parse_iface(r#"[{"ifname":"eth0","flags":["BROADCAST","UP"],"addr_info":[{"family":"inet","local":"10.255.250.10","prefixlen":24}]}]"#).unwrap().unwrap();
        assert!(i.up);
        assert_eq!(i.ipv4, vec!["10.255.250.10".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(parse_iface("[]").unwrap(), None);
    }

    #[test]
    fn route_commands() {
        let d: Ipv4Net = "10.0.0.200/32".parse().unwrap();
        let a = |h: &[&str]| {
            let hops: Vec<Ipv4Addr> = h.iter().map(|x| x.parse().unwrap()).collect();
            replace_args(d, &hops, "br0", 147).join(" ")
        };
        assert_eq!(
            a(&[]),
            "-4 route replace unreachable 10.0.0.200/32 table main proto 147"
        );
        assert_eq!(
            a(&["10.0.0.10"]),
            "-4 route replace 10.0.0.200/32 via 10.0.0.10 dev br0 table main proto 147"
        );
        assert_eq!(
            a(&["10.0.0.11", "10.0.0.10", "10.0.0.11"]),
            "-4 route replace 10.0.0.200/32 table main proto 147 nexthop via 10.0.0.10 dev br0 nexthop via 10.0.0.11 dev br0"
        );
    }
}
