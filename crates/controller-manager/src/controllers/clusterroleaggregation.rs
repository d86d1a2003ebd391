//! ClusterRole aggregation controller (upstream
//! pkg/controller/clusterroleaggregation): a ClusterRole with an
//! aggregationRule gets, as its rules, the union of the rules of every other
//! ClusterRole matched by one of its clusterRoleSelectors (in name order,
//! duplicates dropped).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Patch, PatchParams};
use kube::Api;

use super::podutil;
use crate::informers::Informer;
use crate::workqueue::{run_workers, WorkQueue};
use crate::ControllerContext;

/// The aggregated rules of `role` given every ClusterRole.
pub fn aggregate(role: &ClusterRole, all: &[&ClusterRole]) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .clone()
        .unwrap_or_default();
    let mut sources: Vec<&ClusterRole> = all
        .iter()
        .copied()
        .filter(|c| c.metadata.name != role.metadata.name)
        .filter(|c| {
            selectors
                .iter()
                .any(|s| podutil::label_selector_matches(s, c.metadata.labels.as_ref()))
        })
        .collect();
    sources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for c in sources {
        for r in c.rules.iter().flatten() {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
    }
    Some(rules)
}

/// The clusterrole aggregation controller ("clusterrole-aggregation-controller").
pub async fn run(ctx: ControllerContext) -> anyhow::Result<()> {
    let roles: Informer<ClusterRole> = ctx.informers.get::<ClusterRole>();
    let mut sub = roles.subscribe();
    roles.wait_synced().await;
    let queue: WorkQueue<String> = WorkQueue::new();
    let enqueue_all = |roles: &Informer<ClusterRole>, queue: &WorkQueue<String>| {
        for r in roles.list() {
            if r.aggregation_rule.is_some() {
                queue.add(r.metadata.name.clone().unwrap_or_default());
            }
        }
    };
    enqueue_all(&roles, &queue);
    {
        let (roles, queue, stop) = (roles.clone(), queue.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    n = sub.recv() => match n {
                        Some(_) => enqueue_all(&roles, &queue),
                        None => break,
                    },
                }
            }
        });
    }
    let client = ctx.client.clone();
    run_workers(queue, 1, ctx.stop.clone(), "clusterrole-aggregation-controller", move |name: String| {
        let (client, roles) = (client.clone(), roles.clone());
        async move {
            let Some(role) = roles.get(None, &name) else { return Ok(()) };
            let all = roles.list();
            let refs: Vec<&ClusterRole> = all.iter().map(|r| r.as_ref()).collect();
            let Some(rules) = aggregate(&role, &refs) else { return Ok(()) };
            if role.rules.clone().unwrap_or_default() == rules {
                return Ok(());
            }
            let api: Api<ClusterRole> = Api::all(client);
            let patch = serde_json::json!({"metadata": {"resourceVersion": role.metadata.resource_version}, "rules": rules});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            Ok(())
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn role(name: &str, label: Option<&str>, verbs: &[&str]) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: label.map(|l| [(l.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            rules: Some(vec![PolicyRule {
                verbs: verbs.iter().map(|v| v.to_string()).collect(),
                resources: Some(vec!["pods".into()]),
                api_groups: Some(vec!["".into()]),
                ..Default::default()
            }]),
            aggregation_rule: None,
        }
    }

    #[test]
    fn unions_matching_roles() {
        let mut agg = role("view", None, &[]);
        agg.rules = None;
        agg.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some([("agg".to_string(), "true".to_string())].into()),
                ..Default::default()
            }]),
        });
        let b = role("b", Some("agg"), &["get"]);
        let a = role("a", Some("agg"), &["list"]);
        let dup = role("c", Some("agg"), &["get"]);
        let other = role("d", None, &["delete"]);
        let rules = aggregate(&agg, &[&agg, &b, &a, &dup, &other]).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].verbs, vec!["list".to_string()]);
    }
}
