//! Building the CRI ContainerConfig of a container: command/args, env,
//! mounts, labels/annotations, resources and security context.

use std::collections::HashMap;

use cri::runtime::v1 as crirt;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::sandbox::{seccomp_profile, supplemental_groups};
use super::spec;
use crate::env::expand;
use crate::runtime::*;

/// Linux resources of a container (upstream generateLinuxContainerResources).
pub fn linux_resources(
    pod: &Pod,
    c: &Container,
    memory_capacity: u64,
) -> crirt::LinuxContainerResources {
    let mut r = crirt::LinuxContainerResources::default();
    let cpu_req = spec::request(c, "cpu")
        .map(|q| q.milli_value())
        .unwrap_or(0);
    let cpu_lim = spec::limit(c, "cpu").map(|q| q.milli_value()).unwrap_or(0);
    let mem_lim = spec::limit(c, "memory").map(|q| q.value()).unwrap_or(0);
    r.cpu_shares = if cpu_req == 0 && cpu_lim != 0 {
        spec::milli_cpu_to_shares(cpu_lim)
    } else {
        spec::milli_cpu_to_shares(cpu_req)
    };
    if cpu_lim > 0 {
        r.cpu_period = 100_000;
        r.cpu_quota = spec::milli_cpu_to_quota(cpu_lim, 100_000);
    }
    if mem_lim > 0 {
        r.memory_limit_in_bytes = mem_lim.min(i64::MAX as i128) as i64;
    }
    r.oom_score_adj = spec::oom_score_adj(spec::qos_class(pod), c, memory_capacity);
    r
}

/// The effective runAsUser / runAsGroup / runAsNonRoot of a container (container over pod).
pub fn effective_user(pod: &Pod, c: &Container) -> (Option<i64>, Option<i64>, bool) {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let user = csc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|s| s.run_as_user));
    let group = csc
        .and_then(|s| s.run_as_group)
        .or(psc.and_then(|s| s.run_as_group));
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    (user, group, non_root)
}

/// Upstream verifyRunAsNonRoot; the error is the CreateContainerConfigError message.
pub fn verify_run_as_non_root(
    pod: &Pod,
    c: &Container,
    image_uid: Option<i64>,
    image_username: &str,
) -> Result<(), String> {
    let (user, _, non_root) = effective_user(pod, c);
    if !non_root {
        return Ok(());
    }
    let full = spec::full_name(pod);
    if let Some(u) = user {
        if u == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy (pod: \"{full}\", container: {})",
                c.name
            ));
        }
        return Ok(());
    }
    match image_uid {
        Some(0) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{full}\", container: {})",
            c.name
        )),
        Some(_) => Ok(()),
        None if !image_username.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({image_username}), cannot verify user is non-root (pod: \"{full}\", container: {})",
            c.name
        )),
        None => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{full}\", container: {})",
            c.name
        )),
    }
}

/// The container's Linux security context (upstream determineEffectiveSecurityContext).
pub fn security_context(pod: &Pod, c: &Container) -> crirt::LinuxContainerSecurityContext {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let (user, group, _) = effective_user(pod, c);
    let privileged = csc.and_then(|s| s.privileged).unwrap_or(false);
    let capabilities = csc
        .and_then(|s| s.capabilities.as_ref())
        .map(|caps| crirt::Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            add_ambient_capabilities: vec![],
        });
    let seccomp = seccomp_profile(csc.and_then(|s| s.seccomp_profile.as_ref()))
        .or_else(|| seccomp_profile(psc.and_then(|s| s.seccomp_profile.as_ref())))
        .or(Some(crirt::SecurityProfile {
            profile_type: crirt::security_profile::ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        }));
    let mut ns = super::sandbox::namespace_options(pod);
    ns.target_id.clear();
    crirt::LinuxContainerSecurityContext {
        capabilities,
        privileged,
        namespace_options: Some(ns),
        run_as_user: user.map(|v| crirt::Int64Value { value: v }),
        run_as_group: group.map(|v| crirt::Int64Value { value: v }),
        readonly_rootfs: csc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        supplemental_groups: supplemental_groups(psc),
        no_new_privs: csc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        seccomp,
        ..Default::default()
    }
}

/// Inputs of [`container_config`].
pub struct ContainerParams<'a> {
    pub restart_count: u32,
    pub image_ref: &'a str,
    pub env: &'a [(String, String)],
    pub mounts: Vec<crirt::Mount>,
    pub memory_capacity: u64,
}

/// The full ContainerConfig.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    p: ContainerParams<'_>,
) -> crirt::ContainerConfig {
    let command = c
        .command
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|s| expand(s, p.env))
        .collect();
    let args = c
        .args
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|s| expand(s, p.env))
        .collect();
    let mut labels = HashMap::new();
    labels.insert(POD_NAME_LABEL.to_string(), spec::name(pod).to_string());
    labels.insert(
        POD_NAMESPACE_LABEL.to_string(),
        spec::namespace(pod).to_string(),
    );
    labels.insert(POD_UID_LABEL.to_string(), spec::uid(pod).to_string());
    labels.insert(CONTAINER_NAME_LABEL.to_string(), c.name.clone());
    let mut annotations = HashMap::new();
    annotations.insert(
        CONTAINER_HASH_ANNOTATION.to_string(),
        spec::container_hash(c),
    );
    annotations.insert(
        CONTAINER_RESTART_COUNT_ANNOTATION.to_string(),
        p.restart_count.to_string(),
    );
    annotations.insert(
        CONTAINER_TERMINATION_MESSAGE_PATH_ANNOTATION.to_string(),
        c.termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into()),
    );
    annotations.insert(
        CONTAINER_TERMINATION_MESSAGE_POLICY_ANNOTATION.to_string(),
        c.termination_message_policy
            .clone()
            .unwrap_or_else(|| "File".into()),
    );
    annotations.insert(
        POD_TERMINATION_GRACE_PERIOD_ANNOTATION.to_string(),
        spec::termination_grace_seconds(pod).to_string(),
    );
    if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty()) {
        if let Ok(j) = serde_json::to_string(ports) {
            annotations.insert(CONTAINER_PORTS_ANNOTATION.to_string(), j);
        }
    }
    if let Some(pre) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
        if let Ok(j) = serde_json::to_string(pre) {
            annotations.insert("io.kubernetes.container.preStopHandler".to_string(), j);
        }
    }
    crirt::ContainerConfig {
        metadata: Some(crirt::ContainerMetadata {
            name: c.name.clone(),
            attempt: p.restart_count,
        }),
        image: Some(crirt::ImageSpec {
            image: p.image_ref.to_string(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: p
            .env
            .iter()
            .map(|(k, v)| crirt::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts: p.mounts,
        devices: vec![],
        labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, p.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(crirt::LinuxContainerConfig {
            resources: Some(linux_resources(pod, c, p.memory_capacity)),
            security_context: Some(security_context(pod, c)),
        }),
        cdi_devices: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod_with(c: Container) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some("uid".into());
        p.spec = Some(PodSpec {
            containers: vec![c],
            ..Default::default()
        });
        p
    }

    #[test]
    fn resources() {
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), Quantity("250m".into()))].into()),
                limits: Some(
                    [
                        ("cpu".to_string(), Quantity("500m".into())),
                        ("memory".to_string(), Quantity("64Mi".into())),
                    ]
                    .into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod_with(c.clone());
        let r = linux_resources(&p, &c, 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50000);
        assert_eq!(r.cpu_period, 100000);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        // Burstable, memory request defaults to the limit: 1000 - 1000*64Mi/1Gi.
        assert_eq!(r.oom_score_adj, 938);
        let be = Container {
            name: "b".into(),
            ..Default::default()
        };
        let r = linux_resources(&pod_with(be.clone()), &be, 1 << 30);
        assert_eq!(
            (
                r.cpu_shares,
                r.cpu_quota,
                r.memory_limit_in_bytes,
                r.oom_score_adj
            ),
            (2, 0, 0, 1000)
        );
    }

    #[test]
    fn security() {
        let c = Container {
            name: "c".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(1000),
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut p = pod_with(c.clone());
        p.spec.as_mut().unwrap().security_context = Some(PodSecurityContext {
            run_as_group: Some(3000),
            fs_group: Some(2000),
            ..Default::default()
        });
        let sc = security_context(&p, &c);
        assert_eq!(sc.run_as_user.map(|v| v.value), Some(1000));
        assert_eq!(sc.run_as_group.map(|v| v.value), Some(3000));
        assert!(sc.no_new_privs);
        assert!(sc.readonly_rootfs);
        assert_eq!(sc.supplemental_groups, vec![2000]);
        assert_eq!(sc.capabilities.unwrap().drop_capabilities, vec!["ALL"]);
    }

    #[test]
    fn non_root() {
        let mut c = Container {
            name: "c".into(),
            ..Default::default()
        };
        c.security_context = Some(SecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        });
        let p = pod_with(c.clone());
        assert_eq!(
            verify_run_as_non_root(&p, &c, Some(0), "").unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"p_ns(uid)\", container: c)"
        );
        assert!(verify_run_as_non_root(&p, &c, Some(1000), "").is_ok());
        assert!(verify_run_as_non_root(&p, &c, None, "nobody")
            .unwrap_err()
            .contains("non-numeric user (nobody)"));
        c.security_context.as_mut().unwrap().run_as_user = Some(0);
        assert!(verify_run_as_non_root(&p, &c, Some(1000), "")
            .unwrap_err()
            .starts_with("container's runAsUser breaks non-root policy"));
    }

    #[test]
    fn config() {
        let c = Container {
            name: "c".into(),
            image: Some("busybox".into()),
            command: Some(vec!["sh".into(), "-c".into()]),
            args: Some(vec!["echo $(X)".into()]),
            ..Default::default()
        };
        let p = pod_with(c.clone());
        let env = vec![("X".to_string(), "y".to_string())];
        let cfg = container_config(
            &p,
            &c,
            ContainerParams {
                restart_count: 2,
                image_ref: "sha256:abc",
                env: &env,
                mounts: vec![],
                memory_capacity: 1 << 30,
            },
        );
        assert_eq!(cfg.args, vec!["echo y"]);
        assert_eq!(cfg.log_path, "c/2.log");
        assert_eq!(cfg.metadata.unwrap().attempt, 2);
        assert_eq!(
            cfg.annotations
                .get(CONTAINER_RESTART_COUNT_ANNOTATION)
                .unwrap(),
            "2"
        );
        assert_eq!(cfg.labels.get(CONTAINER_NAME_LABEL).unwrap(), "c");
        assert_eq!(cfg.image.unwrap().user_specified_image, "busybox");
    }
}
