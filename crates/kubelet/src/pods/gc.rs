//! Garbage collection (upstream's container GC and image GC policies):
//! - sandboxes of pods this kubelet no longer knows are stopped and removed
//!   (with their containers and volumes);
//! - of each container's dead instances only the newest is kept (for
//!   `kubectl logs --previous`); dead sandboxes that are not the pod's newest
//!   and hold no containers are removed;
//! - when the image filesystem is above imageGCHighThresholdPercent, unused
//!   images are removed until it is below imageGCLowThresholdPercent.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cri::runtime::v1 as crirt;

use super::Context;
use crate::runtime::{CONTAINER_NAME_LABEL, POD_UID_LABEL};

/// Image GC state: when each image was first seen unused.
pub struct ImageGc {
    first_unused: HashMap<String, Instant>,
}

impl ImageGc {
    pub fn new() -> Self {
        ImageGc {
            first_unused: HashMap::new(),
        }
    }
}

impl Default for ImageGc {
    fn default() -> Self {
        Self::new()
    }
}

/// The dead containers to remove: all but the newest dead instance per (pod, container name).
pub fn dead_containers_to_remove(containers: &[crirt::Container]) -> Vec<String> {
    let mut groups: HashMap<(String, String), Vec<&crirt::Container>> = HashMap::new();
    for c in containers {
        let (Some(uid), Some(name)) = (
            c.labels.get(POD_UID_LABEL),
            c.labels.get(CONTAINER_NAME_LABEL),
        ) else {
            continue;
        };
        if c.state == crirt::ContainerState::ContainerRunning as i32 {
            continue;
        }
        groups
            .entry((uid.clone(), name.clone()))
            .or_default()
            .push(c);
    }
    let mut out = Vec::new();
    for (_, mut v) in groups {
        v.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        out.extend(v.into_iter().skip(1).map(|c| c.id.clone()));
    }
    out
}

pub async fn collect(ctx: &Context, known: &HashSet<String>, image_gc: &mut ImageGc) {
    let rt = &ctx.runtime;
    let (containers, sandboxes) =
        match tokio::join!(rt.list_containers(&[], None), rt.list_pod_sandboxes(&[])) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!("garbage collection: listing the runtime: {e}");
                return;
            }
        };

    // Orphaned pods.
    let mut orphans: HashSet<String> = HashSet::new();
    for s in &sandboxes {
        if let Some(uid) = s.labels.get(POD_UID_LABEL) {
            if !known.contains(uid) {
                orphans.insert(uid.clone());
                tracing::info!(pod_uid = %uid, sandbox = %s.id, "removing orphaned sandbox");
                if let Err(e) = rt.stop_pod_sandbox(&s.id).await {
                    tracing::warn!("stopping orphaned sandbox {}: {e}", s.id);
                    continue;
                }
                if let Err(e) = rt.remove_pod_sandbox(&s.id).await {
                    tracing::warn!("removing orphaned sandbox {}: {e}", s.id);
                }
                remove_pod_cgroups(&ctx.cfg.cgroup_root, uid);
            }
        }
    }
    for c in &containers {
        if let Some(uid) = c.labels.get(POD_UID_LABEL) {
            if !known.contains(uid) && !sandboxes.iter().any(|s| s.id == c.pod_sandbox_id) {
                let _ = rt.stop_container(&c.id, 0).await;
                let _ = rt.remove_container(&c.id).await;
            }
        }
    }
    for uid in ctx.volumes.pods_on_disk() {
        if !known.contains(&uid) {
            if let Err(e) = ctx.volumes.teardown_pod(&uid).await {
                tracing::warn!(pod_uid = %uid, "removing orphaned pod directory: {e:#}");
            }
        }
    }

    // Dead containers.
    for id in dead_containers_to_remove(&containers) {
        if let Err(e) = rt.remove_container(&id).await {
            tracing::debug!("removing dead container {id}: {e}");
        }
    }
    // Dead sandboxes that are not their pod's newest and hold no containers.
    let mut newest: HashMap<&str, (i64, &str)> = HashMap::new();
    for s in &sandboxes {
        if let Some(uid) = s.labels.get(POD_UID_LABEL) {
            let e = newest
                .entry(uid.as_str())
                .or_insert((s.created_at, s.id.as_str()));
            if s.created_at > e.0 {
                *e = (s.created_at, s.id.as_str());
            }
        }
    }
    let remaining = rt.list_containers(&[], None).await.unwrap_or_default();
    for s in &sandboxes {
        let Some(uid) = s.labels.get(POD_UID_LABEL) else {
            continue;
        };
        if orphans.contains(uid) || s.state == crirt::PodSandboxState::SandboxReady as i32 {
            continue;
        }
        if newest.get(uid.as_str()).map(|(_, id)| *id) == Some(s.id.as_str()) {
            continue;
        }
        if remaining.iter().any(|c| c.pod_sandbox_id == s.id) {
            continue;
        }
        if let Err(e) = rt.remove_pod_sandbox(&s.id).await {
            tracing::debug!("removing dead sandbox {}: {e}", s.id);
        }
    }

    image_gc_run(ctx, &remaining, image_gc).await;
}

/// Removes a pod's (now empty) cgroups in every hierarchy, whatever its QoS class.
pub fn remove_pod_cgroups(cgroup_root: &str, pod_uid: &str) {
    if pod_uid.is_empty() || pod_uid.contains('/') {
        return;
    }
    let base = std::path::Path::new("/sys/fs/cgroup");
    let mut roots = vec![];
    if base.join("cgroup.controllers").exists() {
        roots.push(base.to_path_buf());
    } else if let Ok(rd) = std::fs::read_dir(base) {
        roots.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for qos in ["Guaranteed", "Burstable", "BestEffort"] {
        let parent = super::spec::cgroup_parent(cgroup_root, qos, pod_uid);
        for r in &roots {
            let dir = r.join(parent.trim_start_matches('/'));
            if dir.is_dir() {
                if let Err(e) = std::fs::remove_dir(&dir) {
                    tracing::debug!("removing cgroup {}: {e}", dir.display());
                }
            }
        }
    }
}

fn statvfs(path: &str) -> Option<(u64, u64)> {
    let c = std::ffi::CString::new(path).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

async fn image_gc_run(ctx: &Context, containers: &[crirt::Container], state: &mut ImageGc) {
    let rt = &ctx.runtime;
    let Ok(info) = rt.image_fs_info().await else {
        return;
    };
    let Some(fs) = info.image_filesystems.first() else {
        return;
    };
    let mountpoint = fs
        .fs_id
        .as_ref()
        .map(|f| f.mountpoint.clone())
        .unwrap_or_default();
    let Some((capacity, available)) = statvfs(&mountpoint) else {
        return;
    };
    if capacity == 0 {
        return;
    }
    let images = match rt.list_images().await {
        Ok(i) => i,
        Err(_) => return,
    };
    let in_use: HashSet<String> = containers
        .iter()
        .flat_map(|c| {
            [
                c.image_ref.clone(),
                c.image_id.clone(),
                c.image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
            ]
        })
        .filter(|s| !s.is_empty())
        .collect();
    let now = Instant::now();
    let unused: Vec<&crirt::Image> = images
        .iter()
        .filter(|i| {
            !i.pinned
                && !in_use.contains(&i.id)
                && !i
                    .repo_tags
                    .iter()
                    .any(|t| in_use.contains(t) || t.contains("/pause:"))
                && !i.repo_digests.iter().any(|d| in_use.contains(d))
        })
        .collect();
    state
        .first_unused
        .retain(|id, _| unused.iter().any(|i| &i.id == id));
    for i in &unused {
        state.first_unused.entry(i.id.clone()).or_insert(now);
    }
    let usage_pct = ((capacity - available) * 100 / capacity) as i32;
    if usage_pct < ctx.cfg.image_gc_high_threshold_percent {
        return;
    }
    let target = capacity * ctx.cfg.image_gc_low_threshold_percent.max(0) as u64 / 100;
    let mut to_free = (capacity - available).saturating_sub(target);
    tracing::info!(
        usage_pct,
        to_free,
        "image filesystem above the high threshold; removing unused images"
    );
    let mut candidates = unused;
    candidates.sort_by_key(|i| state.first_unused.get(&i.id).copied().unwrap_or(now));
    for img in candidates {
        if to_free == 0 {
            break;
        }
        // Images unused for less than a minute may be about to be used.
        if state
            .first_unused
            .get(&img.id)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
        {
            continue;
        }
        match rt.remove_image(&img.id).await {
            Ok(()) => {
                to_free = to_free.saturating_sub(img.size);
                tracing::info!(image = %img.id, tags = ?img.repo_tags, "removed unused image");
            }
            Err(e) => tracing::warn!("removing image {}: {e}", img.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, uid: &str, name: &str, running: bool, created: i64) -> crirt::Container {
        crirt::Container {
            id: id.into(),
            state: if running {
                crirt::ContainerState::ContainerRunning as i32
            } else {
                crirt::ContainerState::ContainerExited as i32
            },
            created_at: created,
            labels: [
                (POD_UID_LABEL.to_string(), uid.to_string()),
                (CONTAINER_NAME_LABEL.to_string(), name.to_string()),
            ]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_newest_dead_instance() {
        let v = vec![
            c("run", "u", "a", true, 10),
            c("d3", "u", "a", false, 9),
            c("d2", "u", "a", false, 8),
            c("d1", "u", "a", false, 7),
            c("other", "u", "b", false, 1),
            c("x", "v", "a", false, 1),
        ];
        let mut r = dead_containers_to_remove(&v);
        r.sort();
        assert_eq!(r, vec!["d1", "d2"]);
    }
}
