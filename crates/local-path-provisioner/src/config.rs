//! The configuration file (the `config.json` of Rancher's
//! local-path-provisioner): which base directories each node offers.
//!
//! ```json
//! {"nodePathMap": [
//!   {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/var/local-path-provisioner"]},
//!   {"node": "worker-1", "paths": ["/data/a", "/data/b"]}
//! ]}
//! ```
//!
//! A node listed by name uses its own paths (an empty list means it offers
//! no storage); any other node uses the `DEFAULT_PATH_FOR_NON_LISTED_NODES`
//! entry. Fields this implementation does not use (`setupCommand`,
//! `teardownCommand`, `sharedFileSystemPath`, ...) are accepted and ignored.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The `node` value of the entry for every node not listed by name.
pub const DEFAULT_NODE_KEY: &str = "DEFAULT_PATH_FOR_NON_LISTED_NODES";

/// The base directory when no configuration is given.
pub const DEFAULT_PATH: &str = "/var/local-path-provisioner";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    node_path_map: Vec<RawNodePaths>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawNodePaths {
    node: String,
    #[serde(default)]
    paths: Vec<String>,
}

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// node name (or [`DEFAULT_NODE_KEY`]) → base directories.
    pub node_paths: BTreeMap<String, Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_paths: BTreeMap::from([(DEFAULT_NODE_KEY.to_string(), vec![DEFAULT_PATH.into()])]),
        }
    }
}

impl Config {
    /// Parses and checks a configuration: every path absolute, not `/`,
    /// listed once per node; every node listed once.
    pub fn parse(json: &str) -> Result<Config> {
        let raw: RawConfig = serde_json::from_str(json).context("parsing the configuration")?;
        let mut node_paths = BTreeMap::new();
        for entry in raw.node_path_map {
            if entry.node.is_empty() {
                bail!("nodePathMap: an entry has no node");
            }
            let mut paths: Vec<String> = Vec::new();
            for p in entry.paths {
                let clean = p.trim_end_matches('/').to_string();
                if !p.starts_with('/') {
                    bail!(
                        "nodePathMap: path {p:?} of node {} is not absolute",
                        entry.node
                    );
                }
                if clean.is_empty() {
                    bail!(
                        "nodePathMap: node {} cannot use the root directory",
                        entry.node
                    );
                }
                if paths.contains(&clean) {
                    bail!("nodePathMap: node {} lists path {p:?} twice", entry.node);
                }
                paths.push(clean);
            }
            if node_paths.insert(entry.node.clone(), paths).is_some() {
                bail!("nodePathMap: node {} is listed twice", entry.node);
            }
        }
        Ok(Config { node_paths })
    }

    /// Reads the configuration file, or the default without one.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        match path {
            None => Ok(Config::default()),
            Some(p) => {
                let s = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the configuration {}", p.display()))?;
                Config::parse(&s).with_context(|| format!("in {}", p.display()))
            }
        }
    }

    /// The base directories offered on `node`.
    pub fn paths_for(&self, node: &str) -> Result<&[String]> {
        let paths = match self.node_paths.get(node) {
            Some(p) => p,
            None => self.node_paths.get(DEFAULT_NODE_KEY).with_context(|| {
                format!(
                    "no local path is configured for node {node} (and no {DEFAULT_NODE_KEY} entry)"
                )
            })?,
        };
        if paths.is_empty() {
            bail!("no local path is available on node {node}");
        }
        Ok(paths)
    }

    /// The base directory for volume `pv_name` on `node`: with several, one
    /// chosen by a hash of the volume name (stable across retries, spread
    /// across volumes; Rancher's picks one at random).
    pub fn base_path_for(&self, node: &str, pv_name: &str) -> Result<String> {
        let paths = self.paths_for(node)?;
        Ok(paths[(fnv1a(pv_name) % paths.len() as u64) as usize].clone())
    }
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_listed_nodes() {
        let c = Config::parse(
            r#"{"nodePathMap":[
                {"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/var/lp/"]},
                {"node":"n1","paths":["/data/n1"]},
                {"node":"n2","paths":[]},
                {"node":"n3","paths":["/a","/b","/c"]}
            ],"setupCommand":"/x"}"#,
        )
        .unwrap();
        assert_eq!(c.base_path_for("other", "pvc-1").unwrap(), "/var/lp");
        assert_eq!(c.base_path_for("n1", "pvc-1").unwrap(), "/data/n1");
        assert!(c
            .base_path_for("n2", "pvc-1")
            .unwrap_err()
            .to_string()
            .contains("no local path is available on node n2"));
        // Stable per volume, and every path gets used.
        let a = c.base_path_for("n3", "pvc-1").unwrap();
        assert_eq!(a, c.base_path_for("n3", "pvc-1").unwrap());
        let used: std::collections::BTreeSet<String> = (0..50)
            .map(|i| c.base_path_for("n3", &format!("pvc-{i}")).unwrap())
            .collect();
        assert_eq!(used.len(), 3);
        assert_eq!(
            Config::default().base_path_for("x", "p").unwrap(),
            DEFAULT_PATH
        );
    }

    #[test]
    fn invalid_configurations() {
        for bad in [
            r#"{"nodePathMap":[{"node":"a","paths":["rel"]}]}"#,
            r#"{"nodePathMap":[{"node":"a","paths":["/"]}]}"#,
            r#"{"nodePathMap":[{"node":"a","paths":["/x","/x/"]}]}"#,
            r#"{"nodePathMap":[{"node":"a","paths":["/x"]},{"node":"a","paths":["/y"]}]}"#,
            r#"{"nodePathMap":[{"node":"","paths":["/x"]}]}"#,
            "not json",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
        let only_listed =
            Config::parse(r#"{"nodePathMap":[{"node":"a","paths":["/x"]}]}"#).unwrap();
        assert!(only_listed.base_path_for("b", "p").is_err());
    }
}
