//! The Priority admission plugin (upstream's `Priority`).
//!
//! Pods, on create: `spec.priorityClassName` is resolved to `spec.priority`
//! and `spec.preemptionPolicy` from the PriorityClass. A pod without a class
//! gets the global default class (its name, value and policy) when one
//! exists, else priority 0 and `PreemptLowerPriority`. A class that does not
//! exist, or a pod that already carries a priority or preemption policy
//! different from the computed one, is refused with 403. On update the pod
//! keeps the priority and policy it was created with when the request
//! leaves them out (validation then forbids changing them).
//!
//! PriorityClasses, on create and update: only one class may be the global
//! default. (The value range and the reserved `system-` names are checked by
//! the PriorityClass strategy's validation, as upstream does.)
//!
//! Classes are read from the priorityclasses watch cache; a class looked up
//! by name that the cache has not seen yet is read from etcd. The global
//! default is looked up in the cache when admitting pods (upstream reads an
//! informer) and in a cache brought up to etcd's current revision when a
//! class asks to become the default.

use std::sync::Arc;

use apimachinery::errors::{ApiError, GroupResource};
use resources::ResourceInfo;
use serde_json::{json, Value};
use storage::cache::WatchCache;
use storage::EtcdStorage;

use super::admission::{AdmissionPlugin, Operation};
use super::context::RequestContext;

/// What a pod gets when no class applies.
const DEFAULT_PRIORITY: i64 = 0;
const DEFAULT_PREEMPTION_POLICY: &str = "PreemptLowerPriority";

/// The built-in PriorityClasses the bootstrap controller keeps in place.
pub fn system_priority_classes() -> Vec<Value> {
    resources::other::scheduling::SYSTEM_CLASSES
        .iter()
        .map(|(name, value)| {
            let description = match *name {
                "system-node-critical" => {
                    "For system pods a node cannot work without; they are never moved off their node."
                }
                _ => {
                    "For system pods the cluster cannot work without; they may be moved to another node when needed."
                }
            };
            json!({
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "description": description,
                "preemptionPolicy": DEFAULT_PREEMPTION_POLICY,
            })
        })
        .collect()
}

pub struct Priority {
    storage: EtcdStorage,
    classes: Arc<WatchCache>,
    key_root: String,
}

/// What a pod is given: the class name it ends up with, its priority and policy.
struct Resolved {
    class: String,
    priority: i64,
    policy: Option<String>,
}

impl Priority {
    pub fn new(storage: EtcdStorage, classes: Arc<WatchCache>) -> Self {
        let key_root = format!(
            "{}/priorityclasses/",
            storage.prefix().trim_end_matches('/')
        );
        Priority {
            storage,
            classes,
            key_root,
        }
    }

    async fn get_class(&self, name: &str) -> Result<Option<Value>, ApiError> {
        let key = format!("{}{name}", self.key_root);
        if let Ok(Some(c)) = self.classes.get(&key, None).await {
            return Ok(Some((*c.object).clone()));
        }
        let kv = self.storage.get(&key).await.map_err(ApiError::internal)?;
        Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
    }

    /// The global default class; if several claim it (two writers raced),
    /// the one with the lowest value, as upstream. `consistent`: first bring
    /// the cache up to etcd's current revision.
    async fn default_class(&self, consistent: bool) -> Result<Option<Value>, ApiError> {
        let min_rev = if consistent {
            Some(
                self.storage
                    .current_revision()
                    .await
                    .map_err(ApiError::internal)?,
            )
        } else {
            None
        };
        let (items, _) = self
            .classes
            .list(&self.key_root, min_rev)
            .await
            .map_err(|e| {
                ApiError::internal(format!("failed to get default priority class: {e}"))
            })?;
        let mut best: Option<Value> = None;
        for c in items {
            let pc = &*c.object;
            if pc.get("globalDefault").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => value_of(b) > value_of(pc),
            };
            if better {
                best = Some(pc.clone());
            }
        }
        Ok(best)
    }

    async fn resolve(&self, pod: &Value, gr: &GroupResource) -> Result<Resolved, ApiError> {
        let name = pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if name.is_empty() {
            return Ok(match self.default_class(false).await? {
                Some(pc) => Resolved {
                    class: apimachinery::meta::name(&pc).to_string(),
                    priority: value_of(&pc),
                    policy: policy_of(&pc),
                },
                None => Resolved {
                    class: String::new(),
                    priority: DEFAULT_PRIORITY,
                    policy: Some(DEFAULT_PREEMPTION_POLICY.to_string()),
                },
            });
        }
        match self.get_class(name).await? {
            Some(pc) => Ok(Resolved {
                class: name.to_string(),
                priority: value_of(&pc),
                policy: policy_of(&pc),
            }),
            None => Err(ApiError::forbidden(
                gr,
                apimachinery::meta::name(pod),
                &format!("no PriorityClass with name {name} was found"),
            )),
        }
    }

    async fn mutate_pod_create(&self, pod: &mut Value, gr: &GroupResource) -> Result<(), ApiError> {
        if !pod.get("spec").is_some_and(Value::is_object) {
            return Ok(()); // validation reports the missing spec
        }
        let r = self.resolve(pod, gr).await?;
        let pod_name = apimachinery::meta::name(pod).to_string();
        let spec = &mut pod["spec"];
        if let Some(given) = spec.get("priority").filter(|v| !v.is_null()) {
            if given.as_i64() != Some(r.priority) {
                return Err(ApiError::forbidden(
                    gr,
                    &pod_name,
                    &format!(
                        "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                        r.priority
                    ),
                ));
            }
        }
        if let Some(policy) = &r.policy {
            if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
                if given != policy {
                    return Err(ApiError::forbidden(
                        gr,
                        &pod_name,
                        &format!(
                            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                        ),
                    ));
                }
            }
        }
        let Some(m) = spec.as_object_mut() else {
            return Ok(());
        };
        if !r.class.is_empty() {
            m.insert("priorityClassName".into(), json!(r.class));
        }
        m.insert("priority".into(), json!(r.priority));
        if let Some(policy) = r.policy {
            m.insert("preemptionPolicy".into(), json!(policy));
        }
        Ok(())
    }
}

fn value_of(pc: &Value) -> i64 {
    pc.get("value").and_then(Value::as_i64).unwrap_or(0)
}

fn policy_of(pc: &Value) -> Option<String> {
    pc.get("preemptionPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn is_pods(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "pods"
}

fn is_priority_classes(info: &ResourceInfo) -> bool {
    info.group == "scheduling.k8s.io" && info.plural == "priorityclasses"
}

#[async_trait::async_trait]
impl AdmissionPlugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    async fn mutate(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if !is_pods(info) {
            return Ok(());
        }
        match op {
            Operation::Create => self.mutate_pod_create(obj, &info.group_resource()).await,
            Operation::Update => {
                // Keep what was computed at create when the request leaves it out.
                let Some(old) = old else { return Ok(()) };
                let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
                    return Ok(());
                };
                for f in ["priority", "preemptionPolicy"] {
                    if spec.get(f).is_none_or(Value::is_null) {
                        if let Some(v) = old.pointer(&format!("/spec/{f}")).filter(|v| !v.is_null())
                        {
                            spec.insert(f.into(), v.clone());
                        }
                    }
                }
                Ok(())
            }
            Operation::Delete => Ok(()),
        }
    }

    async fn admit(
        &self,
        op: Operation,
        info: &ResourceInfo,
        obj: &Value,
        _old: Option<&Value>,
        _ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if !is_priority_classes(info) || op == Operation::Delete {
            return Ok(());
        }
        if obj.get("globalDefault").and_then(Value::as_bool) != Some(true) {
            return Ok(());
        }
        let name = apimachinery::meta::name(obj);
        if let Some(dpc) = self.default_class(true).await? {
            let other = apimachinery::meta::name(&dpc);
            if op == Operation::Create || other != name {
                return Err(ApiError::forbidden(
                    &info.group_resource(),
                    name,
                    &format!(
                        "PriorityClass {other} is already marked as default. Only one default can exist"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use resources::other::scheduling::PriorityClasses;
    use resources::Strategy;

    #[test]
    fn builtin_classes_are_valid_and_match_upstream_values() {
        let classes = system_priority_classes();
        let named: Vec<(&str, i64)> = classes
            .iter()
            .map(|c| (apimachinery::meta::name(c), value_of(c)))
            .collect();
        assert_eq!(
            named,
            [
                ("system-node-critical", 2_000_001_000),
                ("system-cluster-critical", 2_000_000_000)
            ]
        );
        for c in &classes {
            assert!(PriorityClasses.validate(c).is_empty(), "{c}");
            assert!(!c["description"].as_str().unwrap().is_empty());
            assert!(c.get("globalDefault").is_none());
        }
    }
}
