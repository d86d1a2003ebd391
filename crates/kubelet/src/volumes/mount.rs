//! tmpfs mounts for memory-backed volumes, and finding/unmounting what is
//! mounted under a pod directory (over `component_base::mounts`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use component_base::mounts;

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

/// Mount points at or below `dir`, deepest first (the order to unmount
/// them in).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    mounts::mounts_under(&mounts::mounts(), &[dir.to_path_buf()])
        .into_iter()
        .map(|m| m.mount_point)
        .collect()
}
