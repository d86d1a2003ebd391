//! tmpfs mounts for memory-backed volumes, and finding/unmounting what is
//! mounted under a pod directory.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// True when `path` is a mount point (its device differs from its parent's,
/// or it is `/`).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let parent = match path.parent() {
        Some(p) => p,
        None => return true,
    };
    match std::fs::metadata(parent) {
        Ok(pmd) => pmd.dev() != md.dev() || pmd.ino() == md.ino(),
        Err(_) => false,
    }
}

/// Mounts a tmpfs at `path` (`size=<bytes>` when given), unless something is
/// already mounted there.
pub fn mount_tmpfs(path: &Path, size: Option<u64>) -> io::Result<()> {
    if is_mount_point(path) {
        return Ok(());
    }
    let target = cstr(path)?;
    let source = CString::new("tmpfs").unwrap();
    let fstype = CString::new("tmpfs").unwrap();
    let opts = match size {
        Some(s) if s > 0 => format!("size={s}"),
        _ => String::new(),
    };
    let data = CString::new(opts).unwrap();
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts `path` (lazily, so a busy mount does not block teardown).
pub fn unmount(path: &Path) -> io::Result<()> {
    let target = cstr(path)?;
    // SAFETY: target is a valid NUL-terminated string.
    let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(()); // not a mount point (any more)
        }
        return Err(err);
    }
    Ok(())
}

/// Decodes the octal escapes (`\040`) of a mountinfo path.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let oct = std::str::from_utf8(oct).unwrap_or("0");
                if let Ok(v) = u8::from_str_radix(oct, 8) {
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

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/tail\\"), "/tail\\");
    }
}
