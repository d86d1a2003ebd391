//! Building the CRI PodSandboxConfig: metadata, hostname, log directory, DNS,
//! port mappings, cgroup parent, namespaces and the sandbox security context.
//! Also the kubelet-managed /etc/hosts file.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use cri::runtime::v1 as crirt;
use k8s_openapi::api::core::v1::{Pod, PodSecurityContext, SeccompProfile};

use super::spec;
use crate::runtime::{POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL};

/// Host resolver settings (from --resolv-conf).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvConf {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("").trim();
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => rc.servers.extend(f.next().map(String::from)),
                Some("search") | Some("domain") => rc.searches = f.map(String::from).collect(),
                Some("options") => rc.options.extend(f.map(String::from)),
                _ => {}
            }
        }
        rc
    }

    pub fn load(path: Option<&Path>) -> ResolvConf {
        match path {
            Some(p) => std::fs::read_to_string(p)
                .map(|t| Self::parse(&t))
                .unwrap_or_default(),
            None => ResolvConf::default(),
        }
    }
}

/// Cluster DNS settings.
#[derive(Debug, Clone, Default)]
pub struct DnsSettings {
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub host: ResolvConf,
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn merge_options(existing: Vec<String>, extra: &[(String, Option<String>)]) -> Vec<String> {
    let mut out: Vec<(String, Option<String>)> = existing
        .into_iter()
        .map(|o| match o.split_once(':') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (o, None),
        })
        .collect();
    for (n, v) in extra {
        if let Some(e) = out.iter_mut().find(|(en, _)| en == n) {
            e.1 = v.clone();
        } else {
            out.push((n.clone(), v.clone()));
        }
    }
    out.into_iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{n}:{v}"),
            None => n,
        })
        .collect()
}

/// Which DNS policy applies, and whether ClusterFirst fell back for lack of cluster DNS.
pub fn effective_dns_policy(pod: &Pod, dns: &DnsSettings) -> (&'static str, bool) {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host_net = spec::host_network(pod);
    let p = match policy {
        "None" => "None",
        "Default" => "Default",
        "ClusterFirstWithHostNet" => "ClusterFirst",
        _ if host_net => "Default",
        _ => "ClusterFirst",
    };
    if p == "ClusterFirst" && dns.cluster_dns.is_empty() {
        return ("Default", true);
    }
    (p, false)
}

/// The sandbox DNS config (upstream dns.Configurer.GetPodDNS).
pub fn dns_config(pod: &Pod, dns: &DnsSettings) -> crirt::DnsConfig {
    let (policy, _) = effective_dns_policy(pod, dns);
    let mut cfg = match policy {
        "None" => crirt::DnsConfig::default(),
        "ClusterFirst" => {
            let mut searches = Vec::new();
            if !dns.cluster_domain.is_empty() {
                let d = &dns.cluster_domain;
                searches.push(format!("{}.svc.{d}", spec::namespace(pod)));
                searches.push(format!("svc.{d}"));
                searches.push(d.clone());
            }
            searches.extend(dns.host.searches.iter().cloned());
            crirt::DnsConfig {
                servers: dns.cluster_dns.iter().map(|ip| ip.to_string()).collect(),
                searches: dedup(searches),
                options: vec!["ndots:5".into()],
            }
        }
        _ => crirt::DnsConfig {
            servers: dns.host.servers.clone(),
            searches: dns.host.searches.clone(),
            options: dns.host.options.clone(),
        },
    };
    if let Some(pc) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        let mut servers = cfg.servers;
        servers.extend(pc.nameservers.clone().unwrap_or_default());
        cfg.servers = dedup(servers);
        let mut searches = cfg.searches;
        searches.extend(pc.searches.clone().unwrap_or_default());
        cfg.searches = dedup(searches);
        let extra: Vec<(String, Option<String>)> = pc
            .options
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.name.map(|n| (n, o.value)))
            .collect();
        cfg.options = merge_options(cfg.options, &extra);
    }
    // Upstream limits: 32 search domains, 3 nameservers.
    cfg.searches.truncate(32);
    cfg.servers.truncate(3);
    cfg
}

fn protocol(p: Option<&str>) -> i32 {
    match p {
        Some("UDP") => crirt::Protocol::Udp as i32,
        Some("SCTP") => crirt::Protocol::Sctp as i32,
        _ => crirt::Protocol::Tcp as i32,
    }
}

/// Port mappings for the containers' hostPorts.
pub fn port_mappings(pod: &Pod) -> Vec<crirt::PortMapping> {
    let mut out = Vec::new();
    for c in spec::containers(pod) {
        for p in c.ports.as_deref().unwrap_or(&[]) {
            let host_port = p.host_port.unwrap_or(0);
            if host_port <= 0 {
                continue;
            }
            out.push(crirt::PortMapping {
                protocol: protocol(p.protocol.as_deref()),
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    out
}

pub fn seccomp_profile(p: Option<&SeccompProfile>) -> Option<crirt::SecurityProfile> {
    use crirt::security_profile::ProfileType;
    let p = p?;
    Some(match p.type_.as_str() {
        "RuntimeDefault" => crirt::SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        },
        "Localhost" => crirt::SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: p.localhost_profile.clone().unwrap_or_default(),
        },
        _ => crirt::SecurityProfile {
            profile_type: ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        },
    })
}

/// The namespace options of the pod (network/PID/IPC).
pub fn namespace_options(pod: &Pod) -> crirt::NamespaceOption {
    let s = pod.spec.as_ref();
    let node = crirt::NamespaceMode::Node as i32;
    let podns = crirt::NamespaceMode::Pod as i32;
    crirt::NamespaceOption {
        network: if s.and_then(|s| s.host_network).unwrap_or(false) {
            node
        } else {
            podns
        },
        pid: if s.and_then(|s| s.host_pid).unwrap_or(false) {
            node
        } else if s.and_then(|s| s.share_process_namespace).unwrap_or(false) {
            podns
        } else {
            crirt::NamespaceMode::Container as i32
        },
        ipc: if s.and_then(|s| s.host_ipc).unwrap_or(false) {
            node
        } else {
            podns
        },
        target_id: String::new(),
        userns_options: None,
    }
}

pub fn supplemental_groups(psc: Option<&PodSecurityContext>) -> Vec<i64> {
    let mut groups = Vec::new();
    if let Some(psc) = psc {
        if let Some(fs) = psc.fs_group {
            groups.push(fs);
        }
        groups.extend(psc.supplemental_groups.clone().unwrap_or_default());
    }
    groups
}

/// The pod's log directory: `<podLogsDir>/<namespace>_<name>_<uid>`.
pub fn log_directory(pod_logs_dir: &Path, pod: &Pod) -> std::path::PathBuf {
    pod_logs_dir.join(format!(
        "{}_{}_{}",
        spec::namespace(pod),
        spec::name(pod),
        spec::uid(pod)
    ))
}

/// Inputs of [`sandbox_config`] from the kubelet's configuration.
pub struct SandboxParams<'a> {
    pub pod_logs_dir: &'a Path,
    pub cgroup_root: &'a str,
    pub dns: &'a DnsSettings,
    pub attempt: u32,
}

/// The full PodSandboxConfig for a pod.
pub fn sandbox_config(pod: &Pod, p: &SandboxParams<'_>) -> crirt::PodSandboxConfig {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME_LABEL.into(), spec::name(pod).into());
    labels.insert(POD_NAMESPACE_LABEL.into(), spec::namespace(pod).into());
    labels.insert(POD_UID_LABEL.into(), spec::uid(pod).into());
    let annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();

    let host_net = spec::host_network(pod);
    let hostname = if host_net {
        String::new()
    } else {
        let (h, domain) = spec::pod_hostname_and_domain(pod, &p.dns.cluster_domain);
        let fqdn = pod
            .spec
            .as_ref()
            .and_then(|s| s.set_hostname_as_fqdn)
            .unwrap_or(false);
        match domain {
            Some(d) if fqdn => format!("{h}.{d}"),
            _ => h,
        }
    };
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let privileged = spec::containers(pod)
        .iter()
        .chain(spec::init_containers(pod))
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let seccomp = seccomp_profile(psc.and_then(|s| s.seccomp_profile.as_ref())).or(Some(
        crirt::SecurityProfile {
            profile_type: crirt::security_profile::ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        },
    ));
    let sysctls: HashMap<String, String> = psc
        .and_then(|s| s.sysctls.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    let security_context = crirt::LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(pod)),
        run_as_user: psc
            .and_then(|s| s.run_as_user)
            .map(|v| crirt::Int64Value { value: v }),
        run_as_group: psc
            .and_then(|s| s.run_as_group)
            .map(|v| crirt::Int64Value { value: v }),
        supplemental_groups: supplemental_groups(psc),
        privileged,
        seccomp,
        ..Default::default()
    };
    let qos = spec::qos_class(pod);
    crirt::PodSandboxConfig {
        metadata: Some(crirt::PodSandboxMetadata {
            name: spec::name(pod).into(),
            uid: spec::uid(pod).into(),
            namespace: spec::namespace(pod).into(),
            attempt: p.attempt,
        }),
        hostname,
        log_directory: log_directory(p.pod_logs_dir, pod)
            .to_string_lossy()
            .into_owned(),
        dns_config: Some(dns_config(pod, p.dns)),
        port_mappings: port_mappings(pod),
        labels,
        annotations,
        linux: Some(crirt::LinuxPodSandboxConfig {
            cgroup_parent: spec::cgroup_parent(p.cgroup_root, qos, spec::uid(pod)),
            security_context: Some(security_context),
            sysctls,
            overhead: None,
            resources: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodDNSConfig, PodDNSConfigOption, PodSpec,
    };

    fn pod() -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("team".into());
        p.metadata.uid = Some("u-1".into());
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    fn settings() -> DnsSettings {
        DnsSettings {
            cluster_dns: vec!["10.96.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            host: ResolvConf::parse("nameserver 1.1.1.1\nsearch example.com\noptions edns0\n"),
        }
    }

    #[test]
    fn resolv_conf() {
        let rc = ResolvConf::parse(
            "# c\nnameserver 8.8.8.8\nnameserver 8.8.4.4 ; x\nsearch a b\noptions ndots:2 rotate\n",
        );
        assert_eq!(rc.servers, vec!["8.8.8.8", "8.8.4.4"]);
        assert_eq!(rc.searches, vec!["a", "b"]);
        assert_eq!(rc.options, vec!["ndots:2", "rotate"]);
    }

    #[test]
    fn cluster_first_dns() {
        let c = dns_config(&pod(), &settings());
        assert_eq!(c.servers, vec!["10.96.0.10"]);
        assert_eq!(
            c.searches,
            vec![
                "team.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "example.com"
            ]
        );
        assert_eq!(c.options, vec!["ndots:5"]);
    }

    #[test]
    fn host_network_and_default_dns() {
        let mut p = pod();
        p.spec.as_mut().unwrap().host_network = Some(true);
        let c = dns_config(&p, &settings());
        assert_eq!(c.servers, vec!["1.1.1.1"]);
        assert_eq!(c.options, vec!["edns0"]);
        p.spec.as_mut().unwrap().dns_policy = Some("ClusterFirstWithHostNet".into());
        assert_eq!(dns_config(&p, &settings()).servers, vec!["10.96.0.10"]);
        // No cluster DNS: ClusterFirst falls back to Default.
        let mut s = settings();
        s.cluster_dns.clear();
        assert_eq!(effective_dns_policy(&pod(), &s), ("Default", true));
    }

    #[test]
    fn none_policy_with_dns_config() {
        let mut p = pod();
        let spec = p.spec.as_mut().unwrap();
        spec.dns_policy = Some("None".into());
        spec.dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["9.9.9.9".into()]),
            searches: Some(vec!["x.y".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        });
        let c = dns_config(&p, &settings());
        assert_eq!(c.servers, vec!["9.9.9.9"]);
        assert_eq!(c.searches, vec!["x.y"]);
        assert_eq!(c.options, vec!["ndots:2", "edns0"]);
        // Merging into ClusterFirst overrides ndots.
        p.spec.as_mut().unwrap().dns_policy = None;
        let c = dns_config(&p, &settings());
        assert_eq!(c.servers, vec!["10.96.0.10", "9.9.9.9"]);
        assert_eq!(c.options, vec!["ndots:2", "edns0"]);
    }

    #[test]
    fn sandbox() {
        let mut p = pod();
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![
            ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                ..Default::default()
            },
            ContainerPort {
                container_port: 53,
                protocol: Some("UDP".into()),
                ..Default::default()
            },
        ]);
        let s = settings();
        let cfg = sandbox_config(
            &p,
            &SandboxParams {
                pod_logs_dir: Path::new("/var/log/pods"),
                cgroup_root: "",
                dns: &s,
                attempt: 1,
            },
        );
        assert_eq!(cfg.hostname, "web");
        assert_eq!(cfg.log_directory, "/var/log/pods/team_web_u-1");
        assert_eq!(cfg.port_mappings.len(), 1);
        assert_eq!(cfg.port_mappings[0].host_port, 8080);
        assert_eq!(
            cfg.labels.get(POD_UID_LABEL).map(String::as_str),
            Some("u-1")
        );
        let linux = cfg.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kubepods/besteffort/podu-1");
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.pid, crirt::NamespaceMode::Container as i32);
        assert_eq!(ns.network, crirt::NamespaceMode::Pod as i32);
    }
}
