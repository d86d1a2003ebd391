#!/usr/bin/env bash
# Builds the OCI image archives ferrokube clusters need, from Debian packages
# and our own binaries only (no registry is ever contacted). See README.md.
#
#   hack/images/build.sh [IMAGE...]      # default: every image
#
# Environment:
#   BIN_DIR     where the ferrokube binaries are (default: _output/bin)
#   IMAGES_DIR  where the archives go          (default: _output/images)
#   SOURCE_DATE_EPOCH  timestamp for files and configs (default: 0)
#
# Each image becomes $IMAGES_DIR/<file>.tar, an OCI image layout in a tar
# (one manifest, one gzip layer) whose index.json names the image with both
# io.containerd.image.name (the full reference, used by `ctr images import`)
# and org.opencontainers.image.ref.name (the tag). It imports with
# `ctr -n k8s.io images import FILE` and pushes with
# `skopeo copy oci-archive:FILE docker://HOST/REPO:TAG`.
#
# The output is deterministic: the same inputs give byte-identical archives,
# and an archive whose content did not change is left untouched.

set -euo pipefail
umask 022
export LC_ALL=C

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BIN_DIR="${BIN_DIR:-$repo/_output/bin}"
IMAGES_DIR="${IMAGES_DIR:-$repo/_output/images}"
EPOCH="${SOURCE_DATE_EPOCH:-0}"
ALL_IMAGES=(pause busybox test-server cluster-dns local-path-provisioner)

die() { echo "build.sh: $*" >&2; exit 1; }

for tool in tar gzip sha256sum ldd; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
  amd64 | x86_64) ARCH=amd64 ;;
  arm64 | aarch64) ARCH=arm64 ;;
  ppc64el | ppc64le) ARCH=ppc64le ;;
  s390x) ARCH=s390x ;;
  riscv64) ARCH=riscv64 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac
CREATED="$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
DEFAULT_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

work="$(mktemp -d "${TMPDIR:-/tmp}/ferrokube-images.XXXXXX")"
trap 'rm -rf "$work"; rm -f "$IMAGES_DIR"/.*.tar.tmp' EXIT

# ---------------------------------------------------------------- helpers

# tar with fixed order, owners and times: the same tree gives the same bytes.
# Usage: det_tar DIR OUT  (archives DIR's content, without a leading ./)
det_tar() {
  local dir="$1" out="$2"
  (cd "$dir" && find . -mindepth 1 -printf '%P\n' | sort) >"$work/list"
  tar -C "$dir" --create --file="$out" --format=gnu --no-recursion \
    --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
    --verbatim-files-from --files-from="$work/list"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# Stores file $1 as a blob of the layout $2; prints its digest.
put_blob() {
  local d
  d="$(sha "$1")"
  mkdir -p "$2/blobs/sha256"
  cp "$1" "$2/blobs/sha256/$d"
  echo "$d"
}

# JSON array of strings (the strings must not need escaping).
json_array() {
  local out="" s
  for s in "$@"; do
    case "$s" in *'"'* | *'\'*) die "cannot encode $s" ;; esac
    out+="${out:+,}\"$s\""
  done
  echo "[$out]"
}

# Copies executable $1 to $2/$3 (stripped when `strip` exists) and the shared
# libraries it needs, at the paths `ldd` reports (the dynamic loader included).
install_binary() {
  local src="$1" root="$2" dst="$3" lib
  [ -x "$src" ] || die "$src is missing: run 'make build' first"
  mkdir -p "$root/$(dirname "$dst")"
  if command -v strip >/dev/null; then
    strip --strip-all -o "$root/$dst" "$src"
  else
    cp "$src" "$root/$dst"
  fi
  chmod 0755 "$root/$dst"
  if ! ldd "$src" >"$work/ldd" 2>&1; then
    grep -q 'not a dynamic executable' "$work/ldd" && return 0
    die "ldd $src: $(cat "$work/ldd")"
  fi
  grep -q 'not found' "$work/ldd" && die "ldd $src: $(grep 'not found' "$work/ldd")"
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' "$work/ldd" |
    while read -r lib; do
      [ -e "$root$lib" ] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
      chmod 0755 "$root$lib"
    done
}

# Writes the OCI archive $IMAGES_DIR/$file.tar for the rootfs $root.
# Usage: write_image FILE REF ROOT CONFIG_FIELDS
# CONFIG_FIELDS: the JSON members of the config's "config" object.
write_image() {
  local file="$1" ref="$2" root="$3" fields="$4"
  local layout="$work/$file-layout" tag="${2##*:}"
  local layer diff_id layer_digest config config_digest manifest manifest_digest

  layer="$work/$file-layer.tar"
  det_tar "$root" "$layer"
  diff_id="$(sha "$layer")"
  gzip -9 -n -c "$layer" >"$layer.gz"
  layer_digest="$(put_blob "$layer.gz" "$layout")"

  config="$work/$file-config.json"
  printf '{"created":"%s","architecture":"%s","os":"linux","config":{%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"hack/images/build.sh %s","comment":"ferrokube"}]}' \
    "$CREATED" "$ARCH" "$fields" "$diff_id" "$CREATED" "$file" >"$config"
  config_digest="$(put_blob "$config" "$layout")"

  manifest="$work/$file-manifest.json"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$(size "$config")" "$layer_digest" "$(size "$layer.gz")" >"$manifest"
  manifest_digest="$(put_blob "$manifest" "$layout")"

  printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$(size "$manifest")" "$ARCH" "$ref" "$tag" >"$layout/index.json"

  local out="$IMAGES_DIR/$file.tar" tmp="$IMAGES_DIR/.$file.tar.tmp"
  det_tar "$layout" "$tmp"
  if [ -f "$out" ] && cmp -s "$tmp" "$out"; then
    rm -f "$tmp"
    printf '  %-40s %s (unchanged)\n' "$out" "$ref"
  else
    mv -f "$tmp" "$out"
    printf '  %-40s %s (%s KiB, manifest sha256:%.12s)\n' \
      "$out" "$ref" "$(($(size "$out") / 1024))" "$manifest_digest"
  fi
}

# ---------------------------------------------------------------- images
# Each image_<name> function fills a root filesystem and calls write_image.

# registry.k8s.io/pause:3.10 — the pod sandbox (crates/pause).
image_pause() {
  local root="$work/pause-root"
  mkdir -p "$root"
  install_binary "$BIN_DIR/pause" "$root" pause
  write_image pause registry.k8s.io/pause:3.10 "$root" \
    "\"User\":\"65535:65535\",\"Env\":$(json_array "PATH=$DEFAULT_PATH"),\"Entrypoint\":$(json_array /pause),\"WorkingDir\":\"/\""
}

# docker.io/library/busybox:latest — Debian's busybox-static with every applet.
image_busybox() {
  local root="$work/busybox-root" bb="${BUSYBOX:-/bin/busybox}" applet
  [ -x "$bb" ] || die "$bb is missing: install busybox-static (make deps)"
  if ldd "$bb" >/dev/null 2>&1; then
    die "$bb is dynamically linked: install busybox-static (not busybox)"
  fi
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,home,root,tmp,var/tmp}
  cp "$bb" "$root/bin/busybox"
  chmod 0755 "$root/bin/busybox"
  "$bb" --list-full | while read -r applet; do
    case "$applet" in bin/busybox | linuxrc | "") continue ;; esac
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
  done
  printf '%s\n' \
    'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/home:/bin/false' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$root/etc/group"
  printf '%s\n' 'hosts: files dns' 'passwd: files' 'group: files' >"$root/etc/nsswitch.conf"
  chmod 0644 "$root"/etc/{passwd,group,nsswitch.conf}
  chmod 0700 "$root/root"
  chmod 1777 "$root/tmp" "$root/var/tmp"
  write_image busybox docker.io/library/busybox:latest "$root" \
    "\"Env\":$(json_array "PATH=$DEFAULT_PATH"),\"Cmd\":$(json_array sh)"
}

# docker.io/ferrokube/test-server:latest — crates/test-server.
image_test-server() {
  local root="$work/test-server-root"
  mkdir -p "$root/tmp"
  chmod 1777 "$root/tmp"
  install_binary "$BIN_DIR/test-server" "$root" test-server
  write_image test-server docker.io/ferrokube/test-server:latest "$root" \
    "\"Env\":$(json_array "PATH=$DEFAULT_PATH"),\"Entrypoint\":$(json_array /test-server),\"ExposedPorts\":{\"8080/tcp\":{},\"8081/tcp\":{},\"8082/udp\":{}},\"WorkingDir\":\"/\""
}

# registry.k8s.io/ferrokube/cluster-dns:latest — crates/dns, the cluster DNS
# server the hack/addons/dns.yaml Deployment runs.
image_cluster-dns() {
  local root="$work/cluster-dns-root"
  mkdir -p "$root/tmp"
  chmod 1777 "$root/tmp"
  install_binary "$BIN_DIR/cluster-dns" "$root" cluster-dns
  write_image cluster-dns registry.k8s.io/ferrokube/cluster-dns:latest "$root" \
    "\"Env\":$(json_array "PATH=$DEFAULT_PATH"),\"Entrypoint\":$(json_array /cluster-dns),\"ExposedPorts\":{\"53/tcp\":{},\"53/udp\":{},\"8080/tcp\":{},\"8181/tcp\":{},\"9153/tcp\":{}},\"WorkingDir\":\"/\""
}

# registry.k8s.io/ferrokube/local-path-provisioner:latest —
# crates/local-path-provisioner, the dynamic hostPath provisioner the
# hack/addons/local-path.yaml Deployment runs (its helper pods use busybox).
image_local-path-provisioner() {
  local root="$work/local-path-provisioner-root"
  mkdir -p "$root/tmp" "$root/etc/config"
  chmod 1777 "$root/tmp"
  install_binary "$BIN_DIR/local-path-provisioner" "$root" local-path-provisioner
  write_image local-path-provisioner registry.k8s.io/ferrokube/local-path-provisioner:latest "$root" \
    "\"Env\":$(json_array "PATH=$DEFAULT_PATH"),\"Entrypoint\":$(json_array /local-path-provisioner),\"WorkingDir\":\"/\""
}

# ---------------------------------------------------------------- main

images=("$@")
[ ${#images[@]} -gt 0 ] || images=("${ALL_IMAGES[@]}")
mkdir -p "$IMAGES_DIR"
echo "Building images in $IMAGES_DIR"
for img in "${images[@]}"; do
  declare -F "image_$img" >/dev/null || die "unknown image $img (known: ${ALL_IMAGES[*]})"
  "image_$img"
done
