//! Kubeconfig generation and kind-style merging into the user's kubeconfig.
//!
//! Entries (cluster, user and context) are all named `ferrokube-<cluster>`.
//! Merging replaces entries of the same name, keeps everything else (unknown
//! fields included) and sets `current-context`; removing drops the entries
//! and clears `current-context` if it pointed at them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_yaml::{Mapping, Value};

/// The name used for the cluster, user and context of a ferrokube cluster.
pub fn context_name(cluster: &str) -> String {
    format!("ferrokube-{cluster}")
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k.to_string()), v);
    }
    Value::Mapping(m)
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// A standalone kubeconfig for a cluster, with credentials embedded.
pub fn build(cluster: &str, server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Value {
    let name = context_name(cluster);
    build_named(&name, &name, &name, server, ca_pem, cert_pem, key_pem)
}

/// A kubeconfig with one cluster, user and context of the given names (e.g.
/// kubeadm's kubelet.conf: cluster `kubernetes`, user `system:node:<node>`,
/// context `system:node:<node>@kubernetes`), credentials embedded.
pub fn build_named(
    cluster_name: &str,
    user_name: &str,
    context: &str,
    server: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Value {
    map(vec![
        ("apiVersion", s("v1")),
        (
            "clusters",
            Value::Sequence(vec![map(vec![
                (
                    "cluster",
                    map(vec![
                        ("certificate-authority-data", s(&b64(ca_pem))),
                        ("server", s(server)),
                    ]),
                ),
                ("name", s(cluster_name)),
            ])]),
        ),
        (
            "contexts",
            Value::Sequence(vec![map(vec![
                (
                    "context",
                    map(vec![("cluster", s(cluster_name)), ("user", s(user_name))]),
                ),
                ("name", s(context)),
            ])]),
        ),
        ("current-context", s(context)),
        ("kind", s("Config")),
        ("preferences", Value::Mapping(Mapping::new())),
        (
            "users",
            Value::Sequence(vec![map(vec![
                ("name", s(user_name)),
                (
                    "user",
                    map(vec![
                        ("client-certificate-data", s(&b64(cert_pem))),
                        ("client-key-data", s(&b64(key_pem))),
                    ]),
                ),
            ])]),
        ),
    ])
}

/// Serialize a kubeconfig to YAML.
pub fn to_yaml(v: &Value) -> Result<String> {
    serde_yaml::to_string(v).context("serializing kubeconfig")
}

/// Parse kubeconfig YAML; empty input is an empty config.
pub fn parse(text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Mapping(Mapping::new()));
    }
    let v: Value = serde_yaml::from_str(text).context("parsing kubeconfig YAML")?;
    match v {
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        Value::Mapping(_) => Ok(v),
        _ => bail!("kubeconfig is not a YAML mapping"),
    }
}

const LISTS: [&str; 3] = ["clusters", "users", "contexts"];

fn entry_name(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

fn list_mut<'a>(m: &'a mut Mapping, key: &str) -> Result<&'a mut Vec<Value>> {
    let k = Value::String(key.to_string());
    let slot = m.entry(k).or_insert(Value::Sequence(vec![]));
    if slot.is_null() {
        *slot = Value::Sequence(vec![]);
    }
    slot.as_sequence_mut()
        .ok_or_else(|| anyhow!("kubeconfig field {key:?} is not a list"))
}

/// Merge every named entry of `new` into `existing` (replacing same-named
/// entries) and take `new`'s current-context.
pub fn merge(existing: Value, new: &Value) -> Result<Value> {
    let mut existing = match existing {
        Value::Null => Value::Mapping(Mapping::new()),
        v => v,
    };
    let m = existing
        .as_mapping_mut()
        .ok_or_else(|| anyhow!("kubeconfig is not a YAML mapping"))?;
    for (key, default) in [
        ("apiVersion", s("v1")),
        ("kind", s("Config")),
        ("preferences", Value::Mapping(Mapping::new())),
    ] {
        let k = Value::String(key.to_string());
        if m.get(&k).is_none_or(Value::is_null) {
            m.insert(k, default);
        }
    }
    for key in LISTS {
        let additions: Vec<Value> = new
            .get(key)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        let list = list_mut(m, key)?;
        for add in additions {
            let Some(name) = entry_name(&add) else {
                continue;
            };
            if let Some(pos) = list.iter().position(|e| entry_name(e) == Some(name)) {
                list[pos] = add;
            } else {
                list.push(add);
            }
        }
    }
    if let Some(cc) = new.get("current-context") {
        m.insert(s("current-context"), cc.clone());
    }
    Ok(existing)
}

/// Remove the cluster, user and context named `name`. Returns whether
/// anything changed.
pub fn remove(existing: &mut Value, name: &str) -> bool {
    let Some(m) = existing.as_mapping_mut() else {
        return false;
    };
    let mut changed = false;
    for key in LISTS {
        if let Some(list) = m.get_mut(key).and_then(Value::as_sequence_mut) {
            let before = list.len();
            list.retain(|e| entry_name(e) != Some(name));
            changed |= list.len() != before;
        }
    }
    let cc = s("current-context");
    if m.get(&cc).and_then(Value::as_str) == Some(name) {
        m.insert(cc, s(""));
        changed = true;
    }
    changed
}

/// Which file to merge into: the explicit path, else the first entry of
/// `$KUBECONFIG`, else `$HOME/.kube/config`.
pub fn resolve_path_with(
    explicit: Option<&Path>,
    kubeconfig_env: Option<&str>,
    home: Option<&Path>,
) -> Result<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p.to_path_buf());
    }
    if let Some(first) =
        kubeconfig_env.and_then(|v| v.split(':').map(str::trim).find(|p| !p.is_empty()))
    {
        return Ok(PathBuf::from(first));
    }
    match home {
        Some(h) => Ok(h.join(".kube").join("config")),
        None => bail!("cannot find a kubeconfig path: set --kubeconfig, KUBECONFIG or HOME"),
    }
}

/// [`resolve_path_with`] using the process environment.
pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf> {
    let env = std::env::var("KUBECONFIG").ok();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    resolve_path_with(explicit, env.as_deref(), home.as_deref())
}

/// A lock file next to the kubeconfig (`<path>.lock`, as kubectl uses),
/// removed on drop.
struct Lock(PathBuf);

impl Lock {
    fn acquire(path: &Path) -> Result<Lock> {
        let mut lock = path.as_os_str().to_owned();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut broke_stale = false;
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(_) => return Ok(Lock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Instant::now() >= deadline {
                        if broke_stale {
                            bail!("kubeconfig lock {} is held", lock.display());
                        }
                        // A lock older than our patience is left over from a
                        // crashed writer.
                        tracing::warn!("removing stale kubeconfig lock {}", lock.display());
                        let _ = fs::remove_file(&lock);
                        broke_stale = true;
                        continue;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating lock file {}", lock.display()))
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Write `content` to `path` atomically with mode 0600 (following a symlink
/// at `path` to its target).
pub fn write_file(path: &Path, content: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if !dir.as_os_str().is_empty() {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let res = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &target).with_context(|| format!("writing {}", target.display()))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn read_existing(path: &Path) -> Result<Value> {
    match fs::read_to_string(path) {
        Ok(text) => parse(&text).with_context(|| format!("reading kubeconfig {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Mapping(Mapping::new())),
        Err(e) => Err(e).with_context(|| format!("reading kubeconfig {}", path.display())),
    }
}

/// Merge `new` into the kubeconfig file at `path` (created if missing).
pub fn merge_into_file(path: &Path, new: &Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _lock = Lock::acquire(path)?;
    let merged = merge(read_existing(path)?, new)?;
    write_file(path, &to_yaml(&merged)?)
}

/// Remove the entries named `name` from the kubeconfig file at `path`.
/// A missing file is fine. Returns whether the file changed.
pub fn remove_from_file(path: &Path, name: &str) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let _lock = Lock::acquire(path)?;
    let mut cfg = read_existing(path)?;
    if !remove(&mut cfg, name) {
        return Ok(false);
    }
    write_file(path, &to_yaml(&cfg)?)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://example.invalid:6443
    insecure-skip-tls-verify: true
users:
- name: other
  user:
    token: abc
contexts:
- name: other
  context:
    cluster: other
    user: other
    namespace: kube-system
current-context: other
preferences:
  colors: true
extensions: []
"#;

    fn names(v: &Value, key: &str) -> Vec<String> {
        v.get(key)
            .and_then(Value::as_sequence)
            .map(|l| {
                l.iter()
                    .filter_map(entry_name)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn cfg(cluster: &str, port: u16) -> Value {
        build(
            cluster,
            &format!("https://127.0.0.1:{port}"),
            "CA",
            "CERT",
            "KEY",
        )
    }

    #[test]
    fn build_shape() {
        let v = cfg("x", 6443);
        assert_eq!(v["current-context"].as_str(), Some("ferrokube-x"));
        assert_eq!(
            v["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"].as_str(),
            Some("Q0E=")
        );
        assert_eq!(
            v["users"][0]["user"]["client-key-data"].as_str(),
            Some("S0VZ")
        );
        assert_eq!(
            v["contexts"][0]["context"]["user"].as_str(),
            Some("ferrokube-x")
        );
        let round = parse(&to_yaml(&v).unwrap()).unwrap();
        assert_eq!(round, v);
    }

    #[test]
    fn merge_preserves_others_and_sets_current_context() {
        let existing = parse(OTHER).unwrap();
        let merged = merge(existing, &cfg("a", 1)).unwrap();
        assert_eq!(names(&merged, "clusters"), ["other", "ferrokube-a"]);
        assert_eq!(names(&merged, "users"), ["other", "ferrokube-a"]);
        assert_eq!(names(&merged, "contexts"), ["other", "ferrokube-a"]);
        assert_eq!(merged["current-context"].as_str(), Some("ferrokube-a"));
        assert_eq!(merged["preferences"]["colors"].as_bool(), Some(true));
        assert_eq!(
            merged["contexts"][0]["context"]["namespace"].as_str(),
            Some("kube-system")
        );
        assert!(merged.get("extensions").is_some());

        // Re-merging the same cluster replaces rather than duplicates.
        let merged = merge(merged, &cfg("a", 2)).unwrap();
        assert_eq!(names(&merged, "clusters"), ["other", "ferrokube-a"]);
        assert_eq!(
            merged["clusters"][1]["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:2")
        );

        let merged = merge(merged, &cfg("b", 3)).unwrap();
        assert_eq!(
            names(&merged, "contexts"),
            ["other", "ferrokube-a", "ferrokube-b"]
        );
        assert_eq!(merged["current-context"].as_str(), Some("ferrokube-b"));
    }

    #[test]
    fn merge_into_empty_or_null_lists() {
        let merged = merge(Value::Null, &cfg("a", 1)).unwrap();
        assert_eq!(merged["apiVersion"].as_str(), Some("v1"));
        assert_eq!(merged["kind"].as_str(), Some("Config"));
        assert_eq!(names(&merged, "users"), ["ferrokube-a"]);
        let existing =
            parse("apiVersion: v1\nkind: Config\nclusters: null\nusers:\ncontexts: []\n").unwrap();
        let merged = merge(existing, &cfg("a", 1)).unwrap();
        assert_eq!(names(&merged, "clusters"), ["ferrokube-a"]);
        assert!(merge(parse("clusters: 5\n").unwrap(), &cfg("a", 1)).is_err());
        assert!(parse("- a\n- b\n").is_err());
        assert!(parse(": : :\n\t[").is_err());
    }

    #[test]
    fn remove_entries_and_current_context() {
        let merged = merge(
            merge(parse(OTHER).unwrap(), &cfg("a", 1)).unwrap(),
            &cfg("b", 2),
        )
        .unwrap();
        let mut v = merged.clone();
        // current-context is b; removing a keeps it.
        assert!(remove(&mut v, "ferrokube-a"));
        assert_eq!(names(&v, "clusters"), ["other", "ferrokube-b"]);
        assert_eq!(v["current-context"].as_str(), Some("ferrokube-b"));
        assert!(remove(&mut v, "ferrokube-b"));
        assert_eq!(names(&v, "users"), ["other"]);
        assert_eq!(v["current-context"].as_str(), Some(""));
        assert!(!remove(&mut v, "ferrokube-b"));
        assert!(!remove(&mut Value::Null, "x"));
    }

    #[test]
    fn resolve_order() {
        let home = Path::new("/home/u");
        assert_eq!(
            resolve_path_with(Some(Path::new("/x")), Some("/y"), Some(home)).unwrap(),
            PathBuf::from("/x")
        );
        assert_eq!(
            resolve_path_with(None, Some(":/y:/z"), Some(home)).unwrap(),
            PathBuf::from("/y")
        );
        assert_eq!(
            resolve_path_with(None, Some(""), Some(home)).unwrap(),
            PathBuf::from("/home/u/.kube/config")
        );
        assert!(resolve_path_with(None, None, None).is_err());
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config");
        // Removing from a missing file is a no-op.
        assert!(!remove_from_file(&path, "ferrokube-a").unwrap());
        merge_into_file(&path, &cfg("a", 1)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::write(&path, OTHER).unwrap();
        merge_into_file(&path, &cfg("a", 1)).unwrap();
        let v = parse(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(names(&v, "clusters"), ["other", "ferrokube-a"]);
        assert!(remove_from_file(&path, "ferrokube-a").unwrap());
        let v = parse(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(names(&v, "clusters"), ["other"]);
        assert_eq!(v["current-context"].as_str(), Some(""));
        assert!(!path.with_extension("lock").exists());
        assert!(!dir.path().join("sub").join("config.lock").exists());
        // A corrupt kubeconfig is reported, never clobbered.
        fs::write(&path, "clusters: [unclosed").unwrap();
        assert!(merge_into_file(&path, &cfg("a", 1)).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "clusters: [unclosed");
    }
}
