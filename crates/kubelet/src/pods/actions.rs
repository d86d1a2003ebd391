//! What to do with a pod's containers, decided purely from the spec and the
//! runtime state (upstream computePodActions): which containers to kill and
//! which to (re)start, init containers one at a time first.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::spec;
use super::status::{CState, PodRuntime, RuntimeContainer};

/// A container to stop, with the Killing event message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub id: String,
    pub name: String,
    pub message: String,
    /// A liveness/startup failure or spec change (the container restarts).
    pub restart: bool,
}

/// A container to (re)start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub name: String,
    pub init: bool,
    /// The restart count of the new instance (previous + 1), if there was one.
    pub restart_count: Option<i32>,
    /// Finish time (ns) of the previous instance; `None` when it is a first
    /// start or the previous one is being killed now (back-off counts from now).
    pub previous_finished_at: Option<i64>,
    /// It exited before (back-off applies).
    pub is_restart: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    pub kill: Vec<Kill>,
    pub start: Vec<Start>,
    /// All init containers completed (regular containers may run).
    pub initialized: bool,
    /// A regular init container failed and restartPolicy is Never.
    pub init_failed: bool,
}

/// Probe verdicts the decision needs.
pub trait Probes {
    fn liveness_failed(&self, id: &str) -> Option<String>;
    fn startup_failed(&self, id: &str) -> Option<String>;
    fn started(&self, id: &str) -> bool;
}

fn restart_of(rc: Option<&RuntimeContainer>, killed_now: bool) -> (Option<i32>, Option<i64>, bool) {
    match rc {
        None => (None, None, false),
        Some(rc) => (
            Some(rc.restart_count + 1),
            if killed_now || rc.finished_at <= 0 {
                None
            } else {
                Some(rc.finished_at)
            },
            true,
        ),
    }
}

/// Checks a running container: a kill (and whether it restarts) for a failed
/// liveness/startup probe or a changed spec.
fn check_running(c: &Container, rc: &RuntimeContainer, probes: &dyn Probes) -> Option<Kill> {
    if let Some(_msg) = probes.startup_failed(&rc.id) {
        return Some(Kill {
            id: rc.id.clone(),
            name: c.name.clone(),
            message: format!(
                "Container {} failed startup probe, will be restarted",
                c.name
            ),
            restart: true,
        });
    }
    if let Some(_msg) = probes.liveness_failed(&rc.id) {
        return Some(Kill {
            id: rc.id.clone(),
            name: c.name.clone(),
            message: format!(
                "Container {} failed liveness probe, will be restarted",
                c.name
            ),
            restart: true,
        });
    }
    if !rc.hash.is_empty() && rc.hash != spec::container_hash(c) {
        return Some(Kill {
            id: rc.id.clone(),
            name: c.name.clone(),
            message: format!("Container {} definition changed, will be restarted", c.name),
            restart: true,
        });
    }
    None
}

/// Decides the actions for a pod whose sandbox is ready and that is not
/// being terminated.
pub fn compute(pod: &Pod, rt: &PodRuntime, probes: &dyn Probes) -> Actions {
    let policy = spec::restart_policy(pod);
    let mut a = Actions::default();

    // Running containers that are no longer in the spec are stopped.
    for rc in rt.running() {
        let known = spec::containers(pod)
            .iter()
            .chain(spec::init_containers(pod))
            .any(|c| c.name == rc.name);
        if !known && !a.kill.iter().any(|k| k.id == rc.id) {
            a.kill.push(Kill {
                id: rc.id.clone(),
                name: rc.name.clone(),
                message: format!("Stopping container {}", rc.name),
                restart: false,
            });
        }
    }

    let mut initialized = true;
    for c in spec::init_containers(pod) {
        let latest = rt.latest(&c.name);
        if spec::is_sidecar(c) {
            match latest {
                Some(rc) if rc.state == CState::Running => {
                    if let Some(k) = check_running(c, rc, probes) {
                        a.kill.push(k);
                        let (restart_count, _, _) = restart_of(Some(rc), true);
                        a.start.push(Start {
                            name: c.name.clone(),
                            init: true,
                            restart_count,
                            previous_finished_at: None,
                            is_restart: true,
                        });
                        initialized = false;
                        break;
                    }
                    if !probes.started(&rc.id) {
                        initialized = false;
                        break;
                    }
                }
                other => {
                    let (restart_count, previous_finished_at, is_restart) =
                        restart_of(other, false);
                    a.start.push(Start {
                        name: c.name.clone(),
                        init: true,
                        restart_count,
                        previous_finished_at,
                        is_restart,
                    });
                    initialized = false;
                    break;
                }
            }
            continue;
        }
        match latest {
            None => {
                a.start.push(Start {
                    name: c.name.clone(),
                    init: true,
                    restart_count: None,
                    previous_finished_at: None,
                    is_restart: false,
                });
                initialized = false;
                break;
            }
            Some(rc) if rc.state == CState::Running => {
                initialized = false;
                break;
            }
            Some(rc) if rc.state == CState::Exited && rc.exit_code == 0 => continue,
            Some(rc) => {
                initialized = false;
                if rc.state == CState::Exited && policy == "Never" {
                    a.init_failed = true;
                    break;
                }
                let (restart_count, previous_finished_at, _) = restart_of(Some(rc), false);
                a.start.push(Start {
                    name: c.name.clone(),
                    init: true,
                    restart_count,
                    previous_finished_at,
                    is_restart: rc.state == CState::Exited,
                });
                break;
            }
        }
    }
    // Once regular containers have started, a restarting sidecar does not
    // hold them back (upstream: the pod stays initialized).
    let regular_started = spec::containers(pod)
        .iter()
        .any(|c| rt.latest(&c.name).is_some());
    a.initialized = initialized
        || (regular_started
            && !a.init_failed
            && !a
                .start
                .iter()
                .any(|s| s.init && !is_sidecar_name(pod, &s.name)));
    if !a.initialized {
        return a;
    }

    for c in spec::containers(pod) {
        let latest = rt.latest(&c.name);
        match latest {
            None => a.start.push(Start {
                name: c.name.clone(),
                init: false,
                restart_count: None,
                previous_finished_at: None,
                is_restart: false,
            }),
            Some(rc) if rc.state == CState::Running => {
                if let Some(k) = check_running(c, rc, probes) {
                    let restart = policy != "Never" || k.message.contains("definition changed");
                    a.kill.push(k);
                    if restart {
                        a.start.push(Start {
                            name: c.name.clone(),
                            init: false,
                            restart_count: Some(rc.restart_count + 1),
                            previous_finished_at: None,
                            is_restart: true,
                        });
                    }
                }
            }
            Some(rc) if rc.state == CState::Exited => {
                let restart = match policy {
                    "Never" => false,
                    "OnFailure" => rc.exit_code != 0,
                    _ => true,
                };
                if restart {
                    let (restart_count, previous_finished_at, _) = restart_of(Some(rc), false);
                    a.start.push(Start {
                        name: c.name.clone(),
                        init: false,
                        restart_count,
                        previous_finished_at,
                        is_restart: true,
                    });
                }
            }
            Some(rc) => {
                // Created but never started, or unknown: start a new instance.
                a.start.push(Start {
                    name: c.name.clone(),
                    init: false,
                    restart_count: Some(rc.restart_count + 1),
                    previous_finished_at: None,
                    is_restart: false,
                });
            }
        }
    }

    // Sidecars stop once the regular containers are done for good.
    if policy != "Always" && !spec::containers(pod).is_empty() {
        let all_done = spec::containers(pod).iter().all(|c| {
            rt.latest(&c.name)
                .is_some_and(|rc| rc.state == CState::Exited)
                && !a.start.iter().any(|s| s.name == c.name)
        });
        if all_done {
            a.start
                .retain(|s| !(s.init && is_sidecar_name(pod, &s.name)));
            for c in spec::init_containers(pod)
                .iter()
                .rev()
                .filter(|c| spec::is_sidecar(c))
            {
                if let Some(rc) = rt.latest(&c.name).filter(|rc| rc.state == CState::Running) {
                    if !a.kill.iter().any(|k| k.id == rc.id) {
                        a.kill.push(Kill {
                            id: rc.id.clone(),
                            name: c.name.clone(),
                            message: format!("Stopping container {}", c.name),
                            restart: false,
                        });
                    }
                }
            }
        }
    }
    a
}

fn is_sidecar_name(pod: &Pod, name: &str) -> bool {
    spec::init_containers(pod)
        .iter()
        .any(|c| c.name == name && spec::is_sidecar(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use std::collections::{HashMap, HashSet};

    #[derive(Default)]
    struct P {
        live_failed: HashSet<String>,
        not_started: HashSet<String>,
    }
    impl Probes for P {
        fn liveness_failed(&self, id: &str) -> Option<String> {
            self.live_failed.contains(id).then(|| "failed".into())
        }
        fn startup_failed(&self, _: &str) -> Option<String> {
            None
        }
        fn started(&self, id: &str) -> bool {
            !self.not_started.contains(id)
        }
    }

    fn pod(init: &[(&str, bool)], cs: &[&str], policy: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.uid = Some("u".into());
        p.spec = Some(PodSpec {
            init_containers: Some(
                init.iter()
                    .map(|(n, side)| Container {
                        name: n.to_string(),
                        restart_policy: side.then(|| "Always".to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            containers: cs
                .iter()
                .map(|n| Container {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            restart_policy: Some(policy.into()),
            ..Default::default()
        });
        p
    }

    fn rc(
        pod: &Pod,
        name: &str,
        id: &str,
        state: CState,
        exit: i32,
        restarts: i32,
    ) -> RuntimeContainer {
        let c = spec::containers(pod)
            .iter()
            .chain(spec::init_containers(pod))
            .find(|c| c.name == name)
            .unwrap();
        RuntimeContainer {
            id: id.into(),
            name: name.into(),
            sandbox_id: "s".into(),
            state,
            created_at: 0,
            started_at: 1,
            finished_at: if state == CState::Exited { 5 } else { 0 },
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            restart_count: restarts,
            hash: spec::container_hash(c),
            image: String::new(),
            image_ref: String::new(),
            log_path: String::new(),
            annotations: HashMap::new(),
        }
    }

    fn names(a: &Actions) -> Vec<&str> {
        a.start.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn fresh_pod_starts_first_init_only() {
        let p = pod(&[("i1", false), ("i2", false)], &["a", "b"], "Always");
        let a = compute(&p, &PodRuntime::default(), &P::default());
        assert_eq!(names(&a), vec!["i1"]);
        assert!(!a.initialized);
        let rt = PodRuntime {
            containers: vec![rc(&p, "i1", "1", CState::Exited, 0, 0)],
            ..Default::default()
        };
        assert_eq!(names(&compute(&p, &rt, &P::default())), vec!["i2"]);
        let rt = PodRuntime {
            containers: vec![
                rc(&p, "i2", "2", CState::Exited, 0, 0),
                rc(&p, "i1", "1", CState::Exited, 0, 0),
            ],
            ..Default::default()
        };
        let a = compute(&p, &rt, &P::default());
        assert!(a.initialized);
        assert_eq!(names(&a), vec!["a", "b"]);
    }

    #[test]
    fn failed_init() {
        let p = pod(&[("i1", false)], &["a"], "Never");
        let rt = PodRuntime {
            containers: vec![rc(&p, "i1", "1", CState::Exited, 1, 0)],
            ..Default::default()
        };
        let a = compute(&p, &rt, &P::default());
        assert!(a.init_failed);
        assert!(a.start.is_empty());
        let p = pod(&[("i1", false)], &["a"], "OnFailure");
        let rt = PodRuntime {
            containers: vec![rc(&p, "i1", "1", CState::Exited, 1, 0)],
            ..Default::default()
        };
        let a = compute(&p, &rt, &P::default());
        assert_eq!(
            a.start,
            vec![Start {
                name: "i1".into(),
                init: true,
                restart_count: Some(1),
                previous_finished_at: Some(5),
                is_restart: true
            }]
        );
    }

    #[test]
    fn restart_policies() {
        for (policy, exit, restarts) in [
            ("Always", 0, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 2, false),
        ] {
            let p = pod(&[], &["a"], policy);
            let rt = PodRuntime {
                containers: vec![rc(&p, "a", "1", CState::Exited, exit, 3)],
                ..Default::default()
            };
            let a = compute(&p, &rt, &P::default());
            assert_eq!(!a.start.is_empty(), restarts, "{policy} {exit}");
            if restarts {
                assert_eq!(a.start[0].restart_count, Some(4));
            }
        }
    }

    #[test]
    fn liveness_and_hash() {
        let p = pod(&[], &["a"], "Always");
        let rt = PodRuntime {
            containers: vec![rc(&p, "a", "1", CState::Running, 0, 0)],
            ..Default::default()
        };
        assert_eq!(
            compute(&p, &rt, &P::default()),
            Actions {
                initialized: true,
                ..Default::default()
            }
        );
        let probes = P {
            live_failed: ["1".to_string()].into(),
            ..Default::default()
        };
        let a = compute(&p, &rt, &probes);
        assert_eq!(
            a.kill[0].message,
            "Container a failed liveness probe, will be restarted"
        );
        assert_eq!(a.start[0].restart_count, Some(1));
        let mut rt2 = rt.clone();
        rt2.containers[0].hash = "other".into();
        let a = compute(&p, &rt2, &P::default());
        assert_eq!(
            a.kill[0].message,
            "Container a definition changed, will be restarted"
        );
    }

    #[test]
    fn sidecars() {
        let p = pod(&[("side", true), ("i", false)], &["a"], "Never");
        let a = compute(&p, &PodRuntime::default(), &P::default());
        assert_eq!(names(&a), vec!["side"]);
        // Sidecar running but not started (startup probe pending): wait.
        let rt = PodRuntime {
            containers: vec![rc(&p, "side", "1", CState::Running, 0, 0)],
            ..Default::default()
        };
        let probes = P {
            not_started: ["1".to_string()].into(),
            ..Default::default()
        };
        assert!(compute(&p, &rt, &probes).start.is_empty());
        assert_eq!(names(&compute(&p, &rt, &P::default())), vec!["i"]);
        // Main container done with Never: the sidecar is stopped.
        let rt = PodRuntime {
            containers: vec![
                rc(&p, "a", "3", CState::Exited, 0, 0),
                rc(&p, "i", "2", CState::Exited, 0, 0),
                rc(&p, "side", "1", CState::Running, 0, 0),
            ],
            ..Default::default()
        };
        let a = compute(&p, &rt, &P::default());
        assert!(a.start.is_empty());
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].name, "side");
    }
}
