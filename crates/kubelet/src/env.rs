//! A container's environment, as upstream's kubelet builds it: `envFrom`
//! first, then `env` in order (overriding), with `$(VAR)` references
//! expanded against what is defined so far, `valueFrom` sources resolved
//! (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef), and the
//! service link variables last.

use crate::volumes::downward;
use crate::volumes::ObjectSource;
use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectFieldSelector, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use std::collections::{BTreeMap, HashMap};

/// Node and pod facts the environment may reference.
#[derive(Debug, Clone, Default)]
pub struct EnvContext {
    pub node_name: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// `status.hostIPs`; `[host_ip]` when empty.
    pub host_ips: Vec<String>,
    /// `status.podIP`; empty when not known.
    pub pod_ip: String,
    /// `status.podIPs`; `[pod_ip]` when empty.
    pub pod_ips: Vec<String>,
    /// The node's allocatable resources (limits a container leaves unset
    /// default to these for resourceFieldRef).
    pub node_allocatable: BTreeMap<String, ApiQuantity>,
    /// Service link variables (`FOO_SERVICE_HOST`, ...), added after the
    /// container's own variables and usable in `$(VAR)` references.
    pub service_env: Vec<(String, String)>,
}

/// Why a container's configuration could not be built; the message is
/// upstream's (shown with reason CreateContainerConfigError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// The container waiting reason for this error.
    pub fn reason(&self) -> &'static str {
        "CreateContainerConfigError"
    }
}

/// Insertion-ordered variables where a later definition replaces the value
/// in place.
#[derive(Default)]
struct OrderedEnv {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl OrderedEnv {
    fn set(&mut self, k: String, v: String) {
        match self.index.get(&k) {
            Some(&i) => self.vars[i].1 = v,
            None => {
                self.index.insert(k.clone(), self.vars.len());
                self.vars.push((k, v));
            }
        }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.index.get(k).map(|&i| self.vars[i].1.as_str())
    }
}

/// Builds the container's environment, reading ConfigMaps and Secrets
/// through the API.
pub async fn container_env(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext,
) -> Result<Vec<(String, String)>, ConfigError> {
    container_env_from_source(client, pod, container, ctx).await
}

/// Names usable as environment variables: any printable ASCII except `=`
/// (upstream's relaxed rule, on by default since v1.32).
fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

struct Lookups<'a> {
    src: &'a dyn ObjectSource,
    ns: &'a str,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Lookups<'_> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let cm = self
                .src
                .config_map(self.ns, name)
                .await
                .map_err(ConfigError)?;
            self.config_maps.insert(name.to_string(), cm);
        }
        Ok(self.config_maps.get(name).and_then(|c| c.as_ref()))
    }
    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let s = self.src.secret(self.ns, name).await.map_err(ConfigError)?;
            self.secrets.insert(name.to_string(), s);
        }
        Ok(self.secrets.get(name).and_then(|s| s.as_ref()))
    }
}

/// [`container_env`] over any object source (tests use an in-memory one).
pub async fn container_env_from_source(
    src: &dyn ObjectSource,
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut look = Lookups {
        src,
        ns,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut tmp = OrderedEnv::default();

    for ef in container.env_from.iter().flatten() {
        let prefix = ef.prefix.as_deref().unwrap_or("");
        if let Some(r) = &ef.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match look.config_map(&r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        let k = format!("{prefix}{k}");
                        if valid_env_name(&k) {
                            tmp.set(k, v.clone());
                        }
                    }
                }
                None if optional => continue,
                None => return Err(ConfigError(format!("configmap {:?} not found", r.name))),
            }
        } else if let Some(r) = &ef.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match look.secret(&r.name).await? {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        let k = format!("{prefix}{k}");
                        if valid_env_name(&k) {
                            tmp.set(k, String::from_utf8_lossy(&v.0).into_owned());
                        }
                    }
                }
                None if optional => continue,
                None => return Err(ConfigError(format!("secret {:?} not found", r.name))),
            }
        }
    }

    let service: HashMap<&str, &str> = ctx
        .service_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    for var in container.env.iter().flatten() {
        let literal = var.value.as_deref().unwrap_or("");
        let value = if !literal.is_empty() {
            expand_with(literal, &mut |name: &str| {
                tmp.get(name)
                    .or_else(|| service.get(name).copied())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("$({name})"))
            })
        } else if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                field_value(f, pod, ctx).map_err(ConfigError)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) => downward::find_container(pod, name).map_err(ConfigError)?,
                    None => container,
                };
                downward::resource_value(r, target, &ctx.node_allocatable).map_err(ConfigError)?
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                let Some(cm) = look.config_map(&r.name).await? else {
                    if optional {
                        continue;
                    }
                    return Err(ConfigError(format!("configmap {:?} not found", r.name)));
                };
                match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {ns}/{}",
                            r.key, r.name
                        )))
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                let Some(s) = look.secret(&r.name).await? else {
                    if optional {
                        continue;
                    }
                    return Err(ConfigError(format!("secret {:?} not found", r.name)));
                };
                match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {ns}/{}",
                            r.key, r.name
                        )))
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        tmp.set(var.name.clone(), value);
    }

    let mut result = tmp.vars;
    let defined: std::collections::HashSet<String> =
        result.iter().map(|(k, _)| k.clone()).collect();
    for (k, v) in &ctx.service_env {
        if !defined.contains(k) {
            result.push((k.clone(), v.clone()));
        }
    }
    Ok(result)
}

/// The value of a fieldRef for an environment variable.
fn field_value(fs: &ObjectFieldSelector, pod: &Pod, ctx: &EnvContext) -> Result<String, String> {
    let path = downward::convert_field_label(fs.api_version.as_deref(), &fs.field_path)?;
    let spec = pod.spec.as_ref();
    let pod_ips: Vec<String> = if ctx.pod_ips.is_empty() {
        if ctx.pod_ip.is_empty() {
            Vec::new()
        } else {
            vec![ctx.pod_ip.clone()]
        }
    } else {
        ctx.pod_ips.clone()
    };
    let host_ips: Vec<String> = if ctx.host_ips.is_empty() {
        if ctx.host_ip.is_empty() {
            Vec::new()
        } else {
            vec![ctx.host_ip.clone()]
        }
    } else {
        ctx.host_ips.clone()
    };
    match path.as_str() {
        "spec.nodeName" => Ok(spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.node_name.clone())),
        "spec.serviceAccountName" => Ok(spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default()),
        "status.hostIP" => host_ips
            .first()
            .cloned()
            .ok_or_else(|| "can't get host IPs: node IP is not known yet".to_string()),
        "status.hostIPs" => {
            if host_ips.is_empty() {
                Err("can't get host IPs: node IP is not known yet".to_string())
            } else {
                Ok(host_ips.join(","))
            }
        }
        "status.podIP" => Ok(pod_ips.first().cloned().unwrap_or_default()),
        "status.podIPs" => Ok(pod_ips.join(",")),
        _ => downward::extract_field_path(pod, &path),
    }
}

/// Expands `$(VAR)` references in `input` with `mapping`, upstream's way:
/// `$$` is an escaped `$`, an unterminated `$(` and a `$` not followed by
/// `(` are kept as written.
pub fn expand_with(input: &str, mapping: &mut dyn FnMut(&str) -> String) -> String {
    let b = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.extend_from_slice(&b[checkpoint..cursor]);
            let rest = &b[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().skip(1).position(|&c| c == b')') {
                    Some(p) => {
                        let end = p + 1;
                        let name = String::from_utf8_lossy(&rest[1..end]).into_owned();
                        out.extend_from_slice(mapping(&name).as_bytes());
                        end + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                c => {
                    out.push(b'$');
                    out.push(c);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < b.len() {
        out.extend_from_slice(&b[checkpoint..]);
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Expands `$(VAR)` in `s` against `env` (the last definition of a name
/// wins); unknown references stay as written.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expand_with(s, &mut |name: &str| match map.get(name) {
        Some(v) => v.to_string(),
        None => format!("$({name})"),
    })
}

/// The container's command and args with `$(VAR)` expanded against its
/// environment.
pub fn expand_command_and_args(
    container: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let command = container
        .command
        .iter()
        .flatten()
        .map(|c| expand(c, env))
        .collect();
    let args = container
        .args
        .iter()
        .flatten()
        .map(|a| expand(a, env))
        .collect();
    (command, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::source::FakeSource;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, PodSpec,
        ResourceFieldSelector, ResourceRequirements, SecretEnvSource, SecretKeySelector,
    };
    use std::sync::Mutex;

    fn env(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn expansion_rules() {
        let e = vec![env("A", "a"), env("B", "b"), env("A", "a2")];
        assert_eq!(expand("$(A)-$(B)", &e), "a2-b");
        assert_eq!(expand("$$(A)", &e), "$(A)");
        assert_eq!(expand("$$$(A)", &e), "$a2");
        assert_eq!(expand("$(C)", &e), "$(C)");
        assert_eq!(expand("$(A", &e), "$(A");
        assert_eq!(expand("x$", &e), "x$");
        assert_eq!(expand("$x", &e), "$x");
        assert_eq!(expand("$", &e), "$");
        assert_eq!(expand("é$(B)ü", &e), "ébü");
        assert_eq!(expand("$()", &e), "$()");
        assert_eq!(expand("$(A)$(B)", &e), "a2b");
        assert_eq!(expand("", &e), "");
    }

    fn pod() -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                service_account_name: Some("sa".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn from_field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: path.into(),
                }),
                ..Default::default()
            }),
        }
    }

    fn lit(name: &str, v: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(v.into()),
            value_from: None,
        }
    }

    fn cm_key(name: &str, cm: &str, key: &str, optional: bool) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: cm.into(),
                    key: key.into(),
                    optional: Some(optional),
                }),
                ..Default::default()
            }),
        }
    }

    fn secret_key(name: &str, s: &str, key: &str, optional: bool) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: s.into(),
                    key: key.into(),
                    optional: Some(optional),
                }),
                ..Default::default()
            }),
        }
    }

    fn ctx() -> EnvContext {
        EnvContext {
            node_name: "node-a".into(),
            host_ip: "10.200.0.10".into(),
            pod_ip: "10.128.0.5".into(),
            node_allocatable: [
                ("cpu".to_string(), ApiQuantity("4".into())),
                ("memory".to_string(), ApiQuantity("8Gi".into())),
            ]
            .into(),
            service_env: vec![env("KUBERNETES_SERVICE_HOST", "10.96.0.1")],
            ..Default::default()
        }
    }

    fn source() -> Mutex<FakeSource> {
        let mut s = FakeSource::default();
        s.add_config_map(
            "default",
            "cfg",
            &[("color", "blue"), ("size", "L"), ("bad=key", "x")],
        );
        s.add_secret("default", "sec", &[("password", b"hunter2")]);
        Mutex::new(s)
    }

    #[tokio::test]
    async fn builds_env_in_order_with_sources() {
        let src = source();
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cfg".into(),
                        optional: None,
                    }),
                    prefix: Some("CFG_".into()),
                    secret_ref: None,
                },
                EnvFromSource {
                    config_map_ref: None,
                    prefix: None,
                    secret_ref: Some(SecretEnvSource {
                        name: "sec".into(),
                        optional: None,
                    }),
                },
            ]),
            env: Some(vec![
                lit("A", "x"),
                lit(
                    "B",
                    "$(A)-$(CFG_color)-$(LATER)-$$(A)-$(KUBERNETES_SERVICE_HOST)",
                ),
                lit("LATER", "l"),
                from_field("POD", "metadata.name"),
                from_field("NS", "metadata.namespace"),
                from_field("UID", "metadata.uid"),
                from_field("APP", "metadata.labels['app']"),
                from_field("NODE", "spec.nodeName"),
                from_field("SA", "spec.serviceAccountName"),
                from_field("HOST", "status.hostIP"),
                from_field("HOSTS", "status.hostIPs"),
                from_field("IP", "status.podIP"),
                from_field("IPS", "status.podIPs"),
                cm_key("COLOR", "cfg", "color", false),
                secret_key("PW", "sec", "password", false),
                cm_key("OPT1", "missing", "k", true),
                cm_key("OPT2", "cfg", "nokey", true),
                secret_key("OPT3", "missing", "k", true),
                lit("CFG_size", "override"),
                EnvVar {
                    name: "CPU".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        resource_field_ref: Some(ResourceFieldSelector {
                            resource: "limits.cpu".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                },
                EnvVar {
                    name: "MEM".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        resource_field_ref: Some(ResourceFieldSelector {
                            resource: "limits.memory".into(),
                            divisor: Some(ApiQuantity("1Mi".into())),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                },
            ]),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_string(), ApiQuantity("128Mi".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let out = container_env_from_source(&src, &pod(), &c, &ctx())
            .await
            .unwrap();
        let m: HashMap<_, _> = out.iter().cloned().collect();
        assert_eq!(m["CFG_color"], "blue");
        assert_eq!(m["CFG_size"], "override");
        assert!(!m.contains_key("CFG_bad=key"));
        assert_eq!(m["password"], "hunter2");
        assert_eq!(m["B"], "x-blue-$(LATER)-$(A)-10.96.0.1");
        assert_eq!(m["POD"], "p");
        assert_eq!(m["NS"], "default");
        assert_eq!(m["UID"], "u-1");
        assert_eq!(m["APP"], "web");
        assert_eq!(m["NODE"], "node-a");
        assert_eq!(m["SA"], "sa");
        assert_eq!(m["HOST"], "10.200.0.10");
        assert_eq!(m["HOSTS"], "10.200.0.10");
        assert_eq!(m["IP"], "10.128.0.5");
        assert_eq!(m["IPS"], "10.128.0.5");
        assert_eq!(m["COLOR"], "blue");
        assert_eq!(m["PW"], "hunter2");
        assert!(!m.contains_key("OPT1") && !m.contains_key("OPT2") && !m.contains_key("OPT3"));
        assert_eq!(m["CPU"], "4"); // node allocatable
        assert_eq!(m["MEM"], "128");
        // envFrom first, then env in order, then service links.
        let names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&names[..4], &["CFG_color", "CFG_size", "password", "A"]);
        assert_eq!(names.last(), Some(&"KUBERNETES_SERVICE_HOST"));
        assert_eq!(names.iter().filter(|n| **n == "CFG_size").count(), 1);
    }

    #[tokio::test]
    async fn upstream_errors() {
        let src = source();
        let run = |e: EnvVar| {
            let c = Container {
                name: "c".into(),
                env: Some(vec![e]),
                ..Default::default()
            };
            let src = &src;
            async move {
                container_env_from_source(src, &pod(), &c, &ctx())
                    .await
                    .unwrap_err()
                    .0
            }
        };
        assert_eq!(
            run(cm_key("X", "foo", "k", false)).await,
            "configmap \"foo\" not found"
        );
        assert_eq!(
            run(cm_key("X", "cfg", "bar", false)).await,
            "couldn't find key bar in ConfigMap default/cfg"
        );
        assert_eq!(
            run(secret_key("X", "s", "k", false)).await,
            "secret \"s\" not found"
        );
        assert_eq!(
            run(secret_key("X", "sec", "nope", false)).await,
            "couldn't find key nope in Secret default/sec"
        );
        assert_eq!(
            run(from_field("X", "metadata.foo")).await,
            "field label not supported: metadata.foo"
        );
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "nope".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let err = container_env_from_source(&src, &pod(), &c, &ctx())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "configmap \"nope\" not found");
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: "nope".into(),
                    optional: Some(true),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(
            container_env_from_source(&src, &pod(), &c, &ctx())
                .await
                .unwrap()
                .len()
                == 1
        );
    }

    #[test]
    fn command_and_args() {
        let c = Container {
            name: "c".into(),
            command: Some(vec!["sh".into(), "-c".into(), "echo $(MSG) $$(MSG)".into()]),
            args: Some(vec!["$(MSG)".into(), "$(NOPE)".into()]),
            ..Default::default()
        };
        let (cmd, args) = expand_command_and_args(&c, &[env("MSG", "hi")]);
        assert_eq!(cmd, vec!["sh", "-c", "echo hi $(MSG)"]);
        assert_eq!(args, vec!["hi", "$(NOPE)"]);
    }
}
