//! The mount table as `/proc/self/mountinfo` shows it, and lazy unmounting:
//! used by the kubelet (a pod directory's volumes) and `ferrokube` (what a
//! cluster's nodes leave on the host).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of /proc/self/mountinfo (the parts we need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Undo mountinfo's octal escapes (`\040` for space, `\134` for `\`, ...).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse /proc/self/mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let id = fields.first()?.parse().ok()?;
            let mount_point = PathBuf::from(unescape(fields.get(4)?));
            let sep = fields.iter().position(|f| *f == "-")?;
            let fs_type = fields.get(sep + 1)?.to_string();
            Some(MountInfo {
                id,
                mount_point,
                fs_type,
            })
        })
        .collect()
}

/// This process's mounts (empty when /proc/self/mountinfo cannot be read).
pub fn mounts() -> Vec<MountInfo> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// Mounts at or below any of `roots` (whole path components: `/a/b` is not
/// below `/a/bc`), deepest first and, at the same depth, newest first: the
/// order to unmount them in. A path mounted over several times is listed
/// once per mount.
pub fn mounts_under(all: &[MountInfo], roots: &[PathBuf]) -> Vec<MountInfo> {
    let mut out: Vec<MountInfo> = all
        .iter()
        .filter(|m| roots.iter().any(|r| m.mount_point.starts_with(r)))
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        let da = a.mount_point.components().count();
        let db = b.mount_point.components().count();
        db.cmp(&da).then(b.id.cmp(&a.id))
    });
    out
}

/// `umount2(path, MNT_DETACH)`: detach now, clean up once no longer busy.
fn detach(path: &Path) -> io::Result<()> {
    let target = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: target is a valid NUL-terminated string.
    let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmount `path` lazily (a busy mount does not block teardown). Not being
/// a mount point (any more) is not an error.
pub fn unmount(path: &Path) -> io::Result<()> {
    match detach(path) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(()),
        r => r,
    }
}

/// Unmount everything at or below `roots` (lazily, deepest first), until
/// nothing is left or a round makes no progress (at most 10 rounds).
/// Returns the mount points that could not be unmounted.
pub fn unmount_under(roots: &[PathBuf]) -> Vec<PathBuf> {
    for _ in 0..10 {
        let left = mounts_under(&mounts(), roots);
        if left.is_empty() {
            return vec![];
        }
        let mut progress = false;
        for m in &left {
            match detach(&m.mount_point) {
                Ok(()) => progress = true,
                Err(e) => tracing::debug!("unmounting {}: {e}", m.mount_point.display()),
            }
        }
        if !progress {
            break;
        }
    }
    mounts_under(&mounts(), roots)
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing_and_order() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /h/c/nodes/n/containerd/state/a rw - overlay overlay rw,lowerdir=x
31 30 0:41 / /h/c/nodes/n/containerd/state/a/dev/shm rw - tmpfs shm rw
32 22 0:42 / /h/c\\040d/x rw shared:5 master:2 - tmpfs tmpfs rw
33 22 0:43 / /h/cc rw - tmpfs tmpfs rw
34 22 0:44 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
35 22 0:45 / /h/c/v rw - tmpfs tmpfs rw
36 35 0:46 / /h/c/v rw - tmpfs tmpfs rw
garbage
";
        let all = parse_mountinfo(text);
        assert_eq!(all.len(), 8);
        assert_eq!(all[3].mount_point, PathBuf::from("/h/c d/x"));
        assert_eq!(all[3].fs_type, "tmpfs");
        let under = mounts_under(&all, &[PathBuf::from("/h/c")]);
        assert_eq!(
            under.iter().map(|m| m.id).collect::<Vec<_>>(),
            [31, 30, 36, 35],
            "deepest first, newest first at the same depth, /h/cc and '/h/c d' excluded"
        );
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("/tail\\"), "/tail\\");
        assert_eq!(unescape("/short\\04"), "/short\\04");
        assert_eq!(unescape("/big\\777"), "/big\\777");
    }

    #[test]
    fn unmounting_a_non_mount_is_fine() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // umount2 answers EPERM before looking at the path
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(unmount(dir.path()).is_ok());
        assert!(unmount(&dir.path().join("missing")).is_ok());
        assert!(unmount_under(&[dir.path().to_path_buf()]).is_empty());
    }
}
