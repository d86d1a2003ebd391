//! Pods and everything that embeds a PodSpec: upstream's v1 defaulting
//! (SetDefaults_PodSpec/Pod/Container/Probe/Volume...), `ValidatePodSpec`
//! and friends, QoS class computation, the update rules of
//! `ValidatePodUpdate`, and `printPod` for the table.
//!
//! The `pub` functions here are meant for other workload resources too
//! (ReplicationControllers here; Deployments, Jobs... elsewhere): they take
//! and return plain JSON and field paths as upstream prints them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use apimachinery::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    validate_annotations, validate_label_selector, validate_labels,
};
use apimachinery::FieldError;
use serde_json::{json, Map, Value};

use super::quantity::{canonicalize_list, canonicalize_one, Qty};
use crate::strategy::{
    age_cell, age_column, column, human_duration, parse_time, ResourceInfo, Strategy, Subresource,
    TableColumn,
};
use crate::util::*;

// ===========================================================================
// Defaulting
// ===========================================================================

/// Whether `image` resolves to the `latest` tag (upstream: no tag and no
/// digest, or an explicit `:latest`); images that do not parse count as not
/// latest, so they get IfNotPresent like upstream.
fn image_is_latest(image: &str) -> bool {
    if image.is_empty() || image.trim() != image {
        return false;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // The first component is a registry host when it has '.' or ':', is
    // localhost, or has upper case letters; the rest must be lower case.
    let path = match repo.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            rest
        }
        _ => repo,
    };
    if path.is_empty()
        || !path
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        || path.starts_with(['.', '_', '-', '/'])
        || path.ends_with(['.', '_', '-', '/'])
    {
        return false;
    }
    if let Some(t) = tag {
        if t.is_empty()
            || t.len() > 128
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            || t.starts_with(['.', '-'])
        {
            return false;
        }
    }
    match (tag, digest) {
        (Some(t), _) => t == "latest",
        (None, Some(_)) => false,
        (None, None) => true,
    }
}

fn default_http_get(h: &mut Value) {
    default_str(h, "path", "/");
    default_str(h, "scheme", "HTTP");
}

fn default_handler(h: &mut Value) {
    with_mut(h, "httpGet", default_http_get);
    with_mut(h, "grpc", |g| default_ptr(g, "service", json!("")));
}

fn default_probe(p: &mut Value) {
    default_int(p, "timeoutSeconds", 1);
    default_int(p, "periodSeconds", 10);
    default_int(p, "successThreshold", 1);
    default_int(p, "failureThreshold", 3);
    default_handler(p);
}

fn default_field_ref(v: &mut Value) {
    with_mut(v, "fieldRef", |f| default_str(f, "apiVersion", "v1"));
}

/// SetDefaults_Container plus the nested defaults of a container.
fn default_container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    let pull = c
        .get("imagePullPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if pull.is_empty() {
        let policy = if image_is_latest(s(c, "image")) {
            "Always"
        } else {
            "IfNotPresent"
        };
        default_str(c, "imagePullPolicy", policy);
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    each_mut(c, "ports", |p| default_str(p, "protocol", "TCP"));
    each_mut(c, "env", |e| with_mut(e, "valueFrom", default_field_ref));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        with_mut(c, probe, default_probe);
    }
    with_mut(c, "lifecycle", |l| {
        with_mut(l, "postStart", default_handler);
        with_mut(l, "preStop", default_handler);
    });
    // ResourceRequirements is a struct upstream: it always serializes.
    default_ptr(c, "resources", json!({}));
    if let Some(r) = c.get_mut("resources") {
        canonicalize_list(r.get_mut("limits"), true);
        canonicalize_list(r.get_mut("requests"), true);
    }
}

fn default_items(v: &mut Value) {
    each_mut(v, "items", default_field_ref);
}

/// SetDefaults_Volume and the volume source defaults.
fn default_volume(v: &mut Value) {
    let Some(o) = v.as_object_mut() else { return };
    let has_source = o.iter().any(|(k, x)| k != "name" && !x.is_null());
    if !has_source {
        o.insert("emptyDir".into(), json!({}));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        with_mut(v, key, |src| default_ptr(src, "defaultMode", json!(420)));
    }
    with_mut(v, "downwardAPI", default_items);
    with_mut(v, "projected", |p| {
        each_mut(p, "sources", |src| {
            with_mut(src, "downwardAPI", default_items);
            with_mut(src, "serviceAccountToken", |t| {
                default_ptr(t, "expirationSeconds", json!(3600))
            });
        })
    });
    with_mut(v, "hostPath", |h| default_ptr(h, "type", json!("")));
    with_mut(v, "emptyDir", |e| canonicalize_one(e.get_mut("sizeLimit")));
    with_mut(v, "iscsi", |i| default_str(i, "iscsiInterface", "default"));
    with_mut(v, "rbd", |r| {
        default_str(r, "pool", "rbd");
        default_str(r, "user", "admin");
        default_str(r, "keyring", "/etc/ceph/keyring");
    });
    with_mut(v, "azureDisk", |a| {
        default_ptr(a, "cachingMode", json!("ReadWrite"));
        default_ptr(a, "kind", json!("Shared"));
        default_ptr(a, "fsType", json!("ext4"));
        default_ptr(a, "readOnly", json!(false));
    });
    with_mut(v, "scaleIO", |x| {
        default_str(x, "storageMode", "ThinProvisioned");
        default_str(x, "fsType", "xfs");
    });
    with_mut(v, "ephemeral", |e| {
        with_mut(e, "volumeClaimTemplate", |t| {
            with_mut(t, "spec", super::storage::default_pvc_spec)
        })
    });
}

/// Upstream `SetDefaults_PodSpec` with every nested default (containers,
/// probes, volumes ...). Use it for pod templates; pods themselves get
/// [`default_pod`] on top.
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_ptr(spec, "securityContext", json!({}));
    default_ptr(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        each_mut(spec, key, default_container);
    }
    each_mut(spec, "volumes", default_volume);
    canonicalize_list(spec.get_mut("overhead"), true);
    // v1's deprecated serviceAccount mirrors serviceAccountName.
    let sa_name = s(spec, "serviceAccountName").to_string();
    let sa_old = s(spec, "serviceAccount").to_string();
    if let Some(o) = spec.as_object_mut() {
        if sa_name.is_empty() && !sa_old.is_empty() {
            o.insert("serviceAccountName".into(), json!(sa_old));
        } else if !sa_name.is_empty() {
            o.insert("serviceAccount".into(), json!(sa_name));
        }
    }
}

/// Defaults of a PodTemplateSpec (`{metadata, spec}`).
pub fn default_pod_template_spec(tpl: &mut Value) {
    if let Some(spec) = tpl.get_mut("spec") {
        default_pod_spec(spec);
    }
}

/// `requests` default to `limits` for each resource only in limits.
fn default_requests_from_limits(c: &mut Value) {
    let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let req = res.entry("requests").or_insert_with(|| json!({}));
    if req.is_null() {
        *req = json!({});
    }
    if let Some(req) = req.as_object_mut() {
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

/// Everything upstream defaults on a Pod: the PodSpec defaults plus
/// SetDefaults_Pod (requests from limits, enableServiceLinks, host-network
/// ports) and the podIP/podIPs, hostIP/hostIPs mirrors of the v1 status.
pub fn default_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec") else {
        return;
    };
    default_pod_spec(spec);
    each_mut(spec, "containers", default_requests_from_limits);
    each_mut(spec, "initContainers", default_requests_from_limits);
    default_ptr(spec, "enableServiceLinks", json!(true));
    if bool_at(spec, "/hostNetwork") {
        for key in ["containers", "initContainers"] {
            each_mut(spec, key, |c| {
                each_mut(c, "ports", |p| {
                    if let Some(cp) = p.get("containerPort").and_then(as_i64) {
                        default_int(p, "hostPort", cp);
                    }
                })
            });
        }
    }
    if let Some(status) = pod.get_mut("status") {
        mirror_ips(status, "podIP", "podIPs");
        mirror_ips(status, "hostIP", "hostIPs");
    }
}

/// v1 keeps a singular IP next to the list: fill whichever is missing.
fn mirror_ips(status: &mut Value, single: &str, plural: &str) {
    let Some(o) = status.as_object_mut() else {
        return;
    };
    let first = o
        .get(plural)
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .map(|x| s(x, "ip").to_string());
    let one = o
        .get(single)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match first {
        Some(ip) if !ip.is_empty() => {
            o.insert(single.into(), json!(ip));
        }
        _ if !one.is_empty() => {
            o.insert(plural.into(), json!([{ "ip": one }]));
        }
        _ => {}
    }
}

// ===========================================================================
// QoS
// ===========================================================================

/// Upstream `ComputePodQOS` over a (defaulted) pod spec.
pub fn compute_qos(spec: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, Qty> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Qty> = BTreeMap::new();
    let mut guaranteed = true;
    for c in arr(spec, "containers")
        .iter()
        .chain(arr(spec, "initContainers"))
    {
        for (list, acc) in [("requests", &mut requests), ("limits", &mut limits)] {
            let mut found: HashSet<&str> = HashSet::new();
            if let Some(m) = c
                .pointer(&format!("/resources/{list}"))
                .and_then(Value::as_object)
            {
                for (name, v) in m {
                    let name = name.as_str();
                    if name != "cpu" && name != "memory" {
                        continue;
                    }
                    let Some(q) = Qty::from_json(v) else { continue };
                    if q.is_positive() {
                        found.insert(name);
                        let sum = acc.get(name).map(|x| x.add(&q)).unwrap_or(q);
                        acc.insert(name, sum);
                    }
                }
            }
            if list == "limits" && !(found.contains("cpu") && found.contains("memory")) {
                guaranteed = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            if limits
                .get(name)
                .is_none_or(|l| l.cmp(req) != std::cmp::Ordering::Equal)
            {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

// ===========================================================================
// Validation
// ===========================================================================

const QUANTITY_REGEX_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// What a volume name refers to, for volumeMounts/volumeDevices.
struct Volumes {
    /// name → whether the source is a PVC (or generic ephemeral) volume.
    names: HashMap<String, bool>,
}

const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

fn validate_path_no_backsteps(p: &str, path: &str) -> Vec<FieldError> {
    if p.split('/').any(|x| x == "..") {
        vec![FieldError::invalid(path, p, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

fn validate_local_descending_path(p: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "must be a relative path"));
    }
    errs.extend(validate_path_no_backsteps(p, path));
    errs
}

fn validate_local_non_reserved_path(p: &str, path: &str) -> Vec<FieldError> {
    let mut errs = validate_local_descending_path(p, path);
    if p.starts_with("..") && !p.starts_with("../") {
        errs.push(FieldError::invalid(path, p, "must not start with '..'"));
    }
    errs
}

fn validate_file_mode(mode: Option<&Value>, path: &str) -> Vec<FieldError> {
    match mode.and_then(as_i64) {
        Some(m) if !(0..=0o777).contains(&m) => {
            vec![FieldError::invalid(
                path,
                m,
                "must be a number between 0 and 0777 (octal), both inclusive",
            )]
        }
        _ => Vec::new(),
    }
}

fn validate_key_to_paths(src: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, item) in arr(src, "items").iter().enumerate() {
        let p = format!("{path}.items[{i}]");
        if s(item, "key").is_empty() {
            errs.push(FieldError::required(format!("{p}.key"), ""));
        }
        let ip = s(item, "path");
        if ip.is_empty() {
            errs.push(FieldError::required(format!("{p}.path"), ""));
        } else {
            errs.extend(validate_local_non_reserved_path(ip, &format!("{p}.path")));
        }
        errs.extend(validate_file_mode(item.get("mode"), &format!("{p}.mode")));
    }
    errs.extend(validate_file_mode(
        src.get("defaultMode"),
        &format!("{path}.defaultMode"),
    ));
    errs
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn validate_object_field_selector(fs: &Value, allowed: &[&str], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s(fs, "apiVersion").is_empty() {
        errs.push(FieldError::required(format!("{path}.apiVersion"), ""));
        return errs;
    }
    let fp = s(fs, "fieldPath");
    if fp.is_empty() {
        errs.push(FieldError::required(format!("{path}.fieldPath"), ""));
        return errs;
    }
    if let Some((base, rest)) = fp.split_once('[') {
        let sub = rest
            .strip_suffix(']')
            .map(|x| x.trim_matches('\''))
            .unwrap_or(rest);
        match base {
            "metadata.annotations" => errs.extend(invalid_each(
                path,
                &sub.to_lowercase(),
                is_qualified_name(&sub.to_lowercase()),
            )),
            "metadata.labels" => errs.extend(invalid_each(path, sub, is_qualified_name(sub))),
            _ => errs.push(FieldError::invalid(
                path,
                base,
                "does not support subscript",
            )),
        }
    } else if !allowed.contains(&fp) {
        errs.push(FieldError::not_supported(
            format!("{path}.fieldPath"),
            fp,
            allowed,
        ));
    }
    errs
}

fn validate_volume_source(
    v: &Value,
    path: &str,
    name: &str,
    pod_name: Option<&str>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    for (key, err_name) in VOLUME_SOURCES {
        let Some(src) = v.get(*key).filter(|x| !x.is_null()) else {
            continue;
        };
        if count > 0 {
            errs.push(FieldError::forbidden(
                format!("{path}.{err_name}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = format!("{path}.{key}");
        match *key {
            "emptyDir" => {
                if let Some(q) = src.get("sizeLimit").and_then(Qty::from_json) {
                    if q.is_negative() {
                        errs.push(FieldError::forbidden(
                            format!("{p}.sizeLimit"),
                            "SizeLimit field must be a valid resource quantity",
                        ));
                    }
                }
            }
            "hostPath" => {
                let hp = s(src, "path");
                if hp.is_empty() {
                    errs.push(FieldError::required(format!("{p}.path"), ""));
                } else {
                    errs.extend(validate_path_no_backsteps(hp, &format!("{p}.path")));
                    let t = s(src, "type");
                    const TYPES: &[&str] = &[
                        "",
                        "BlockDevice",
                        "CharDevice",
                        "Directory",
                        "DirectoryOrCreate",
                        "File",
                        "FileOrCreate",
                        "Socket",
                    ];
                    if !TYPES.contains(&t) {
                        errs.push(FieldError::not_supported(format!("{p}.type"), t, TYPES));
                    }
                }
            }
            "secret" => {
                if s(src, "secretName").is_empty() {
                    errs.push(FieldError::required(format!("{p}.secretName"), ""));
                }
                errs.extend(validate_key_to_paths(src, &p));
            }
            "configMap" => {
                if s(src, "name").is_empty() {
                    errs.push(FieldError::required(format!("{p}.name"), ""));
                }
                errs.extend(validate_key_to_paths(src, &p));
            }
            "persistentVolumeClaim" if s(src, "claimName").is_empty() => {
                errs.push(FieldError::required(format!("{p}.claimName"), ""));
            }
            "nfs" => errs.extend(validate_nfs_source(src, &p)),
            "downwardAPI" => {
                for (i, item) in arr(src, "items").iter().enumerate() {
                    let ip = format!("{p}.items[{i}]");
                    let fpath = s(item, "path");
                    if fpath.is_empty() {
                        errs.push(FieldError::required(format!("{ip}.path"), ""));
                    } else {
                        errs.extend(validate_local_non_reserved_path(
                            fpath,
                            &format!("{ip}.path"),
                        ));
                    }
                    errs.extend(validate_file_mode(item.get("mode"), &format!("{ip}.mode")));
                    if let Some(fr) = item.get("fieldRef").filter(|x| !x.is_null()) {
                        errs.extend(validate_object_field_selector(
                            fr,
                            VOLUME_FIELD_PATHS,
                            &format!("{ip}.fieldRef"),
                        ));
                    }
                }
                errs.extend(validate_file_mode(
                    src.get("defaultMode"),
                    &format!("{p}.defaultMode"),
                ));
            }
            "projected" => {
                for (i, proj) in arr(src, "sources").iter().enumerate() {
                    let pp = format!("{p}.sources[{i}]");
                    let kinds = [
                        "secret",
                        "configMap",
                        "downwardAPI",
                        "serviceAccountToken",
                        "clusterTrustBundle",
                    ];
                    let n = kinds.iter().filter(|k| has(proj, k)).count();
                    if n > 1 {
                        for k in kinds.iter().filter(|k| has(proj, k)).skip(1) {
                            errs.push(FieldError::forbidden(
                                format!("{pp}.{k}"),
                                "may not specify more than 1 volume type per source",
                            ));
                        }
                    }
                    if let Some(t) = proj.get("serviceAccountToken").filter(|x| !x.is_null()) {
                        let tp = s(t, "path");
                        if tp.is_empty() {
                            errs.push(FieldError::required(
                                format!("{pp}.serviceAccountToken.path"),
                                "",
                            ));
                        } else {
                            errs.extend(validate_local_non_reserved_path(
                                tp,
                                &format!("{pp}.serviceAccountToken.path"),
                            ));
                        }
                        if let Some(e) = t.get("expirationSeconds").and_then(as_i64) {
                            if e < 600 {
                                errs.push(FieldError::invalid(
                                    format!("{pp}.serviceAccountToken.expirationSeconds"),
                                    e,
                                    "may not specify a duration less than 10 minutes",
                                ));
                            } else if e > 1 << 32 {
                                errs.push(FieldError::invalid(
                                    format!("{pp}.serviceAccountToken.expirationSeconds"),
                                    e,
                                    "may not specify a duration larger than 2^32 seconds",
                                ));
                            }
                        }
                    }
                    for k in ["secret", "configMap"] {
                        if let Some(x) = proj.get(k).filter(|x| !x.is_null()) {
                            errs.extend(validate_key_to_paths(x, &format!("{pp}.{k}")));
                        }
                    }
                }
                errs.extend(validate_file_mode(
                    src.get("defaultMode"),
                    &format!("{p}.defaultMode"),
                ));
            }
            "csi" if s(src, "driver").is_empty() => {
                errs.push(FieldError::required(format!("{p}.driver"), ""));
            }
            "ephemeral" => match src.get("volumeClaimTemplate").filter(|x| !x.is_null()) {
                None => errs.push(FieldError::required(format!("{p}.volumeClaimTemplate"), "")),
                Some(t) => {
                    errs.extend(super::storage::validate_pvc_spec(
                        t.get("spec").unwrap_or(&Value::Null),
                        &format!("{p}.volumeClaimTemplate.spec"),
                    ));
                    if let Some(pod) = pod_name.filter(|n| !n.is_empty() && !name.is_empty()) {
                        let pvc = format!("{pod}-{name}");
                        for msg in is_dns1123_subdomain(&pvc) {
                            errs.push(FieldError::invalid(
                                format!("{path}.name"),
                                name,
                                format!("PVC name {pvc:?}: {msg}"),
                            ));
                        }
                    }
                }
            },
            "gitRepo" => {
                if s(src, "repository").is_empty() {
                    errs.push(FieldError::required(format!("{p}.repository"), ""));
                }
                errs.extend(validate_local_descending_path(
                    s(src, "directory"),
                    &format!("{p}.directory"),
                ));
            }
            "image" if s(src, "reference").is_empty() => {
                errs.push(FieldError::required(format!("{p}.reference"), ""));
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    errs
}

fn validate_volumes(
    spec: &Value,
    path: &str,
    pod_name: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Volumes {
    let mut names = HashMap::new();
    for (i, v) in arr(spec, "volumes").iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let name = s(v, "name");
        let mut el = validate_volume_source(v, &ip, name, pod_name);
        if name.is_empty() {
            el.push(FieldError::required(format!("{ip}.name"), ""));
        } else {
            el.extend(invalid_each(
                &format!("{ip}.name"),
                name,
                is_dns1123_label(name),
            ));
        }
        if names.contains_key(name) {
            el.push(FieldError::duplicate(format!("{ip}.name"), name));
        }
        if el.is_empty() {
            names.insert(
                name.to_string(),
                has(v, "persistentVolumeClaim") || has(v, "ephemeral"),
            );
        } else {
            errs.extend(el);
        }
    }
    Volumes { names }
}

fn validate_container_ports(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, p) in arr(c, "ports").iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let name = s(p, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(invalid_each(&format!("{ip}.name"), name, msgs));
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(format!("{ip}.name"), name));
            }
        }
        let cp = p.get("containerPort").and_then(as_i64).unwrap_or(0);
        if cp == 0 {
            errs.push(FieldError::required(format!("{ip}.containerPort"), ""));
        } else {
            for msg in is_valid_port_num(cp) {
                errs.push(FieldError::invalid(format!("{ip}.containerPort"), cp, msg));
            }
        }
        let hp = p.get("hostPort").and_then(as_i64).unwrap_or(0);
        if hp != 0 {
            for msg in is_valid_port_num(hp) {
                errs.push(FieldError::invalid(format!("{ip}.hostPort"), hp, msg));
            }
        }
        errs.extend(validate_protocol(p, &format!("{ip}.protocol")));
    }
    errs
}

fn validate_env(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, e) in arr(c, "env").iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let name = s(e, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{ip}.name"), ""));
        } else {
            errs.extend(invalid_each(
                &format!("{ip}.name"),
                name,
                is_env_var_name(name),
            ));
        }
        let Some(vf) = e.get("valueFrom").filter(|x| !x.is_null()) else {
            continue;
        };
        let vp = format!("{ip}.valueFrom");
        let mut n = 0;
        if let Some(fr) = vf.get("fieldRef").filter(|x| !x.is_null()) {
            n += 1;
            errs.extend(validate_object_field_selector(
                fr,
                ENV_FIELD_PATHS,
                &format!("{vp}.fieldRef"),
            ));
        }
        if let Some(rr) = vf.get("resourceFieldRef").filter(|x| !x.is_null()) {
            n += 1;
            let r = s(rr, "resource");
            const RES: &[&str] = &[
                "limits.cpu",
                "limits.ephemeral-storage",
                "limits.memory",
                "requests.cpu",
                "requests.ephemeral-storage",
                "requests.memory",
            ];
            if r.is_empty() {
                errs.push(FieldError::required(
                    format!("{vp}.resourceFieldRef.resource"),
                    "",
                ));
            } else if !RES.contains(&r)
                && !r.starts_with("requests.hugepages-")
                && !r.starts_with("limits.hugepages-")
            {
                errs.push(FieldError::not_supported(
                    format!("{vp}.resourceFieldRef.resource"),
                    r,
                    RES,
                ));
            }
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(kr) = vf.get(key).filter(|x| !x.is_null()) {
                n += 1;
                let kp = format!("{vp}.{key}");
                let nm = s(kr, "name");
                errs.extend(invalid_each(
                    &format!("{kp}.name"),
                    nm,
                    is_dns1123_subdomain(nm),
                ));
                let k = s(kr, "key");
                if k.is_empty() {
                    errs.push(FieldError::required(format!("{kp}.key"), ""));
                } else {
                    errs.extend(invalid_each(&format!("{kp}.key"), k, is_config_map_key(k)));
                }
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(&vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if !s(e, "value").is_empty() {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_env_from(c: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, e) in arr(c, "envFrom").iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let prefix = s(e, "prefix");
        if !prefix.is_empty() {
            errs.extend(invalid_each(
                &format!("{ip}.prefix"),
                prefix,
                is_env_var_name(prefix),
            ));
        }
        let mut n = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = e.get(key).filter(|x| !x.is_null()) {
                n += 1;
                let nm = s(r, "name");
                if nm.is_empty() {
                    errs.push(FieldError::required(format!("{ip}.{key}.name"), ""));
                } else {
                    let masked = if let Some(stripped) = nm.strip_suffix('-') {
                        format!("{stripped}a")
                    } else {
                        nm.to_string()
                    };
                    errs.extend(invalid_each(
                        &format!("{ip}.{key}.name"),
                        nm,
                        is_dns1123_subdomain(&masked),
                    ));
                }
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_volume_mounts(c: &Value, vols: &Volumes, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let devices: HashMap<&str, &str> = arr(c, "volumeDevices")
        .iter()
        .map(|d| (s(d, "name"), s(d, "devicePath")))
        .collect();
    let mut mount_points = HashSet::new();
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let name = s(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{ip}.name"), ""));
        }
        if !vols.names.contains_key(name) {
            errs.push(FieldError::not_found(format!("{ip}.name"), name));
        }
        let mp = s(m, "mountPath");
        if mp.is_empty() {
            errs.push(FieldError::required(format!("{ip}.mountPath"), ""));
        }
        if !mount_points.insert(mp) {
            errs.push(FieldError::invalid(
                format!("{ip}.mountPath"),
                mp,
                "must be unique",
            ));
        }
        errs.extend(clashes_with_other_list(
            &ip,
            name,
            ("mountPath", mp),
            &devices,
            "volumeDevices",
        ));
        // Upstream reports these two at the list's path, not the item's.
        let sub = s(m, "subPath");
        if !sub.is_empty() {
            errs.extend(validate_local_descending_path(
                sub,
                &format!("{path}.subPath"),
            ));
        }
        let expr = s(m, "subPathExpr");
        if !expr.is_empty() {
            if !sub.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{ip}.subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(
                expr,
                &format!("{path}.subPathExpr"),
            ));
        }
        let prop = s(m, "mountPropagation");
        if has(m, "mountPropagation")
            && !["Bidirectional", "HostToContainer", "None"].contains(&prop)
        {
            errs.push(FieldError::not_supported(
                format!("{path}.mountPropagation"),
                prop,
                &["Bidirectional", "HostToContainer", "None"],
            ));
        }
    }
    errs
}

/// A volume mount or device (at `ip`) whose name or path is already used
/// by the other list (`others`: name → path, of list `other_list`).
fn clashes_with_other_list(
    ip: &str,
    name: &str,
    (path_field, path): (&str, &str),
    others: &HashMap<&str, &str>,
    other_list: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if others.contains_key(name) {
        errs.push(FieldError::invalid(
            format!("{ip}.name"),
            name,
            format!("must not already exist in {other_list}"),
        ));
    }
    if others.values().any(|p| *p == path) {
        errs.push(FieldError::invalid(
            format!("{ip}.{path_field}"),
            path,
            format!("must not already exist as a path in {other_list}"),
        ));
    }
    errs
}

fn validate_volume_devices(c: &Value, vols: &Volumes, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mounts: HashMap<&str, &str> = arr(c, "volumeMounts")
        .iter()
        .map(|m| (s(m, "name"), s(m, "mountPath")))
        .collect();
    let mut paths = HashSet::new();
    let mut names = HashSet::new();
    for (i, d) in arr(c, "volumeDevices").iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let name = s(d, "name");
        let dp = s(d, "devicePath");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{ip}.name"), ""));
        }
        if names.contains(name) {
            errs.push(FieldError::invalid(
                format!("{ip}.name"),
                name,
                "must be unique",
            ));
        }
        match vols.names.get(name) {
            Some(false) => errs.push(FieldError::invalid(format!("{ip}.name"), name, "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode")),
            None => errs.push(FieldError::not_found(format!("{ip}.name"), name)),
            Some(true) => {}
        }
        if dp.is_empty() {
            errs.push(FieldError::required(format!("{ip}.devicePath"), ""));
        }
        if paths.contains(dp) {
            errs.push(FieldError::invalid(
                format!("{ip}.devicePath"),
                dp,
                "must be unique",
            ));
        }
        if !dp.is_empty() && dp.split('/').any(|x| x == "..") {
            errs.push(FieldError::invalid(
                format!("{ip}.devicePath"),
                dp,
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(dp);
        }
        errs.extend(clashes_with_other_list(
            &ip,
            name,
            ("devicePath", dp),
            &mounts,
            "volumeMounts",
        ));
        if !name.is_empty() {
            names.insert(name);
        }
    }
    errs
}

/// Upstream `ValidateResourceQuantityValue` for one entry of a resource list.
fn validate_quantity_value(name: &str, v: &Value, path: &str) -> (Vec<FieldError>, Option<Qty>) {
    let Some(q) = Qty::from_json(v) else {
        return (
            vec![FieldError::invalid(path, v.clone(), QUANTITY_REGEX_MSG)],
            None,
        );
    };
    let mut errs = Vec::new();
    if q.is_negative() {
        errs.push(FieldError::invalid(
            path,
            q.canonical(),
            "must be greater than or equal to 0",
        ));
    }
    if is_integer_resource_name(name) && q.milli() % 1000 != 0 {
        errs.push(FieldError::invalid(
            path,
            q.canonical(),
            "must be an integer",
        ));
    }
    (errs, Some(q))
}

/// Upstream `ValidateResourceRequirements` (containers and pod overhead).
pub(crate) fn validate_resources(
    res: Option<&Value>,
    claim_names: &BTreeSet<String>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let res = res.unwrap_or(&Value::Null);
    let limits = res
        .get("limits")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let requests = res
        .get("requests")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let lim_path = format!("{path}.limits");
    let req_path = format!("{path}.requests");
    let (mut lim_cpu_mem, mut req_cpu_mem, mut lim_huge, mut req_huge) =
        (false, false, false, false);
    let mut lim_q: HashMap<&str, Qty> = HashMap::new();
    for name in sorted_keys(limits) {
        let p = format!("{lim_path}[{name}]");
        errs.extend(validate_container_resource_name(name, &p));
        let (e, q) =
            validate_quantity_value(name, limits.get(name.as_str()).unwrap_or(&Value::Null), &p);
        errs.extend(e);
        if let Some(q) = q {
            lim_q.insert(name.as_str(), q);
        }
        lim_huge |= is_hugepage_name(name);
        lim_cpu_mem |= name == "cpu" || name == "memory";
    }
    for name in sorted_keys(requests) {
        let p = format!("{req_path}[{name}]");
        errs.extend(validate_container_resource_name(name, &p));
        let (e, q) = validate_quantity_value(
            name,
            requests.get(name.as_str()).unwrap_or(&Value::Null),
            &p,
        );
        errs.extend(e);
        if limits.contains_key(name.as_str()) {
            if let (Some(q), Some(l)) = (q, lim_q.get(name.as_str())) {
                if q != *l && !is_overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        q.canonical(),
                        format!("must be equal to {name} limit of {}", l.canonical()),
                    ));
                } else if q > *l {
                    errs.push(FieldError::invalid(
                        &req_path,
                        q.canonical(),
                        format!(
                            "must be less than or equal to {name} limit of {}",
                            l.canonical()
                        ),
                    ));
                }
            }
        } else if !is_overcommit_allowed(name) {
            errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            ));
        }
        req_huge |= is_hugepage_name(name);
        req_cpu_mem |= name == "cpu" || name == "memory";
    }
    if !lim_cpu_mem && !req_cpu_mem && (req_huge || lim_huge) {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    let mut seen = HashSet::new();
    for (i, c) in arr(res, "claims").iter().enumerate() {
        let name = s(c, "name");
        let p = format!("{path}.claims[{i}]");
        if name.is_empty() {
            errs.push(FieldError::required(&p, ""));
            continue;
        }
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(&p, name));
        }
        if !claim_names.contains(name) {
            let mut e = FieldError::not_found(&p, name);
            e.detail = if claim_names.is_empty() {
                "must be one of the names in pod.spec.resourceClaims which is empty".to_string()
            } else {
                format!(
                    "must be one of the names in pod.spec.resourceClaims: {}",
                    claim_names.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            errs.push(e);
        }
    }
    errs
}

fn validate_id(v: Option<&Value>, path: &str) -> Vec<FieldError> {
    match v.and_then(as_i64) {
        Some(id) if !(0..=2147483647).contains(&id) => vec![FieldError::invalid(
            path,
            id,
            inclusive_range_error(0, 2147483647),
        )],
        _ => Vec::new(),
    }
}

fn validate_container_security_context(sc: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sc) = sc.filter(|x| x.is_object()) else {
        return errs;
    };
    errs.extend(validate_id(
        sc.get("runAsUser"),
        &format!("{path}.runAsUser"),
    ));
    errs.extend(validate_id(
        sc.get("runAsGroup"),
        &format!("{path}.runAsGroup"),
    ));
    if has(sc, "procMount") {
        let pm = s(sc, "procMount");
        if !["Default", "Unmasked"].contains(&pm) {
            errs.push(FieldError::not_supported(
                format!("{path}.procMount"),
                pm,
                &["Default", "Unmasked"],
            ));
        }
    }
    if sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false)
        && sc.get("privileged").and_then(Value::as_bool) == Some(true)
    {
        errs.push(FieldError::invalid(
            path,
            sc.clone(),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    errs.extend(validate_seccomp(
        sc.get("seccompProfile"),
        &format!("{path}.seccompProfile"),
    ));
    errs
}

fn validate_seccomp(p: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(p) = p.filter(|x| x.is_object()) else {
        return errs;
    };
    match s(p, "type") {
        "Localhost" => {
            if s(p, "localhostProfile").is_empty() {
                errs.push(FieldError::required(
                    format!("{path}.localhostProfile"),
                    "must be set when seccomp type is Localhost",
                ));
            }
        }
        "RuntimeDefault" | "Unconfined" => {
            if has(p, "localhostProfile") {
                errs.push(FieldError::invalid(
                    path,
                    p.clone(),
                    "localhostProfile must only be set if seccomp type is Localhost",
                ));
            }
        }
        "" => errs.push(FieldError::required(
            format!("{path}.type"),
            "type is required when seccompProfile is set",
        )),
        t => errs.push(FieldError::not_supported(
            format!("{path}.type"),
            t,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    errs
}

fn validate_resize_policy(c: &Value, path: &str, restart_policy: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    for (i, p) in arr(c, "resizePolicy").iter().enumerate() {
        let rn = s(p, "resourceName");
        if !seen.insert(rn) {
            errs.push(FieldError::duplicate(format!("{path}[{i}]"), rn));
        }
        match rn {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(path, other, &["cpu", "memory"])),
        }
        let rp = s(p, "restartPolicy");
        match rp {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(
                path,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if restart_policy == "Never" && rp != "NotRequired" {
            errs.push(FieldError::invalid(
                path,
                rp,
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs
}

/// Validation common to regular, init and ephemeral containers.
fn validate_container_common(
    c: &Value,
    vols: &Volumes,
    claims: &BTreeSet<String>,
    path: &str,
    restart_policy: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = s(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        errs.extend(invalid_each(
            &format!("{path}.name"),
            name,
            is_dns1123_label(name),
        ));
    }
    if s(c, "image").is_empty() {
        errs.push(FieldError::required(format!("{path}.image"), ""));
    }
    match s(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            format!("{path}.terminationMessagePolicy"),
            "",
        )),
        other => errs.push(FieldError::not_supported(
            format!("{path}.terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs.extend(validate_container_ports(c, &format!("{path}.ports")));
    errs.extend(validate_env(c, &format!("{path}.env")));
    errs.extend(validate_env_from(c, &format!("{path}.envFrom")));
    errs.extend(validate_volume_mounts(
        c,
        vols,
        &format!("{path}.volumeMounts"),
    ));
    errs.extend(validate_volume_devices(
        c,
        vols,
        &format!("{path}.volumeDevices"),
    ));
    match s(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(format!("{path}.imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            format!("{path}.imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    errs.extend(validate_resources(
        c.get("resources"),
        claims,
        &format!("{path}.resources"),
    ));
    errs.extend(validate_resize_policy(
        c,
        &format!("{path}.resizePolicy"),
        restart_policy,
    ));
    errs.extend(validate_container_security_context(
        c.get("securityContext"),
        &format!("{path}.securityContext"),
    ));
    errs
}

fn validate_handler(
    h: &Value,
    grace: Option<i64>,
    path: &str,
    allow_grpc: bool,
    allow_sleep: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut n = 0;
    for key in ["exec", "httpGet", "tcpSocket", "grpc", "sleep"] {
        if (key == "grpc" && !allow_grpc) || (key == "sleep" && !allow_sleep) {
            continue;
        }
        let Some(x) = h.get(key).filter(|x| !x.is_null()) else {
            continue;
        };
        let p = format!("{path}.{key}");
        if n > 0 {
            errs.push(FieldError::forbidden(
                p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        n += 1;
        match key {
            "exec" => {
                if arr(x, "command").is_empty() {
                    errs.push(FieldError::required(format!("{p}.command"), ""));
                }
            }
            "httpGet" => {
                if s(x, "path").is_empty() {
                    errs.push(FieldError::required(format!("{p}.path"), ""));
                }
                errs.extend(validate_port_num_or_name(
                    x.get("port"),
                    &format!("{p}.port"),
                ));
                let scheme = s(x, "scheme");
                if !["HTTP", "HTTPS"].contains(&scheme) {
                    errs.push(FieldError::not_supported(
                        format!("{p}.scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
            "tcpSocket" => errs.extend(validate_port_num_or_name(
                x.get("port"),
                &format!("{p}.port"),
            )),
            "grpc" => {
                let port = x.get("port").and_then(as_i64).unwrap_or(0);
                for msg in is_valid_port_num(port) {
                    errs.push(FieldError::invalid(format!("{p}.port"), port, msg));
                }
            }
            _ => {
                let secs = x.get("seconds").and_then(as_i64).unwrap_or(0);
                let g = grace.unwrap_or(30);
                if secs <= 0 || secs > g {
                    errs.push(FieldError::invalid(&p, secs, format!("must be greater than 0 and less than terminationGracePeriodSeconds ({g})")));
                }
            }
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

fn validate_probe(c: &Value, key: &str, grace: Option<i64>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(p) = c.get(key).filter(|x| !x.is_null()) else {
        return errs;
    };
    let pp = format!("{path}.{key}");
    errs.extend(validate_handler(p, grace, &pp, true, false));
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        let v = p.get(f).and_then(as_i64).unwrap_or(0);
        if v < 0 {
            errs.push(FieldError::invalid(
                format!("{pp}.{f}"),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(t) = p.get("terminationGracePeriodSeconds").and_then(as_i64) {
        if t <= 0 {
            errs.push(FieldError::invalid(
                format!("{pp}.terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
    let st = p.get("successThreshold").and_then(as_i64).unwrap_or(0);
    if (key == "livenessProbe" || key == "startupProbe") && st != 1 {
        errs.push(FieldError::invalid(
            format!("{pp}.successThreshold"),
            st,
            "must be 1",
        ));
    }
    if key == "readinessProbe" && has(p, "terminationGracePeriodSeconds") {
        errs.push(FieldError::invalid(
            format!("{pp}.terminationGracePeriodSeconds"),
            p.get("terminationGracePeriodSeconds")
                .cloned()
                .unwrap_or(Value::Null),
            "must not be set for readinessProbes",
        ));
    }
    errs
}

fn validate_lifecycle(c: &Value, grace: Option<i64>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(l) = c.get("lifecycle").filter(|x| !x.is_null()) else {
        return errs;
    };
    for key in ["postStart", "preStop"] {
        if let Some(h) = l.get(key).filter(|x| !x.is_null()) {
            errs.extend(validate_handler(
                h,
                grace,
                &format!("{path}.lifecycle.{key}"),
                false,
                true,
            ));
        }
    }
    errs
}

fn host_port_conflicts<'a>(
    containers: impl Iterator<Item = (usize, &'a Value)>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    for (ci, c) in containers {
        for (pi, p) in arr(c, "ports").iter().enumerate() {
            let hp = p.get("hostPort").and_then(as_i64).unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{hp}", s(p, "protocol"), s(p, "hostIP"));
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    format!("{path}[{ci}].ports[{pi}].hostPort"),
                    key,
                ));
            }
        }
    }
    errs
}

fn validate_tolerations(list: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let key = s(t, "key");
        let op = s(t, "operator");
        let effect = s(t, "effect");
        if !key.is_empty() {
            errs.extend(invalid_each(
                &format!("{ip}.key"),
                key,
                is_qualified_name(key),
            ));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(format!("{ip}.operator"), op, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
        }
        if has(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                format!("{ip}.effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(s(t, "value"));
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{ip}.operator"),
                        s(t, "value"),
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !s(t, "value").is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{ip}.operator"),
                        t.clone(),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{ip}.operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(FieldError::not_supported(
                format!("{ip}.effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}

fn validate_dns_config(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let cfg = spec.get("dnsConfig").filter(|x| !x.is_null());
    if s(spec, "dnsPolicy") == "None" {
        match cfg {
            None => {
                errs.push(FieldError::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return errs;
            }
            Some(c) if arr(c, "nameservers").is_empty() => {
                errs.push(FieldError::required(
                    format!("{path}.nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return errs;
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else { return errs };
    let ns = arr(cfg, "nameservers");
    if ns.len() > 3 {
        errs.push(FieldError::invalid(
            format!("{path}.nameservers"),
            Value::Array(ns.to_vec()),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        errs.extend(validate_ip(
            &format!("{path}.nameservers[{i}]"),
            n.as_str().unwrap_or(""),
        ));
    }
    let searches = arr(cfg, "searches");
    if searches.len() > 32 {
        errs.push(FieldError::invalid(
            format!("{path}.searches"),
            Value::Array(searches.to_vec()),
            "must not have more than 32 search paths",
        ));
    }
    let total: usize = searches
        .iter()
        .map(|x| x.as_str().unwrap_or("").len())
        .sum::<usize>()
        + searches.len().saturating_sub(1);
    if total > 2048 {
        errs.push(FieldError::invalid(
            format!("{path}.searches"),
            Value::Array(searches.to_vec()),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, x) in searches.iter().enumerate() {
        let v = x.as_str().unwrap_or("");
        let v = v.strip_suffix('.').unwrap_or(v);
        errs.extend(invalid_each(
            &format!("{path}.searches[{i}]"),
            v,
            is_dns1123_subdomain(v),
        ));
    }
    for (i, o) in arr(cfg, "options").iter().enumerate() {
        if s(o, "name").is_empty() {
            errs.push(FieldError::required(
                format!("{path}.options[{i}]"),
                "must not be empty",
            ));
        }
    }
    errs
}

fn validate_pod_security_context(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sc) = spec.get("securityContext").filter(|x| x.is_object()) else {
        return errs;
    };
    errs.extend(validate_id(sc.get("fsGroup"), &format!("{path}.fsGroup")));
    errs.extend(validate_id(
        sc.get("runAsUser"),
        &format!("{path}.runAsUser"),
    ));
    errs.extend(validate_id(
        sc.get("runAsGroup"),
        &format!("{path}.runAsGroup"),
    ));
    for (i, g) in arr(sc, "supplementalGroups").iter().enumerate() {
        errs.extend(validate_id(
            Some(g),
            &format!("{path}.supplementalGroups[{i}]"),
        ));
    }
    if has(sc, "fsGroupChangePolicy") {
        let p = s(sc, "fsGroupChangePolicy");
        if !["Always", "OnRootMismatch"].contains(&p) {
            errs.push(FieldError::not_supported(
                format!("{path}.fsGroupChangePolicy"),
                p,
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    errs.extend(validate_seccomp(
        sc.get("seccompProfile"),
        &format!("{path}.seccompProfile"),
    ));
    let mut names = HashSet::new();
    for (i, x) in arr(sc, "sysctls").iter().enumerate() {
        let n = s(x, "name");
        if n.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.sysctls[{i}].name"),
                "",
            ));
        } else if !names.insert(n) {
            errs.push(FieldError::duplicate(
                format!("{path}.sysctls[{i}].name"),
                n,
            ));
        }
    }
    errs
}

fn validate_topology_spread(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let list = arr(spec, "topologySpreadConstraints");
    for (i, c) in list.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let skew = c.get("maxSkew").and_then(as_i64).unwrap_or(0);
        if skew <= 0 {
            errs.push(FieldError::invalid(
                format!("{ip}.maxSkew"),
                skew,
                "must be greater than zero",
            ));
        }
        if s(c, "topologyKey").is_empty() {
            errs.push(FieldError::required(
                format!("{ip}.topologyKey"),
                "can not be empty",
            ));
        }
        let w = s(c, "whenUnsatisfiable");
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&w) {
            errs.push(FieldError::not_supported(
                format!("{ip}.whenUnsatisfiable"),
                w,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if list
            .iter()
            .skip(i + 1)
            .any(|o| s(o, "topologyKey") == s(c, "topologyKey") && s(o, "whenUnsatisfiable") == w)
        {
            errs.push(FieldError::duplicate(
                format!("{ip}.{{topologyKey, whenUnsatisfiable}}"),
                format!("{{{}, {w}}}", s(c, "topologyKey")),
            ));
        }
        if let Some(sel) = c.get("labelSelector") {
            errs.extend(validate_label_selector(sel, &format!("{ip}.labelSelector")));
        }
    }
    errs
}

/// Upstream `ValidatePodSpec` at `path` (`spec` for pods,
/// `spec.template.spec` for templates). `pod` carries the pod's name when
/// the spec is a real pod's (generic ephemeral volume names depend on it).
pub fn validate_pod_spec(spec: &Value, path: &str, pod: Option<&str>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !spec.is_object() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
        return errs;
    }
    let is_pod = pod.is_some();
    let grace = spec.get("terminationGracePeriodSeconds").and_then(as_i64);
    if !has(spec, "terminationGracePeriodSeconds") {
        errs.push(FieldError::required(
            format!("{path}.terminationGracePeriodSeconds"),
            "",
        ));
    }
    let restart_policy = s(spec, "restartPolicy");
    let vols = validate_volumes(spec, &format!("{path}.volumes"), pod, &mut errs);

    // Pod-level resource claims.
    let mut claims = BTreeSet::new();
    for (i, c) in arr(spec, "resourceClaims").iter().enumerate() {
        let p = format!("{path}.resourceClaims[{i}]");
        let name = s(c, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{p}.name"), ""));
        } else if claims.contains(name) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        } else {
            errs.extend(invalid_each(
                &format!("{p}.name"),
                name,
                is_dns1123_label(name),
            ));
            claims.insert(name.to_string());
        }
        let (a, b) = (
            has(c, "resourceClaimName"),
            has(c, "resourceClaimTemplateName"),
        );
        if a && b {
            errs.push(FieldError::invalid(&p, c.clone(), "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified"));
        } else if !a && !b {
            errs.push(FieldError::invalid(
                &p,
                c.clone(),
                "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`",
            ));
        }
    }

    // Regular containers.
    let cpath = format!("{path}.containers");
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&cpath, ""));
    } else {
        let mut names = HashSet::new();
        for (i, c) in containers.iter().enumerate() {
            let p = format!("{cpath}[{i}]");
            errs.extend(validate_container_common(
                c,
                &vols,
                &claims,
                &p,
                restart_policy,
            ));
            if !names.insert(s(c, "name")) {
                errs.push(FieldError::duplicate(format!("{p}.name"), s(c, "name")));
            }
            errs.extend(validate_lifecycle(c, grace, &p));
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                errs.extend(validate_probe(c, probe, grace, &p));
            }
            if has(c, "restartPolicy") {
                errs.push(FieldError::forbidden(
                    format!("{p}.restartPolicy"),
                    "may not be set for non-init containers",
                ));
            }
        }
        errs.extend(host_port_conflicts(containers.iter().enumerate(), &cpath));
    }

    // Init containers: names unique across regular and init containers.
    let ipath = format!("{path}.initContainers");
    let mut all_names: HashSet<&str> = containers.iter().map(|c| s(c, "name")).collect();
    for (i, c) in arr(spec, "initContainers").iter().enumerate() {
        let p = format!("{ipath}[{i}]");
        errs.extend(validate_container_common(
            c,
            &vols,
            &claims,
            &p,
            restart_policy,
        ));
        let mut restart_always = false;
        if has(c, "restartPolicy") {
            let rp = s(c, "restartPolicy");
            if rp != "Always" {
                errs.push(FieldError::not_supported(
                    format!("{p}.restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
            restart_always = rp == "Always";
        }
        let name = s(c, "name");
        if all_names.contains(name) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        } else if !name.is_empty() {
            all_names.insert(name);
        }
        errs.extend(host_port_conflicts(std::iter::once((i, c)), &ipath));
        if restart_always {
            errs.extend(validate_lifecycle(c, grace, &p));
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                errs.extend(validate_probe(c, probe, grace, &p));
            }
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if has(c, key) {
                    errs.push(FieldError::forbidden(
                        format!("{p}.{key}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
        if !arr(c, "resizePolicy").is_empty() {
            errs.push(FieldError::invalid(
                format!("{p}.resizePolicy"),
                c.get("resizePolicy").cloned().unwrap_or(Value::Null),
                "must not be set for init containers",
            ));
        }
    }

    // Ephemeral containers (only reachable through the subresource).
    let epath = format!("{path}.ephemeralContainers");
    let others: HashSet<&str> = all_names.clone();
    for (i, c) in arr(spec, "ephemeralContainers").iter().enumerate() {
        let p = format!("{epath}[{i}]");
        errs.extend(validate_container_common(
            c,
            &vols,
            &claims,
            &p,
            restart_policy,
        ));
        let image = s(c, "image");
        if image.trim() != image {
            errs.push(FieldError::invalid(
                format!("{p}.image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
        let name = s(c, "name");
        if all_names.contains(name) {
            errs.push(FieldError::duplicate(format!("{p}.name"), name));
        } else {
            all_names.insert(name);
        }
        let target = s(c, "targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            errs.push(FieldError::not_found(
                format!("{p}.targetContainerName"),
                target,
            ));
        }
        for key in [
            "ports",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "lifecycle",
            "resizePolicy",
            "restartPolicy",
        ] {
            if c.get(key).and_then(normalized).is_some() {
                errs.push(FieldError::forbidden(
                    format!("{p}.{key}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, m) in arr(c, "volumeMounts").iter().enumerate() {
            for key in ["subPath", "subPathExpr"] {
                if !s(m, key).is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{p}.volumeMounts[{j}].{key}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }

    // Host network: host ports must equal container ports.
    if bool_at(spec, "/hostNetwork") {
        for (i, c) in containers.iter().enumerate() {
            for (j, p) in arr(c, "ports").iter().enumerate() {
                let hp = p.get("hostPort").and_then(as_i64).unwrap_or(0);
                let cp = p.get("containerPort").and_then(as_i64).unwrap_or(0);
                if (is_pod || hp != 0) && hp != cp {
                    errs.push(FieldError::invalid(
                        format!("{cpath}[{i}].ports[{j}].hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }

    match restart_policy {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(format!("{path}.restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match s(spec, "dnsPolicy") {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(format!("{path}.dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    errs.extend(validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
    ));
    errs.extend(validate_pod_security_context(
        spec,
        &format!("{path}.securityContext"),
    ));
    for (i, s_) in arr(spec, "imagePullSecrets").iter().enumerate() {
        if let Some(o) = s_.as_object() {
            if o.keys().any(|k| k != "name") {
                errs.push(FieldError::invalid(
                    format!("{path}.imagePullSecrets[{i}]"),
                    s_.clone(),
                    "only name may be set",
                ));
            }
        }
    }
    errs.extend(validate_dns_config(spec, &format!("{path}.dnsConfig")));
    for (i, g) in arr(spec, "readinessGates").iter().enumerate() {
        let ct = s(g, "conditionType");
        errs.extend(invalid_each(
            &format!("{path}.readinessGates[{i}].conditionType"),
            ct,
            is_qualified_name(ct),
        ));
    }
    let mut gates = HashSet::new();
    for (i, g) in arr(spec, "schedulingGates").iter().enumerate() {
        let n = s(g, "name");
        errs.extend(invalid_each(
            &format!("{path}.schedulingGates[{i}]"),
            n,
            is_qualified_name(n),
        ));
        if !gates.insert(n) {
            errs.push(FieldError::duplicate(
                format!("{path}.schedulingGates[{i}]"),
                n,
            ));
        }
    }
    errs.extend(validate_topology_spread(
        spec,
        &format!("{path}.topologySpreadConstraints"),
    ));
    for key in ["serviceAccountName", "nodeName", "priorityClassName"] {
        let v = s(spec, key);
        if !v.is_empty() {
            errs.extend(invalid_each(
                &format!("{path}.{key}"),
                v,
                is_dns1123_subdomain(v),
            ));
        }
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").filter(|x| !x.is_null()) {
        let v = as_i64(ads).unwrap_or(0);
        if !(1..=i64::from(i32::MAX)).contains(&v) {
            errs.push(FieldError::invalid(
                format!("{path}.activeDeadlineSeconds"),
                v,
                inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = s(spec, key);
        if !v.is_empty() {
            errs.extend(invalid_each(
                &format!("{path}.{key}"),
                v,
                is_dns1123_label(v),
            ));
        }
    }
    errs.extend(validate_tolerations(
        arr(spec, "tolerations"),
        &format!("{path}.tolerations"),
    ));
    for (i, h) in arr(spec, "hostAliases").iter().enumerate() {
        errs.extend(validate_ip(
            &format!("{path}.hostAliases[{i}].ip"),
            s(h, "ip"),
        ));
        for (j, hn) in arr(h, "hostnames").iter().enumerate() {
            let hn = hn.as_str().unwrap_or("");
            errs.extend(invalid_each(
                &format!("{path}.hostAliases[{i}].hostnames[{j}]"),
                hn,
                is_dns1123_subdomain(hn),
            ));
        }
    }
    if has(spec, "runtimeClassName") {
        let v = s(spec, "runtimeClassName");
        errs.extend(invalid_each(
            &format!("{path}.runtimeClassName"),
            v,
            is_dns1123_subdomain(v),
        ));
    }
    if has(spec, "preemptionPolicy") {
        match s(spec, "preemptionPolicy") {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(format!("{path}.preemptionPolicy"), "")),
            other => errs.push(FieldError::not_supported(
                format!("{path}.preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if has(spec, "overhead") {
        let wrapped = json!({ "limits": spec.get("overhead").cloned().unwrap_or(Value::Null) });
        errs.extend(validate_resources(
            Some(&wrapped),
            &BTreeSet::new(),
            &format!("{path}.overhead"),
        ));
    }
    if let Some(os) = spec.get("os").filter(|x| !x.is_null()) {
        let n = s(os, "name");
        if n.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.os.name"),
                "cannot be empty",
            ));
        } else if !["linux", "windows"].contains(&n) {
            errs.push(FieldError::not_supported(
                format!("{path}.os"),
                n,
                &["linux", "windows"],
            ));
        }
    }
    errs
}

/// Upstream `ValidatePodTemplateSpec` at `path` (e.g. `spec.template`).
pub fn validate_pod_template_spec(tpl: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    errs.extend(validate_labels(
        tpl.pointer("/metadata/labels"),
        &format!("{path}.labels"),
    ));
    errs.extend(validate_annotations(
        tpl.pointer("/metadata/annotations"),
        &format!("{path}.annotations"),
    ));
    let spec = tpl.get("spec").unwrap_or(&Value::Null);
    errs.extend(validate_pod_spec(spec, &format!("{path}.spec"), None));
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            format!("{path}.spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// Validation shared by pod create and update (`validatePodMetadataAndSpec`).
fn validate_pod_metadata_and_spec(pod: &Value) -> Vec<FieldError> {
    let mut errs = validate_meta_finalizers(pod);
    let name = str_at(pod, "/metadata/name");
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    if let Some(mirror) = pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror") {
        if s(spec, "nodeName").is_empty() {
            errs.push(FieldError::invalid(
                "metadata.annotations[kubernetes.io/config.mirror]",
                mirror.clone(),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    if let Some(cost) = pod
        .pointer("/metadata/annotations/controller.kubernetes.io~1pod-deletion-cost")
        .and_then(Value::as_str)
    {
        if cost.trim() != cost || cost.parse::<i32>().is_err() {
            errs.push(FieldError::invalid(
                "metadata.annotations[controller.kubernetes.io/pod-deletion-cost]",
                cost,
                "must be a 32bit integer",
            ));
        }
    }
    errs.extend(validate_pod_spec(spec, "spec", Some(name)));
    for key in ["containers", "initContainers"] {
        for (i, c) in arr(spec, key).iter().enumerate() {
            let image = s(c, "image");
            if image.trim() != image {
                errs.push(FieldError::invalid(
                    format!("spec.{key}[{i}].image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    errs
}

/// Upstream `ValidatePodCreate`.
pub(crate) fn validate_pod_create(pod: &Value) -> Vec<FieldError> {
    let mut errs = validate_pod_metadata_and_spec(pod);
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    if !s(spec, "nodeName").is_empty() && !arr(spec, "schedulingGates").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.nodeName",
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

/// The status checks of upstream `ValidatePodStatusUpdate` that make sense
/// here (they also run on main-resource updates, where status is the old one).
fn validate_pod_status(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let status = new.get("status").unwrap_or(&Value::Null);
    for (i, c) in arr(status, "conditions").iter().enumerate() {
        let t = s(c, "type");
        if !matches!(t, "PodScheduled" | "Ready" | "Initialized") {
            errs.extend(invalid_each(
                &format!("metadata.conditions[{i}].Type"),
                t,
                is_qualified_name(t),
            ));
        }
    }
    let nominated = s(status, "nominatedNodeName");
    if !nominated.is_empty() && nominated != str_at(old, "/status/nominatedNodeName") {
        errs.extend(invalid_each(
            "status.nominatedNodeName",
            nominated,
            is_dns1123_subdomain(nominated),
        ));
    }
    // Containers that may not restart stay terminated.
    let restart = str_at(old, "/spec/restartPolicy");
    let sidecars: HashSet<&str> = arr_at(old, "/spec/initContainers")
        .iter()
        .filter(|c| s(c, "restartPolicy") == "Always")
        .map(|c| s(c, "name"))
        .collect();
    for (key, policy) in [
        ("containerStatuses", restart),
        ("initContainerStatuses", restart),
        ("ephemeralContainerStatuses", "Never"),
    ] {
        if policy == "Always" {
            continue;
        }
        for (i, o) in arr_at(old, &format!("/status/{key}")).iter().enumerate() {
            let Some(term) = o.pointer("/state/terminated").filter(|t| !t.is_null()) else {
                continue;
            };
            if term.get("exitCode").and_then(as_i64).unwrap_or(0) != 0 && policy == "OnFailure" {
                continue;
            }
            if key == "initContainerStatuses" && sidecars.contains(s(o, "name")) {
                continue;
            }
            let reopened = arr(status, key).iter().any(|n| {
                s(n, "name") == s(o, "name")
                    && n.pointer("/state/terminated").is_none_or(Value::is_null)
            });
            if reopened {
                errs.push(FieldError::forbidden(
                    format!("status.{key}[{i}].state"),
                    "may not be transitioned to non-terminated state",
                ));
            }
        }
    }
    for (single, plural) in [("podIP", "podIPs"), ("hostIP", "hostIPs")] {
        let list = arr(status, plural);
        if plural == "hostIPs" {
            if let Some(first) = list.first() {
                if s(first, "ip") != s(status, single) {
                    errs.push(FieldError::invalid(
                        "status.hostIPs[0].ip",
                        s(first, "ip"),
                        "must be equal to `hostIP`",
                    ));
                }
            }
        }
        let mut seen = HashSet::new();
        let mut families = Vec::new();
        for (i, ip) in list.iter().enumerate() {
            let text = s(ip, "ip");
            errs.extend(validate_ip(&format!("status.{plural}[{i}]"), text));
            families.extend(parse_ip_sloppy(text).map(|x| x.is_ipv6()));
            if !seen.insert(text) {
                errs.push(FieldError::duplicate(
                    format!("status.{plural}[{i}]"),
                    ip.clone(),
                ));
            }
        }
        if list.len() > 1
            && (list.len() > 2 || families.len() != 2 || families.first() == families.get(1))
        {
            errs.push(FieldError::invalid(
                format!("status.{plural}"),
                Value::Array(list.to_vec()),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    errs
}

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn validate_container_updates(new: &[Value], old: &[Value], path: &str) -> (Vec<FieldError>, bool) {
    let mut errs = Vec::new();
    if new.len() != old.len() {
        errs.push(FieldError::forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return (errs, true);
    }
    for (i, c) in new.iter().enumerate() {
        let image = s(c, "image");
        if image.is_empty() {
            errs.push(FieldError::required(format!("{path}[{i}].image"), ""));
        }
        if image.trim() != image {
            errs.push(FieldError::invalid(
                format!("{path}[{i}].image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    (errs, false)
}

/// Upstream `ValidatePodUpdate`: the spec is immutable except container
/// images, activeDeadlineSeconds (decrease only), added tolerations,
/// removed scheduling gates and a negative grace period becoming 1.
pub(crate) fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_pod_metadata_and_spec(new);
    errs.extend(validate_pod_status(new, old));
    let nspec = new.get("spec").cloned().unwrap_or(Value::Null);
    let ospec = old.get("spec").cloned().unwrap_or(Value::Null);

    let (e, stop) = validate_container_updates(
        arr(&nspec, "containers"),
        arr(&ospec, "containers"),
        "spec.containers",
    );
    errs.extend(e);
    if stop {
        return errs;
    }
    let (e, stop) = validate_container_updates(
        arr(&nspec, "initContainers"),
        arr(&ospec, "initContainers"),
        "spec.initContainers",
    );
    errs.extend(e);
    if stop {
        return errs;
    }

    let new_ads = nspec
        .get("activeDeadlineSeconds")
        .filter(|x| !x.is_null())
        .map(|x| as_i64(x).unwrap_or(0));
    let old_ads = ospec
        .get("activeDeadlineSeconds")
        .filter(|x| !x.is_null())
        .map(|x| as_i64(x).unwrap_or(0));
    match (new_ads, old_ads) {
        (Some(n), o) => {
            if !(0..=i64::from(i32::MAX)).contains(&n) {
                errs.push(FieldError::invalid(
                    "spec.activeDeadlineSeconds",
                    n,
                    inclusive_range_error(0, i64::from(i32::MAX)),
                ));
                return errs;
            }
            if let Some(o) = o {
                if o < n {
                    errs.push(FieldError::invalid(
                        "spec.activeDeadlineSeconds",
                        n,
                        "must be less than or equal to previous value",
                    ));
                    return errs;
                }
            }
        }
        (None, Some(_)) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }

    // Tolerations: existing ones may only change their tolerationSeconds.
    let new_tol = arr(&nspec, "tolerations");
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(o) = t.as_object_mut() {
            o.remove("tolerationSeconds");
        }
        normalized(&t)
    };
    let all_kept = arr(&ospec, "tolerations")
        .iter()
        .all(|o| new_tol.iter().any(|n| strip(n) == strip(o)));
    if !all_kept {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    } else {
        errs.extend(validate_tolerations(new_tol, "spec.tolerations"));
    }

    // Scheduling gates: deletions only.
    let old_gates: HashSet<&str> = arr(&ospec, "schedulingGates")
        .iter()
        .map(|g| s(g, "name"))
        .collect();
    let mut added: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, g) in arr(&nspec, "schedulingGates").iter().enumerate() {
        added.insert(s(g, "name"), i);
    }
    for (name, i) in added {
        if !old_gates.contains(name) {
            errs.push(FieldError::forbidden(
                format!("spec.schedulingGates[{i}].name"),
                format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }

    if sem_eq(Some(&nspec), Some(&ospec)) {
        return errs;
    }

    let old_qos = str_at(old, "/status/qosClass");
    let old_qos = if old_qos.is_empty() {
        compute_qos(&ospec)
    } else {
        old_qos
    };
    if old_qos != compute_qos(&nspec) {
        errs.push(FieldError::invalid(
            "metadata",
            json!(str_at(new, "/status/qosClass")),
            "Pod QoS is immutable",
        ));
    }

    // Munge the updatable fields back to the old values and compare.
    let mut munged = nspec.clone();
    for key in ["containers", "initContainers"] {
        if let Some(list) = munged.get_mut(key).and_then(Value::as_array_mut) {
            for (i, c) in list.iter_mut().enumerate() {
                let old_image = arr(&ospec, key)
                    .get(i)
                    .and_then(|o| o.get("image"))
                    .cloned()
                    .unwrap_or(Value::Null);
                if let Some(o) = c.as_object_mut() {
                    o.insert("image".into(), old_image);
                }
            }
        }
    }
    if let Some(m) = munged.as_object_mut() {
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match ospec.get(key) {
                Some(v) => {
                    m.insert(key.into(), v.clone());
                }
                None => {
                    m.remove(key);
                }
            }
        }
        let old_grace = ospec.get("terminationGracePeriodSeconds").and_then(as_i64);
        let new_grace = m.get("terminationGracePeriodSeconds").and_then(as_i64);
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                ospec
                    .get("terminationGracePeriodSeconds")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
        // Gated pods may add to their node selector.
        if !arr(&ospec, "schedulingGates").is_empty() {
            let old_sel = ospec.get("nodeSelector").and_then(Value::as_object);
            let new_sel = m.get("nodeSelector").and_then(Value::as_object);
            let superset = old_sel.is_none_or(|o| {
                o.iter()
                    .all(|(k, v)| new_sel.and_then(|n| n.get(k)) == Some(v))
            });
            if superset {
                match ospec.get("nodeSelector") {
                    Some(v) => {
                        m.insert("nodeSelector".into(), v.clone());
                    }
                    None => {
                        m.remove("nodeSelector");
                    }
                }
            }
        }
    }
    if !sem_eq(Some(&munged), Some(&ospec)) {
        let diff = diff_lines("core.PodSpec", &ospec, &munged);
        errs.push(FieldError::forbidden(
            "spec",
            format!("pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{diff}"),
        ));
    }
    errs
}

/// For the pods/ephemeralcontainers subresource: `new` takes everything from
/// `old` except spec.ephemeralContainers (upstream
/// `dropNonEphemeralContainerUpdates`).
pub fn prepare_ephemeral_containers_update(new: &mut Value, old: &Value) {
    let ephemeral = new.pointer("/spec/ephemeralContainers").cloned();
    let mut out = old.clone();
    if let (Some(m), Some(nm)) = (
        out.get_mut("metadata").and_then(Value::as_object_mut),
        new.get("metadata").and_then(Value::as_object),
    ) {
        // Only the resourceVersion (for the precondition) comes from the request.
        if let Some(rv) = nm.get("resourceVersion") {
            m.insert("resourceVersion".into(), rv.clone());
        }
    }
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        match ephemeral {
            Some(e) => {
                spec.insert("ephemeralContainers".into(), e);
            }
            None => {
                spec.remove("ephemeralContainers");
            }
        }
    }
    if let Some(spec) = out.get_mut("spec") {
        each_mut(spec, "ephemeralContainers", default_container);
    }
    *new = out;
}

/// For the pods/ephemeralcontainers subresource (upstream
/// `ValidatePodEphemeralContainersUpdate`): the new list must be valid and
/// keep every existing ephemeral container unchanged.
pub fn validate_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_pod_metadata_and_spec(new);
    if old
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return vec![FieldError::forbidden(
            "",
            "static pods do not support ephemeral containers",
        )];
    }
    let new_list = arr_at(new, "/spec/ephemeralContainers");
    for o in arr_at(old, "/spec/ephemeralContainers") {
        let name = s(o, "name");
        match new_list.iter().find(|n| s(n, "name") == name) {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(n) if !sem_eq(Some(n), Some(o)) => {
                let diff = diff_lines("core.EphemeralContainer", o, n);
                errs.push(FieldError::forbidden(
                    "spec.ephemeralContainers",
                    format!("existing ephemeral containers {name:?} may not be changed\n{diff}"),
                ));
            }
            _ => {}
        }
    }
    errs
}

// ===========================================================================
// Printing
// ===========================================================================

fn condition_true(status: &Value, type_: &str) -> bool {
    arr(status, "conditions")
        .iter()
        .any(|c| s(c, "type") == type_ && s(c, "status") == "True")
}

/// Ready, Status and Restarts cells of a pod, as upstream's `printPod`.
pub(crate) fn pod_ready_status_restarts(pod: &Value) -> (String, String, String) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let status = pod.get("status").unwrap_or(&Value::Null);
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut total = arr(spec, "containers").len();
    let mut ready = 0usize;
    let mut last_restart: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut last_sidecar_restart: Option<chrono::DateTime<chrono::Utc>> = None;

    let phase = s(status, "phase");
    let mut reason = if s(status, "reason").is_empty() {
        phase.to_string()
    } else {
        s(status, "reason").to_string()
    };
    for c in arr(status, "conditions") {
        if s(c, "type") == "PodScheduled" && s(c, "reason") == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let init_specs = arr(spec, "initContainers");
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "name") == name && s(c, "restartPolicy") == "Always")
    };
    total += init_specs
        .iter()
        .filter(|c| s(c, "restartPolicy") == "Always")
        .count();
    let later = |acc: &mut Option<chrono::DateTime<chrono::Utc>>, cs: &Value| {
        if let Some(t) = cs
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(parse_time)
        {
            if acc.is_none_or(|a| a < t) {
                *acc = Some(t);
            }
        }
    };

    let n_init = init_specs.len();
    let mut initializing = false;
    for (i, cs) in arr(status, "initContainerStatuses").iter().enumerate() {
        let count = cs.get("restartCount").and_then(as_i64).unwrap_or(0);
        restarts += count;
        later(&mut last_restart, cs);
        let sidecar = is_sidecar(s(cs, "name"));
        if sidecar {
            sidecar_restarts += count;
            later(&mut last_sidecar_restart, cs);
        }
        let term = cs.pointer("/state/terminated").filter(|x| !x.is_null());
        let waiting = cs.pointer("/state/waiting").filter(|x| !x.is_null());
        if term.is_some_and(|t| t.get("exitCode").and_then(as_i64).unwrap_or(0) == 0) {
            continue;
        }
        if sidecar && bool_at(cs, "/started") {
            if bool_at(cs, "/ready") {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = term {
            let r = s(t, "reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if t.get("signal").and_then(as_i64).unwrap_or(0) != 0 {
                format!(
                    "Init:Signal:{}",
                    t.get("signal").and_then(as_i64).unwrap_or(0)
                )
            } else {
                format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(as_i64).unwrap_or(0)
                )
            };
        } else if let Some(w) =
            waiting.filter(|w| !s(w, "reason").is_empty() && s(w, "reason") != "PodInitializing")
        {
            reason = format!("Init:{}", s(w, "reason"));
        } else {
            reason = format!("Init:{i}/{n_init}");
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(status, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr(status, "containerStatuses").iter().rev() {
            restarts += cs.get("restartCount").and_then(as_i64).unwrap_or(0);
            later(&mut last_restart, cs);
            let term = cs.pointer("/state/terminated").filter(|x| !x.is_null());
            let waiting = cs.pointer("/state/waiting").filter(|x| !x.is_null());
            if let Some(w) = waiting.filter(|w| !s(w, "reason").is_empty()) {
                reason = s(w, "reason").to_string();
            } else if let Some(t) = term.filter(|t| !s(t, "reason").is_empty()) {
                reason = s(t, "reason").to_string();
            } else if let Some(t) = term {
                let sig = t.get("signal").and_then(as_i64).unwrap_or(0);
                reason = if sig != 0 {
                    format!("Signal:{sig}")
                } else {
                    format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(as_i64).unwrap_or(0)
                    )
                };
            } else if bool_at(cs, "/ready")
                && cs.pointer("/state/running").is_some_and(|r| !r.is_null())
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(status, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    if deleting && s(status, "reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(chrono::Utc::now().signed_duration_since(t))
        ),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_cell)
}

fn none_if_empty(v: &str) -> String {
    if v.is_empty() {
        "<none>".to_string()
    } else {
        v.to_string()
    }
}

/// `name1,name2` and `image1,image2` of a container list (upstream
/// `layoutContainerCells`).
pub fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| s(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "image")).collect();
    (names.join(","), images.join(","))
}

/// `k=v,k2=v2` sorted by key, or `<none>` (upstream `labels.FormatLabels`).
pub fn format_labels(m: Option<&Value>) -> String {
    let Some(m) = m.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    parts.sort();
    parts.join(",")
}

// ===========================================================================
// Strategies
// ===========================================================================

pub(crate) struct PodStrategy {
    info: ResourceInfo,
}

impl PodStrategy {
    pub(crate) fn new() -> Self {
        PodStrategy {
            info: super::core_info(
                "Pod",
                "pods",
                "pod",
                &["po"],
                &["all"],
                true,
                &[
                    Subresource::Status,
                    Subresource::Binding,
                    Subresource::Eviction,
                    Subresource::EphemeralContainers,
                    Subresource::Log,
                    Subresource::Exec,
                    Subresource::Attach,
                    Subresource::PortForward,
                ],
                "pods",
            ),
        }
    }
}

/// The tolerations the DefaultTolerationSeconds admission plugin adds.
fn add_default_tolerations(spec: &mut Value) {
    let Some(o) = spec.as_object_mut() else {
        return;
    };
    let list = o.entry("tolerations").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        // Upstream skips a taint the pod already tolerates with NoExecute
        // (or any effect) for that key, or tolerates everything.
        let tolerated = list.iter().any(|t| {
            let effect = s(t, "effect");
            let effect_ok = effect.is_empty() || effect == "NoExecute";
            let key_ok =
                s(t, "key") == key || (s(t, "key").is_empty() && s(t, "operator") == "Exists");
            effect_ok && key_ok
        });
        if !tolerated {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }));
        }
    }
}

impl Strategy for PodStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn default(&self, obj: &mut Value) {
        default_pod(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        // Upstream decodes (and so defaults) before PrepareForCreate; the QoS
        // class depends on the defaulted requests.
        default_pod(obj);
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        if !spec.is_object() {
            return;
        }
        // Priority admission: no class means priority 0, PreemptLowerPriority.
        if s(spec, "priorityClassName").is_empty() {
            default_ptr(spec, "priority", json!(0));
            default_ptr(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        // ServiceAccount admission: the namespace's default account.
        if s(spec, "serviceAccountName").is_empty() {
            if let Some(o) = spec.as_object_mut() {
                o.insert("serviceAccountName".into(), json!("default"));
                o.insert("serviceAccount".into(), json!("default"));
            }
        }
        add_default_tolerations(spec);
        let qos = compute_qos(spec);
        let gated = !arr(spec, "schedulingGates").is_empty();
        let mut status = json!({ "phase": "Pending", "qosClass": qos });
        if gated {
            status["conditions"] = json!([{
                "type": "PodScheduled",
                "status": "False",
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
                "lastProbeTime": null,
                "lastTransitionTime": now_rfc3339(),
            }]);
        }
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), status);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_pod_create(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate_pod_update(new, old)
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        let status = obj.get("status").unwrap_or(&Value::Null);
        let pod_ip = arr(status, "podIPs")
            .first()
            .map(|p| s(p, "ip").to_string())
            .unwrap_or_default();
        vec![
            ("spec.nodeName", s(spec, "nodeName").to_string()),
            ("spec.restartPolicy", s(spec, "restartPolicy").to_string()),
            ("spec.schedulerName", s(spec, "schedulerName").to_string()),
            (
                "spec.serviceAccountName",
                s(spec, "serviceAccountName").to_string(),
            ),
            (
                "spec.hostNetwork",
                bool_at(spec, "/hostNetwork").to_string(),
            ),
            ("status.phase", s(status, "phase").to_string()),
            ("status.podIP", pod_ip),
            ("status.podIPs", String::new()),
            (
                "status.nominatedNodeName",
                s(status, "nominatedNodeName").to_string(),
            ),
        ]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
            column("Status", "string", "The aggregate status of the containers in this pod.", 0),
            column("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
            age_column(),
            column("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
            column("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename", 1),
            column("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.", 1),
            column("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates", 1),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (ready, status, restarts) = pod_ready_status_restarts(obj);
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        let st = obj.get("status").unwrap_or(&Value::Null);
        let ip = arr(st, "podIPs")
            .first()
            .map(|p| s(p, "ip").to_string())
            .unwrap_or_default();
        let gates = arr(spec, "readinessGates");
        let gates_cell = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let conds = arr(st, "conditions");
            let t = gates
                .iter()
                .filter(|g| {
                    conds
                        .iter()
                        .find(|c| s(c, "type") == s(g, "conditionType"))
                        .is_some_and(|c| s(c, "status") == "True")
                })
                .count();
            format!("{t}/{}", gates.len())
        };
        vec![
            json!(ready),
            json!(status),
            json!(restarts),
            age_cell(obj),
            json!(none_if_empty(&ip)),
            json!(none_if_empty(s(spec, "nodeName"))),
            json!(none_if_empty(s(st, "nominatedNodeName"))),
            json!(gates_cell),
        ]
    }

    fn default_grace_period(&self, obj: &Value) -> Option<i64> {
        // Upstream CheckGracefulDelete: unscheduled or finished pods go at once.
        let phase = str_at(obj, "/status/phase");
        if str_at(obj, "/spec/nodeName").is_empty() || phase == "Failed" || phase == "Succeeded" {
            return Some(0);
        }
        let g = i64_at(obj, "/spec/terminationGracePeriodSeconds").unwrap_or(30);
        Some(if g < 0 { 1 } else { g })
    }
}

pub(crate) struct PodTemplateStrategy {
    info: ResourceInfo,
}

impl PodTemplateStrategy {
    pub(crate) fn new() -> Self {
        PodTemplateStrategy {
            info: super::core_info(
                "PodTemplate",
                "podtemplates",
                "podtemplate",
                &[],
                &[],
                true,
                &[],
                "podtemplates",
            ),
        }
    }
}

impl Strategy for PodTemplateStrategy {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn default(&self, obj: &mut Value) {
        if let Some(t) = obj.get_mut("template") {
            default_pod_template_spec(t);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = validate_meta_finalizers(obj);
        errs.extend(validate_pod_template_spec(
            obj.get("template").unwrap_or(&Value::Null),
            "template",
        ));
        errs
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            column(
                "Containers",
                "string",
                "Names of each container in the template.",
                0,
            ),
            column(
                "Images",
                "string",
                "Images referenced by each container in the template.",
                0,
            ),
            column(
                "Pod Labels",
                "string",
                "The labels for the pod template.",
                0,
            ),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let (names, images) = container_cells(arr_at(obj, "/template/spec/containers"));
        vec![
            json!(names),
            json!(images),
            json!(format_labels(obj.pointer("/template/metadata/labels"))),
        ]
    }
}

#[cfg(test)]
pub(crate) fn image_latest_for_tests(image: &str) -> bool {
    image_is_latest(image)
}
