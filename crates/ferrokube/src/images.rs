//! Image archives: loading them into a node's containerd (`ctr images
//! import`, namespace `k8s.io`) and pushing them to the cluster's registry
//! (`skopeo copy`), for OCI archives and docker-archives (`docker save`).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::net::run;

/// The namespace the CRI plugin of containerd uses.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// Extra tags every loaded image of these repositories also gets (what
/// tests and manifests written for upstream clusters commonly name).
pub const EXTRA_TAGS: &[(&str, &str, &str)] = &[
    ("registry.k8s.io/pause", "3.10", "3.9"),
    ("docker.io/library/busybox", "latest", "stable"),
];

/// The format of an image archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout in a tar (`index.json`).
    Oci,
    /// `docker save` output (`manifest.json` with `RepoTags`).
    Docker,
}

/// One named image inside an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    /// The name as written in the archive (selects it for skopeo).
    pub source_name: String,
    /// The fully qualified name (`docker.io/library/busybox:latest`).
    pub name: String,
}

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub path: PathBuf,
    pub format: ArchiveFormat,
    pub images: Vec<ArchiveImage>,
}

/// Read the top-level files `wanted` (at most 16 MiB each) from a tar.
fn read_tar_files(path: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    let mut header = [0u8; 512];
    let mut long_name: Option<String> = None;
    loop {
        match f.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let field = |a: usize, b: usize| {
            let s = &header[a..b];
            let end = s.iter().position(|c| *c == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).into_owned()
        };
        let size_field = field(124, 136);
        let size = u64::from_str_radix(size_field.trim(), 8)
            .map_err(|_| anyhow!("{} is not a tar archive", path.display()))?;
        let typeflag = header[156];
        let mut name = field(0, 100);
        let prefix = field(345, 500);
        if header[257..262] == *b"ustar" && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        if let Some(l) = long_name.take() {
            name = l;
        }
        let padded = size.div_ceil(512) * 512;
        let name = name.trim_start_matches("./").to_string();
        if typeflag == b'L' && size < 64 * 1024 {
            // GNU long name for the next entry.
            let mut buf = vec![0u8; size as usize];
            f.read_exact(&mut buf)?;
            let end = buf.iter().position(|c| *c == 0).unwrap_or(buf.len());
            long_name = Some(String::from_utf8_lossy(&buf[..end]).into_owned());
            f.seek(SeekFrom::Current((padded - size) as i64))?;
            continue;
        }
        if (typeflag == b'0' || typeflag == 0)
            && wanted.contains(&name.as_str())
            && size <= 16 << 20
        {
            let mut buf = vec![0u8; size as usize];
            f.read_exact(&mut buf)?;
            f.seek(SeekFrom::Current((padded - size) as i64))?;
            out.push((name, buf));
            if out.len() == wanted.len() {
                break;
            }
            continue;
        }
        f.seek(SeekFrom::Current(padded as i64))?;
    }
    Ok(out)
}

/// Split a reference into (domain, remainder) the way Docker does: the
/// first component is a registry host if it contains '.' or ':' or is
/// `localhost`.
fn split_domain(r: &str) -> (&str, &str) {
    match r.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => ("docker.io", r),
    }
}

/// Normalize an image reference: `busybox` → `docker.io/library/busybox:latest`,
/// `foo/bar:1` → `docker.io/foo/bar:1`. `None` for a bare tag or a digest
/// reference (which carries no name to tag).
pub fn normalize(reference: &str) -> Option<String> {
    let r = reference.trim();
    if r.is_empty() || r.contains('@') || r.contains(char::is_whitespace) {
        return None;
    }
    let (domain, rest) = split_domain(r);
    // A bare tag ("latest", "3.10") is not a name.
    if domain == "docker.io" && !r.contains('/') && !r.contains(':') && r.contains('.') {
        return None;
    }
    let rest = if domain == "docker.io" && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest.to_string()
    };
    let last = rest.rsplit('/').next().unwrap_or("");
    let tagged = if last.contains(':') {
        rest
    } else {
        format!("{rest}:latest")
    };
    if tagged.starts_with(':') || tagged.contains("/:") {
        return None;
    }
    Some(format!("{domain}/{tagged}"))
}

/// `(repository, tag)` of a normalized name.
pub fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

/// The repository path of a normalized name in the mirror registry (the
/// name without its registry host, as a mirrored pull asks for it).
pub fn registry_path(name: &str) -> String {
    split_domain(name).1.to_string()
}

/// The extra names `name` also gets.
pub fn extra_names(name: &str) -> Vec<String> {
    let (repo, tag) = split_tag(name);
    EXTRA_TAGS
        .iter()
        .filter(|(r, t, _)| *r == repo && *t == tag)
        .map(|(r, _, extra)| format!("{r}:{extra}"))
        .collect()
}

/// Look inside an archive for its format and image names.
pub fn inspect(path: &Path) -> Result<Archive> {
    let files = read_tar_files(path, &["index.json", "manifest.json", "oci-layout"])?;
    let get = |n: &str| files.iter().find(|(name, _)| name == n).map(|(_, d)| d);
    if let Some(index) = get("index.json").filter(|_| get("oci-layout").is_some()) {
        let v: serde_json::Value = serde_json::from_slice(index)
            .with_context(|| format!("parsing index.json of {}", path.display()))?;
        let mut images = Vec::new();
        for m in v["manifests"].as_array().into_iter().flatten() {
            let ann = &m["annotations"];
            let raw = ann["io.containerd.image.name"]
                .as_str()
                .or_else(|| ann["org.opencontainers.image.ref.name"].as_str());
            let Some(raw) = raw else { continue };
            // In an OCI layout a ref name is often just a tag ("latest").
            let full = (raw.contains('/') || raw.contains(':'))
                .then(|| normalize(raw))
                .flatten();
            match full {
                Some(name) => images.push(ArchiveImage {
                    source_name: ann["org.opencontainers.image.ref.name"]
                        .as_str()
                        .unwrap_or(raw)
                        .to_string(),
                    name,
                }),
                None => tracing::warn!(
                    "{}: image {raw:?} has no full name (org.opencontainers.image.ref.name must be e.g. docker.io/library/busybox:latest); it is not pushed",
                    path.display()
                ),
            }
        }
        return Ok(Archive {
            path: path.to_path_buf(),
            format: ArchiveFormat::Oci,
            images,
        });
    }
    if let Some(manifest) = get("manifest.json") {
        let v: serde_json::Value = serde_json::from_slice(manifest)
            .with_context(|| format!("parsing manifest.json of {}", path.display()))?;
        let mut images = Vec::new();
        for m in v.as_array().into_iter().flatten() {
            for t in m["RepoTags"].as_array().into_iter().flatten() {
                if let Some(name) = t.as_str().and_then(normalize) {
                    images.push(ArchiveImage {
                        source_name: t.as_str().unwrap_or_default().to_string(),
                        name,
                    });
                }
            }
        }
        return Ok(Archive {
            path: path.to_path_buf(),
            format: ArchiveFormat::Docker,
            images,
        });
    }
    bail!(
        "{} is neither an OCI image archive (oci-layout, index.json) nor a docker archive (manifest.json)",
        path.display()
    )
}

/// The `ctr` binary.
pub fn ctr() -> Result<PathBuf> {
    crate::process::find_in_path("ctr")
        .ok_or_else(|| anyhow!("cannot find `ctr` on PATH; install containerd with `make deps`"))
}

/// Import `archive` into the containerd at `socket` (namespace k8s.io) and
/// add the extra tags.
pub fn import(socket: &Path, archive: &Archive) -> Result<()> {
    let ctr = ctr()?;
    let ctr = ctr.to_string_lossy();
    let sock = socket.to_string_lossy();
    let file = archive.path.to_string_lossy();
    run(
        &ctr,
        &["-a", &sock, "-n", K8S_NAMESPACE, "images", "import", &file],
    )
    .with_context(|| format!("importing {}", archive.path.display()))?;
    for img in &archive.images {
        for extra in extra_names(&img.name) {
            run(
                &ctr,
                &[
                    "-a",
                    &sock,
                    "-n",
                    K8S_NAMESPACE,
                    "images",
                    "tag",
                    "--force",
                    &img.name,
                    &extra,
                ],
            )
            .with_context(|| format!("tagging {} as {extra}", img.name))?;
        }
    }
    Ok(())
}

/// Push every image of `archive` (and its extra tags) to the plain-HTTP
/// registry at `registry` (`host:port`).
pub fn push(registry: &str, archive: &Archive) -> Result<()> {
    let skopeo = crate::process::find_in_path("skopeo")
        .ok_or_else(|| anyhow!("cannot find `skopeo` on PATH; install it with `make deps`"))?;
    let skopeo = skopeo.to_string_lossy();
    let transport = match archive.format {
        ArchiveFormat::Oci => "oci-archive",
        ArchiveFormat::Docker => "docker-archive",
    };
    let file = archive.path.display().to_string();
    for img in &archive.images {
        let src = if archive.images.len() == 1 {
            format!("{transport}:{file}")
        } else {
            format!("{transport}:{file}:{}", img.source_name)
        };
        let mut names = vec![img.name.clone()];
        names.extend(extra_names(&img.name));
        for name in names {
            let dest = format!("docker://{registry}/{}", registry_path(&name));
            run(
                &skopeo,
                &[
                    "--insecure-policy",
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    &src,
                    &dest,
                ],
            )
            .with_context(|| format!("pushing {name} to {registry}"))?;
        }
    }
    Ok(())
}

/// Where the images built by `hack/images` are: `$FERROKUBE_IMAGES_DIR`,
/// else `<bin dir>/../images` (`_output/images` beside `_output/bin`).
pub fn images_dir(bin_dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FERROKUBE_IMAGES_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        return Some(std::path::absolute(&d).unwrap_or(d));
    }
    bin_dir.and_then(Path::parent).map(|p| p.join("images"))
}

/// The `*.tar` files of a directory, sorted.
pub fn archives_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar") && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            normalize("busybox").as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            normalize("busybox:stable").as_deref(),
            Some("docker.io/library/busybox:stable")
        );
        assert_eq!(
            normalize("ferrokube/test-server:latest").as_deref(),
            Some("docker.io/ferrokube/test-server:latest")
        );
        assert_eq!(
            normalize("registry.k8s.io/pause:3.10").as_deref(),
            Some("registry.k8s.io/pause:3.10")
        );
        assert_eq!(
            normalize("localhost:5000/x").as_deref(),
            Some("localhost:5000/x:latest")
        );
        assert_eq!(normalize("3.10"), None);
        assert_eq!(normalize("x@sha256:00"), None);
        assert_eq!(normalize(""), None);
        assert_eq!(
            registry_path("docker.io/library/busybox:latest"),
            "library/busybox:latest"
        );
        assert_eq!(registry_path("registry.k8s.io/pause:3.9"), "pause:3.9");
        assert_eq!(registry_path("localhost:5000/x:1"), "x:1");
        assert_eq!(
            split_tag("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
        assert_eq!(split_tag("a/b:1"), ("a/b", "1"));
        assert_eq!(
            extra_names("registry.k8s.io/pause:3.10"),
            ["registry.k8s.io/pause:3.9"]
        );
        assert_eq!(
            extra_names("docker.io/library/busybox:latest"),
            ["docker.io/library/busybox:stable"]
        );
        assert!(extra_names("docker.io/library/busybox:1.36").is_empty());
    }

    fn tar_with(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut data = Vec::new();
        for (name, content) in files {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", content.len());
            h[124..136].copy_from_slice(size.as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            data.extend_from_slice(&h);
            data.extend_from_slice(content);
            data.resize(data.len().div_ceil(512) * 512, 0);
        }
        data.extend_from_slice(&[0u8; 1024]);
        let f = tempfile::NamedTempFile::new().unwrap();
        fs::write(f.path(), data).unwrap();
        f
    }

    #[test]
    fn inspect_archives() {
        let oci = tar_with(&[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("blobs/sha256/aa", b"xx"),
            (
                "./index.json",
                br#"{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"registry.k8s.io/pause:3.10"}},{"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}"#,
            ),
        ]);
        let a = inspect(oci.path()).unwrap();
        assert_eq!(a.format, ArchiveFormat::Oci);
        assert_eq!(
            a.images,
            [ArchiveImage {
                source_name: "registry.k8s.io/pause:3.10".into(),
                name: "registry.k8s.io/pause:3.10".into()
            }]
        );
        let docker = tar_with(&[(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["busybox:latest","ferrokube/x:1"],"Layers":[]}]"#,
        )]);
        let a = inspect(docker.path()).unwrap();
        assert_eq!(a.format, ArchiveFormat::Docker);
        assert_eq!(
            a.images.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            [
                "docker.io/library/busybox:latest",
                "docker.io/ferrokube/x:1"
            ]
        );
        let junk = tar_with(&[("hello.txt", b"hi")]);
        assert!(inspect(junk.path()).is_err());
        let not_tar = tempfile::NamedTempFile::new().unwrap();
        fs::write(not_tar.path(), vec![b'x'; 2000]).unwrap();
        assert!(inspect(not_tar.path()).is_err());
    }
}
