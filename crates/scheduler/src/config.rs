//! KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1): profiles
//! with schedulerName, plugin enable/disable (multiPoint and per extension
//! point, `*` disables all defaults), score weights, pluginConfig args and
//! percentageOfNodesToScore; turned into one [`Framework`] per profile.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::framework::runtime::Framework;
use crate::listers::Listers;
use crate::plugins::{new_plugin, DEFAULT_PLUGINS};

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeSchedulerConfiguration {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i64>,
    #[serde(default)]
    pub profiles: Vec<Profile>,
    #[serde(default)]
    pub client_connection: Option<ClientConnection>,
    #[serde(default)]
    pub leader_election: Option<serde_json::Value>,
    #[serde(default)]
    pub parallelism: Option<i64>,
    #[serde(default)]
    pub pod_initial_backoff_seconds: Option<u64>,
    #[serde(default)]
    pub pod_max_backoff_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnection {
    #[serde(default)]
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub qps: Option<f64>,
    #[serde(default)]
    pub burst: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub scheduler_name: Option<String>,
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i64>,
    #[serde(default)]
    pub plugins: Option<HashMap<String, PluginSet>>,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRef {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

impl KubeSchedulerConfiguration {
    pub fn parse(text: &str) -> anyhow::Result<KubeSchedulerConfiguration> {
        let c: KubeSchedulerConfiguration = serde_yaml::from_str(text)?;
        if let Some(k) = c.kind.as_deref() {
            anyhow::ensure!(k == "KubeSchedulerConfiguration", "unexpected kind {k:?}");
        }
        if let Some(v) = c.api_version.as_deref() {
            anyhow::ensure!(
                v.starts_with("kubescheduler.config.k8s.io/"),
                "no kind \"KubeSchedulerConfiguration\" is registered for version {v:?}"
            );
        }
        if let Some(p) = c.percentage_of_nodes_to_score {
            anyhow::ensure!(
                (0..=100).contains(&p),
                "percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"
            );
        }
        Ok(c)
    }

    /// One framework per profile (a default profile when none is given).
    pub fn frameworks(&self, listers: &Listers) -> anyhow::Result<Vec<Arc<Framework>>> {
        let profiles = if self.profiles.is_empty() {
            vec![Profile::default()]
        } else {
            self.profiles.clone()
        };
        let mut out = Vec::new();
        let mut names = std::collections::HashSet::new();
        for p in &profiles {
            let name = p
                .scheduler_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.into());
            anyhow::ensure!(
                names.insert(name.clone()),
                "profiles[].schedulerName: Duplicate value: {name:?}"
            );
            let pct = p
                .percentage_of_nodes_to_score
                .or(self.percentage_of_nodes_to_score)
                .unwrap_or(0)
                .clamp(0, 100) as usize;
            let plugins = resolve_plugins(p);
            let mut built = Vec::new();
            for (pname, weight, off) in plugins {
                let args = p
                    .plugin_config
                    .iter()
                    .find(|c| c.name == pname)
                    .and_then(|c| c.args.as_ref());
                let plugin = new_plugin(&pname, args, listers).ok_or_else(|| {
                    anyhow::anyhow!("profile {name:?}: plugin {pname:?} is not registered")
                })?;
                built.push((plugin, weight, off));
            }
            out.push(Arc::new(Framework::with_points(&name, built, pct)));
        }
        Ok(out)
    }
}

/// Extension points a profile may configure (besides `multiPoint`).
pub const POINTS: &[&str] = &[
    "preEnqueue",
    "queueSort",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
    "postBind",
];

/// A resolved plugin: name, score weight, extension points it is disabled at.
pub type ResolvedPlugin = (String, i64, Vec<String>);

/// Upstream's merge: start from the defaults; `multiPoint` disables
/// (`*` = all defaults), enables and re-weights; a per-point set disables
/// plugins at that point only (`*` = every default there) and enables a
/// plugin at that point only.
pub fn resolve_plugins(p: &Profile) -> Vec<ResolvedPlugin> {
    let mut list: Vec<ResolvedPlugin> = DEFAULT_PLUGINS
        .iter()
        .map(|(n, w)| (n.to_string(), *w, Vec::new()))
        .collect();
    let Some(sets) = &p.plugins else { return list };
    if let Some(mp) = sets.get("multiPoint") {
        if mp.disabled.iter().any(|d| d.name == "*") {
            list.clear();
        }
        list.retain(|(n, _, _)| !mp.disabled.iter().any(|d| &d.name == n));
        for e in &mp.enabled {
            match list.iter_mut().find(|(n, _, _)| n == &e.name) {
                Some(entry) => entry.1 = e.weight.unwrap_or(entry.1),
                None => list.push((e.name.clone(), e.weight.unwrap_or(1), Vec::new())),
            }
        }
    }
    for point in POINTS {
        let Some(set) = sets.get(*point) else {
            continue;
        };
        let all = set.disabled.iter().any(|d| d.name == "*");
        for (n, _, off) in list.iter_mut() {
            if all || set.disabled.iter().any(|d| &d.name == n) {
                off.push(point.to_string());
            }
        }
        for e in &set.enabled {
            match list.iter_mut().find(|(n, _, _)| n == &e.name) {
                Some(entry) => {
                    entry.2.retain(|o| o != point);
                    if let Some(w) = e.weight {
                        entry.1 = w;
                    }
                }
                None => {
                    let off = POINTS
                        .iter()
                        .filter(|q| *q != point)
                        .map(|q| q.to_string())
                        .collect();
                    list.push((e.name.clone(), e.weight.unwrap_or(1), off));
                }
            }
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_disable_enable_and_reweight() {
        let c = KubeSchedulerConfiguration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 50
profiles:
- schedulerName: default-scheduler
- schedulerName: no-scoring
  plugins:
    score:
      disabled: [{name: "*"}]
    multiPoint:
      enabled: [{name: TaintToleration, weight: 7}]
      disabled: [{name: ImageLocality}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy: {type: MostAllocated}
"#,
        )
        .unwrap();
        assert_eq!(c.profiles.len(), 2);
        let r = resolve_plugins(&c.profiles[1]);
        assert!(!r.iter().any(|(n, _, _)| n == "ImageLocality"));
        let fit = r.iter().find(|(n, _, _)| n == "NodeResourcesFit").unwrap();
        assert_eq!(fit.2, vec!["score"]);
        assert_eq!(
            r.iter().find(|(n, _, _)| n == "TaintToleration").unwrap().1,
            7
        );
        let (listers, _w) = Listers::new();
        let fws = c.frameworks(&listers).unwrap();
        assert_eq!(fws[1].scheduler_name, "no-scoring");
        assert!(fws[1].plugin_names().contains(&"NodeResourcesFit"));
        assert_eq!(fws[0].percentage_of_nodes_to_score, 50);
    }

    #[test]
    fn unknown_plugins_and_bad_kinds_are_rejected() {
        assert!(KubeSchedulerConfiguration::parse("kind: Pod").is_err());
        let c = KubeSchedulerConfiguration::parse(
            "profiles: [{plugins: {multiPoint: {enabled: [{name: Nope}]}}}]",
        )
        .unwrap();
        let (listers, _w) = Listers::new();
        assert!(c.frameworks(&listers).is_err());
    }
}
