//! Atomic projection of a set of files into a volume directory, with the
//! same on-disk layout as upstream's atomic writer:
//!
//! ```text
//! <dir>/..2024_05_01_10_00_00.123456789/   the current payload (files, 0755 dirs)
//! <dir>/..data -> ..2024_05_01_10_00_00.123456789
//! <dir>/<top-level name> -> ..data/<top-level name>
//! ```
//!
//! A new payload is written to a fresh timestamped directory and published
//! by renaming a `..data_tmp` symlink over `..data`, so a reader inside the
//! container sees either the old or the new set of files, never a mix.
//! Writing an unchanged payload touches nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const DATA_LINK: &str = "..data";
const DATA_TMP_LINK: &str = "..data_tmp";
const MAX_PATH_LEN: usize = 4096;
const MAX_FILE_NAME_LEN: usize = 255;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (`0o644`).
    pub mode: u32,
}

/// Checks a payload path: relative, no `..` element, no leading `..`.
/// Returns the cleaned path.
pub fn validate_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("invalid path: must not be empty".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "invalid path: must be less than or equal to {MAX_PATH_LEN} characters"
        ));
    }
    if Path::new(path).is_absolute() {
        return Err(format!("invalid path: must be relative path: {path}"));
    }
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => {
                let s = s.to_string_lossy();
                if s.len() > MAX_FILE_NAME_LEN {
                    return Err(format!(
                        "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LEN} characters"
                    ));
                }
                parts.push(s.into_owned());
            }
            Component::CurDir => {}
            _ => return Err(format!("invalid path: must not contain '..': {path}")),
        }
    }
    if parts.is_empty() {
        return Err(format!("invalid path: {path}"));
    }
    if parts[0].starts_with("..") {
        return Err(format!("invalid path: must not start with '..': {path}"));
    }
    Ok(parts.join("/"))
}

fn first_component(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// Reads the files under `root` (relative path → content and mode).
fn read_tree(root: &Path) -> io::Result<BTreeMap<String, FileProjection>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let name = rel.join(entry.file_name());
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(name);
            } else if ft.is_file() {
                let path = root.join(&name);
                let mode = fs::symlink_metadata(&path)?.permissions().mode() & 0o7777;
                let data = fs::read(&path)?;
                out.insert(
                    name.to_string_lossy().into_owned(),
                    FileProjection { data, mode },
                );
            }
        }
    }
    Ok(out)
}

fn new_ts_dir(dir: &Path) -> io::Result<PathBuf> {
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.")
        .to_string();
    for attempt in 0u32..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let suffix = nanos
            .wrapping_mul(2_654_435_761)
            .wrapping_add(std::process::id())
            .wrapping_add(attempt.wrapping_mul(7919));
        let path = dir.join(format!("{stamp}{suffix}"));
        match fs::create_dir(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "could not create a unique timestamped directory",
    ))
}

/// Writes `payload` into `dir` (which must exist). Returns whether anything
/// changed on disk.
pub fn write(dir: &Path, payload: &BTreeMap<String, FileProjection>) -> io::Result<bool> {
    let mut clean = BTreeMap::new();
    for (path, file) in payload {
        let p = validate_path(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        clean.insert(
            p,
            FileProjection {
                data: file.data.clone(),
                mode: file.mode & 0o7777,
            },
        );
    }
    let top_level: BTreeSet<&str> = clean.keys().map(|k| first_component(k)).collect();

    let data_link = dir.join(DATA_LINK);
    let old_ts = fs::read_link(&data_link).ok();
    let old_ts_path = old_ts.as_ref().map(|t| dir.join(t));

    let unchanged = match &old_ts_path {
        Some(p) => match read_tree(p) {
            Ok(current) => current == clean,
            Err(_) => false,
        },
        None => false,
    };
    let links_ok = top_level.iter().all(|name| {
        fs::read_link(dir.join(name))
            .map(|t| t == Path::new(DATA_LINK).join(name))
            .unwrap_or(false)
    });
    if unchanged && links_ok {
        return Ok(false);
    }

    if !unchanged {
        let ts = new_ts_dir(dir)?;
        let result = (|| -> io::Result<()> {
            for (rel, file) in &clean {
                let path = ts.join(rel);
                if let Some(parent) = path.parent() {
                    if parent != ts {
                        fs::create_dir_all(parent)?;
                        let mut p = parent;
                        while p != ts {
                            fs::set_permissions(p, fs::Permissions::from_mode(0o755))?;
                            p = match p.parent() {
                                Some(p) => p,
                                None => break,
                            };
                        }
                    }
                }
                fs::write(&path, &file.data)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(file.mode))?;
            }
            let tmp = dir.join(DATA_TMP_LINK);
            let _ = fs::remove_file(&tmp);
            let ts_name = ts.file_name().unwrap_or_default();
            symlink(ts_name, &tmp)?;
            fs::rename(&tmp, &data_link)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&ts);
            return Err(e);
        }
    }

    // User-visible entries point into ..data.
    for name in &top_level {
        let link = dir.join(name);
        let target = Path::new(DATA_LINK).join(name);
        match fs::read_link(&link) {
            Ok(t) if t == target => {}
            Ok(_) => {
                fs::remove_file(&link)?;
                symlink(&target, &link)?;
            }
            Err(_) => {
                if fs::symlink_metadata(&link).is_ok() {
                    // A stray regular file or directory where a link belongs.
                    let md = fs::symlink_metadata(&link)?;
                    if md.is_dir() {
                        fs::remove_dir_all(&link)?;
                    } else {
                        fs::remove_file(&link)?;
                    }
                }
                symlink(&target, &link)?;
            }
        }
    }

    if !unchanged {
        if let Some(old) = old_ts_path {
            if fs::symlink_metadata(&old)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                fs::remove_dir_all(&old)?;
            }
        }
    }

    // Drop user-visible links of paths no longer in the payload, and any
    // stale timestamped directories left by an interrupted write.
    let current_ts = fs::read_link(&data_link).ok();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            let is_ts = name.len() > 2 && name.as_bytes()[2].is_ascii_digit();
            if is_ts
                && current_ts.as_deref() != Some(Path::new(&name))
                && entry.file_type().map(|t| t.is_dir()).unwrap_or(false)
            {
                fs::remove_dir_all(entry.path())?;
            }
            continue;
        }
        if top_level.contains(name.as_str()) {
            continue;
        }
        if let Ok(t) = fs::read_link(entry.path()) {
            if t.starts_with(DATA_LINK) {
                fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(items: &[(&str, &str, u32)]) -> BTreeMap<String, FileProjection> {
        items
            .iter()
            .map(|(k, v, m)| {
                (
                    k.to_string(),
                    FileProjection {
                        data: v.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn validate() {
        assert_eq!(validate_path("a/./b").unwrap(), "a/b");
        assert!(validate_path("/abs").is_err());
        assert!(validate_path("a/../b").is_err());
        assert!(validate_path("..data").is_err());
        assert!(validate_path("").is_err());
    }

    #[test]
    fn writes_swaps_and_cleans() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(write(dir, &p(&[("a", "1", 0o644), ("sub/b", "2", 0o400)])).unwrap());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(
            fs::read_link(dir.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        let mode = fs::metadata(dir.join("sub/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o400);
        let ts1 = fs::read_link(dir.join("..data")).unwrap();
        assert!(ts1.to_string_lossy().starts_with(".."));

        // Same payload: nothing changes.
        assert!(!write(dir, &p(&[("a", "1", 0o644), ("sub/b", "2", 0o400)])).unwrap());
        assert_eq!(fs::read_link(dir.join("..data")).unwrap(), ts1);

        // Mode change alone rewrites.
        assert!(write(dir, &p(&[("a", "1", 0o600), ("sub/b", "2", 0o400)])).unwrap());
        let ts2 = fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(ts1, ts2);
        assert!(!dir.join(&ts1).exists());

        // Dropping a key removes its link; a new key appears.
        assert!(write(dir, &p(&[("c", "3", 0o644)])).unwrap());
        assert!(fs::symlink_metadata(dir.join("a")).is_err());
        assert!(fs::symlink_metadata(dir.join("sub")).is_err());
        assert_eq!(fs::read_to_string(dir.join("c")).unwrap(), "3");
        let names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}"); // ..data, ..<ts>, c

        // Empty payload is fine.
        assert!(write(dir, &BTreeMap::new()).unwrap());
        assert!(fs::symlink_metadata(dir.join("c")).is_err());
    }
}
