//! certificates.k8s.io/v1 certificatesigningrequests.
//!
//! Not done here: upstream overwrites spec.username/uid/groups/extra with the
//! requesting user on create, which needs the request's user info.

use crate::strategy::column;
use crate::util::{arr_at, i64_at, ptr_str};
use apimachinery::validation::{is_dns1123_label, is_dns1123_subdomain};
use std::collections::BTreeSet;
use std::sync::Arc;

use apimachinery::{FieldError, FieldErrorType};
use serde_json::Value;

use super::common::{invalid_raw, s};
use crate::strategy::{
    age_cell, age_column, human_duration, ResourceInfo, Strategy, Subresource, TableColumn,
};

pub fn all() -> Vec<Arc<dyn Strategy>> {
    vec![Arc::new(CertificateSigningRequests)]
}

static CSRS: ResourceInfo = ResourceInfo {
    group: "certificates.k8s.io",
    version: "v1",
    kind: "CertificateSigningRequest",
    plural: "certificatesigningrequests",
    singular: "certificatesigningrequest",
    short_names: &["csr"],
    categories: &[],
    namespaced: false,
    definition: "io.k8s.api.certificates.v1.CertificateSigningRequest",
    subresources: &[Subresource::Status],
    read_only: false,
    storage_segment: "certificatesigningrequests",
    storage_api_version: "certificates.k8s.io/v1",
};

const USAGES: [&str; 23] = [
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

pub struct CertificateSigningRequests;

/// Standard base64 with padding, as Go encodes `[]byte`.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn go_bytes(b: &[u8]) -> String {
    if b.is_empty() {
        return "[]byte(nil)".to_string();
    }
    let inner: Vec<String> = b.iter().map(|x| format!("0x{x:x}")).collect();
    format!("[]byte{{{}}}", inner.join(", "))
}

/// `ValidateSignerName`.
fn signer_name_errors(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let Some((domain, rest)) = name.split_once('/').filter(|(_, r)| !r.contains('/')) else {
        return vec![FieldError::invalid(
            path,
            name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    if domain.len() > 253 {
        errs.push(FieldError::too_long(path, 253));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for l in &labels {
        let e = is_dns1123_label(l);
        if !e.is_empty() {
            errs.extend(e.into_iter().map(|m| {
                FieldError::invalid(path, domain, format!("validating label {l:?}: {m}"))
            }));
            break;
        }
    }
    if labels.len() < 2 {
        errs.push(FieldError::invalid(
            path,
            domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    for l in rest.split('.') {
        let e = is_dns1123_subdomain(l);
        if !e.is_empty() {
            errs.extend(
                e.into_iter().map(|m| {
                    FieldError::invalid(path, rest, format!("validating label {l:?}: {m}"))
                }),
            );
            break;
        }
    }
    if rest.len() > 253 + 63 + 1 {
        errs.push(FieldError::too_long(path, 253 + 63 + 1));
    }
    errs
}

fn validate_csr(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let raw = ptr_str(obj, "/spec/request").unwrap_or("");
    let bytes = base64_decode(raw).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        errs.push(invalid_raw(
            "spec.request",
            &go_bytes(&bytes),
            "PEM block type must be CERTIFICATE REQUEST",
        ));
    }
    let usages = arr_at(obj, "/spec/usages");
    if usages.is_empty() {
        errs.push(FieldError::required("spec.usages", ""));
    }
    let mut seen = BTreeSet::new();
    for (i, u) in usages.iter().enumerate() {
        let u = u.as_str().unwrap_or("");
        if !USAGES.contains(&u) {
            errs.push(FieldError::not_supported(
                format!("spec.usages[{i}]"),
                u,
                &USAGES,
            ));
        }
        if !seen.insert(u) {
            errs.push(FieldError::duplicate(format!("spec.usages[{i}]"), u));
        }
    }
    errs.extend(signer_name_errors(
        ptr_str(obj, "/spec/signerName").unwrap_or(""),
        "spec.signerName",
    ));
    if let Some(e) = i64_at(obj, "/spec/expirationSeconds").filter(|e| *e < 600) {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            e,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    errs
}

fn csr_condition(obj: &Value) -> String {
    let (mut approved, mut denied, mut failed) = (false, false, false);
    for c in arr_at(obj, "/status/conditions") {
        match ptr_str(c, "/type") {
            Some("Approved") => approved = true,
            Some("Denied") => denied = true,
            Some("Failed") => failed = true,
            _ => {}
        }
    }
    let mut status = if denied {
        "Denied".to_string()
    } else if approved {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if failed {
        status.push_str(",Failed");
    }
    if ptr_str(obj, "/status/certificate").is_some_and(|c| !c.is_empty()) {
        status.push_str(",Issued");
    }
    status
}

impl Strategy for CertificateSigningRequests {
    fn info(&self) -> &ResourceInfo {
        &CSRS
    }

    fn bumps_generation(&self) -> bool {
        false
    }

    /// Upstream does not restrict CSR names; a path segment is the least we need.
    fn name_validator(&self) -> apimachinery::validation::NameValidator {
        apimachinery::validation::NameValidator::PathSegment
    }

    /// The spec is immutable: updates of the main resource keep the old one.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if let (Some(m), Some(spec)) = (new.as_object_mut(), old.get("spec")) {
            m.insert("spec".into(), spec.clone());
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_csr(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_csr(new);
        if new.get("status") != old.get("status") {
            let mut types = BTreeSet::new();
            for (i, c) in arr_at(new, "/status/conditions").iter().enumerate() {
                let t = ptr_str(c, "/type").unwrap_or("");
                let p = format!("status.conditions[{i}]");
                if t.is_empty() {
                    errs.push(FieldError::required(format!("{p}.type"), ""));
                }
                if matches!(t, "Approved" | "Denied" | "Failed") && !types.insert(t) {
                    errs.push(FieldError::duplicate(format!("{p}.type"), t));
                }
                match ptr_str(c, "/status").unwrap_or("") {
                    "True" | "False" | "Unknown" => {}
                    "" => errs.push(FieldError::required(format!("{p}.status"), "")),
                    other => errs.push(FieldError::not_supported(
                        format!("{p}.status"),
                        other,
                        &["False", "True", "Unknown"],
                    )),
                }
            }
            if types.contains("Approved") && types.contains("Denied") {
                errs.push(FieldError {
                    kind: FieldErrorType::Invalid,
                    field: "status.conditions".into(),
                    value: None,
                    detail: "Approved and Denied conditions are mutually exclusive".into(),
                });
            }
        }
        errs
    }

    fn selectable_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![(
            "spec.signerName",
            ptr_str(obj, "/spec/signerName").unwrap_or("").to_string(),
        )]
    }

    fn selectable_field_names(&self) -> &'static [&'static str] {
        &["spec.signerName"]
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            age_column(),
            column("SignerName", "string", "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. If empty, it will be defaulted.", 0),
            column("Requestor", "string", "Base64-encoded PKCS#10 CSR data", 0),
            column("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate.", 0),
            column("Condition", "string", "Conditions applied to the request, such as approval or denial.", 0),
        ]
    }

    fn table_row(&self, obj: &Value) -> Vec<Value> {
        let signer = ptr_str(obj, "/spec/signerName")
            .filter(|s| !s.is_empty())
            .unwrap_or("<none>");
        let duration = match i64_at(obj, "/spec/expirationSeconds") {
            Some(secs) => human_duration(chrono::TimeDelta::seconds(secs)),
            None => "<none>".to_string(),
        };
        vec![
            age_cell(obj),
            s(signer),
            s(ptr_str(obj, "/spec/username").unwrap_or("")),
            s(duration),
            s(csr_condition(obj)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // "-----BEGIN CERTIFICATE REQUEST-----\n" base64-encoded.
    const REQ: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K";

    #[test]
    fn csr_validation_and_row() {
        let csr = json!({"metadata": {"name": "x"}, "spec": {"request": REQ, "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"], "username": "alice", "expirationSeconds": 86400}});
        assert!(
            CertificateSigningRequests.validate(&csr).is_empty(),
            "{:?}",
            CertificateSigningRequests.validate(&csr)
        );
        let row = CertificateSigningRequests.table_row(&csr);
        assert_eq!(
            row[1..],
            [
                json!("kubernetes.io/kube-apiserver-client"),
                json!("alice"),
                json!("24h"),
                json!("Pending")
            ]
        );
        let bad = json!({"spec": {"signerName": "nodomain"}});
        let errs: Vec<String> = CertificateSigningRequests
            .validate(&bad)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs, vec![
            "spec.request: Invalid value: []byte(nil): PEM block type must be CERTIFICATE REQUEST".to_string(),
            "spec.usages: Required value".to_string(),
            "spec.signerName: Invalid value: \"nodomain\": must be a fully qualified domain and path of the form 'example.com/signer-name'".to_string(),
        ]);
        assert_eq!(
            CertificateSigningRequests.selectable_fields(&csr),
            vec![(
                "spec.signerName",
                "kubernetes.io/kube-apiserver-client".to_string()
            )]
        );
    }

    #[test]
    fn csr_condition_text() {
        let csr = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "abc"}});
        assert_eq!(csr_condition(&csr), "Approved,Issued");
    }
}
