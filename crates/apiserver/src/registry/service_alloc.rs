//! ClusterIP and NodePort allocation for Services. Each allocated value is a
//! claim key in etcd (`<prefix>/ranges/serviceips/<ip>`,
//! `<prefix>/ranges/servicenodeports/<port>`) written in the same
//! transaction as the Service and deleted with it: a value is never held
//! twice, and restarts lose nothing.

use std::net::Ipv4Addr;

use apimachinery::errors::ApiError;
use apimachinery::FieldError;
use ipnet::Ipv4Net;
use serde_json::{json, Value};
use storage::EtcdStorage;

use super::store::Allocator;

pub struct ServiceAllocator {
    storage: EtcdStorage,
    cidr: Ipv4Net,
    ports: (u16, u16),
    ip_root: String,
    port_root: String,
}

fn needs_node_ports(obj: &Value) -> bool {
    matches!(
        obj.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort") | Some("LoadBalancer")
    )
}

/// LoadBalancer Services with externalTrafficPolicy Local get a
/// healthCheckNodePort (kube-proxy serves the local endpoint count there).
fn needs_health_check_port(obj: &Value) -> bool {
    obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer")
        && obj
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn is_external_name(obj: &Value) -> bool {
    obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName")
}

fn rand_u64() -> u64 {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl ServiceAllocator {
    /// `cidr` from --service-cluster-ip-range, `ports` from --service-node-port-range ("30000-32767").
    pub fn new(storage: EtcdStorage, cidr: &str, ports: &str) -> anyhow::Result<Self> {
        let cidr: Ipv4Net = cidr
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid --service-cluster-ip-range {cidr:?}: {e}"))?;
        let (a, b) = ports
            .split_once('-')
            .ok_or_else(|| anyhow::anyhow!("invalid --service-node-port-range {ports:?}"))?;
        let ports = (a.trim().parse()?, b.trim().parse()?);
        let root = storage.prefix().trim_end_matches('/').to_string();
        Ok(ServiceAllocator {
            storage,
            cidr,
            ports,
            ip_root: format!("{root}/ranges/serviceips/"),
            port_root: format!("{root}/ranges/servicenodeports/"),
        })
    }

    /// The first address of the range: the `kubernetes` Service's ClusterIP.
    pub fn first_ip(&self) -> Ipv4Addr {
        let n = u32::from(self.cidr.network());
        Ipv4Addr::from(n + 1)
    }

    fn ip_in_range(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(&ip) && ip != self.cidr.network() && ip != self.cidr.broadcast()
    }

    async fn taken(&self, root: &str) -> Result<std::collections::HashSet<String>, ApiError> {
        let (kvs, _) = self.storage.list(root).await.map_err(ApiError::internal)?;
        Ok(kvs
            .into_iter()
            .map(|kv| kv.key.trim_start_matches(root).to_string())
            .collect())
    }

    async fn pick_ip(&self) -> Result<Ipv4Addr, ApiError> {
        let taken = self.taken(&self.ip_root).await?;
        let base = u32::from(self.cidr.network());
        let size = (1u64 << (32 - self.cidr.prefix_len()))
            .saturating_sub(2)
            .max(1);
        let start = rand_u64() % size;
        for i in 0..size {
            let off = 1 + ((start + i) % size) as u32;
            let ip = Ipv4Addr::from(base + off);
            if !taken.contains(&ip.to_string()) && self.ip_in_range(ip) {
                return Ok(ip);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    async fn pick_port(&self, also_taken: &[u16]) -> Result<u16, ApiError> {
        let taken = self.taken(&self.port_root).await?;
        let size = (self.ports.1 - self.ports.0) as u64 + 1;
        let start = rand_u64() % size;
        for i in 0..size {
            let p = self.ports.0 + ((start + i) % size) as u16;
            if !taken.contains(&p.to_string()) && !also_taken.contains(&p) {
                return Ok(p);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }

    fn invalid(obj: &Value, field: &str, value: Value, detail: String) -> ApiError {
        ApiError::invalid(
            "Service",
            "",
            apimachinery::meta::name(obj),
            &[FieldError::invalid(field, value, detail)],
        )
    }
}

#[async_trait::async_trait]
impl Allocator for ServiceAllocator {
    async fn allocate(&self, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        if !obj.get("spec").is_some_and(Value::is_object) {
            return Ok(());
        }
        if is_external_name(obj) {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        } else {
            let old_ip = old
                .and_then(|o| o.pointer("/spec/clusterIP"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            let requested = obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ip = if requested.is_empty() {
                match old_ip {
                    Some(ip) => ip,
                    None => self.pick_ip().await?.to_string(),
                }
            } else if requested == "None" || old_ip.as_deref() == Some(requested.as_str()) {
                requested
            } else {
                let parsed: Ipv4Addr = requested.parse().map_err(|_| {
                    Self::invalid(
                        obj,
                        "spec.clusterIPs[0]",
                        json!(requested),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into(),
                    )
                })?;
                if old_ip.is_none() && !self.ip_in_range(parsed) {
                    return Err(Self::invalid(
                        obj,
                        "spec.clusterIPs",
                        json!([requested]),
                        format!(
                            "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                            self.cidr
                        ),
                    ));
                }
                requested
            };
            obj["spec"]["clusterIP"] = json!(ip);
            obj["spec"]["clusterIPs"] = json!([ip]);
        }
        let node_ports = needs_node_ports(obj);
        let old_ports: Vec<Value> = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut used: Vec<u16> = Vec::new();
        let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, p) in ports.iter_mut().enumerate() {
            if !p.is_object() {
                continue;
            }
            if !node_ports {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
                continue;
            }
            let cur = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
            if cur == 0 {
                // Keep the port's previous nodePort when the client omits it.
                let prev = old_ports
                    .iter()
                    .find(|o| {
                        o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol")
                    })
                    .and_then(|o| o.get("nodePort"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let port = if prev > 0 {
                    prev as u16
                } else {
                    self.pick_port(&used).await?
                };
                p["nodePort"] = json!(port);
                used.push(port);
            } else {
                let was_ours = old_ports
                    .iter()
                    .any(|o| o.get("nodePort").and_then(Value::as_i64) == Some(cur));
                if !was_ours && (cur < self.ports.0 as i64 || cur > self.ports.1 as i64) {
                    return Err(ApiError::invalid(
                        "Service",
                        "",
                        apimachinery::meta::name(obj),
                        &[FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            json!(cur),
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                self.ports.0, self.ports.1
                            ),
                        )],
                    ));
                }
                used.push(cur as u16);
            }
        }
        if needs_health_check_port(obj) {
            let cur = obj
                .pointer("/spec/healthCheckNodePort")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if cur == 0 {
                let prev = old
                    .filter(|o| needs_health_check_port(o))
                    .and_then(|o| o.pointer("/spec/healthCheckNodePort"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let port = if prev > 0 {
                    prev as u16
                } else {
                    self.pick_port(&used).await?
                };
                obj["spec"]["healthCheckNodePort"] = json!(port);
            }
        }
        Ok(())
    }

    fn claims(&self, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(ips) = obj.pointer("/spec/clusterIPs").and_then(Value::as_array) {
            for ip in ips.iter().filter_map(Value::as_str) {
                if ip != "None" && !ip.is_empty() {
                    out.push(format!("{}{ip}", self.ip_root));
                }
            }
        }
        if let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) {
            for p in ports {
                if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
                    let k = format!("{}{n}", self.port_root);
                    if !out.contains(&k) {
                        out.push(k);
                    }
                }
            }
        }
        if let Some(n) = obj
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n > 0)
        {
            let k = format!("{}{n}", self.port_root);
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }

    fn claim_taken(&self, obj: &Value, key: &str) -> ApiError {
        let name = apimachinery::meta::name(obj);
        if let Some(ip) = key.strip_prefix(&self.ip_root) {
            let requested = obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("");
            if requested == ip {
                return ApiError::invalid(
                    "Service",
                    "",
                    name,
                    &[FieldError::invalid(
                        "spec.clusterIPs",
                        json!([ip]),
                        format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    )],
                );
            }
        }
        if let Some(port) = key.strip_prefix(&self.port_root) {
            if let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) {
                for (i, p) in ports.iter().enumerate() {
                    if p.get("nodePort")
                        .and_then(Value::as_i64)
                        .map(|n| n.to_string())
                        .as_deref()
                        == Some(port)
                    {
                        return ApiError::invalid(
                            "Service",
                            "",
                            name,
                            &[FieldError::invalid(
                                format!("spec.ports[{i}].nodePort"),
                                json!(port.parse::<i64>().unwrap_or(0)),
                                "provided port is already allocated",
                            )],
                        );
                    }
                }
            }
        }
        // A value we picked ourselves raced with another writer: retry.
        ApiError::new(409, "Conflict", format!("allocation of {key} raced; retry"))
    }
}
