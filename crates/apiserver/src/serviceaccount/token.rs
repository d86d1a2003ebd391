//! POST .../serviceaccounts/{name}/token: authentication.k8s.io/v1
//! TokenRequest, as upstream's TokenREST: defaults (audiences = the API
//! audiences, expirationSeconds = 3600), validation (at least 10 minutes,
//! at most 2^32 seconds), binding to a Pod, Secret or Node whose uid must
//! match, --service-account-max-token-expiration, the one-year extension of
//! the admission-injected 3607 s tokens, and the signed JWT in the status.

use apimachinery::errors::{ApiError, GroupResource};
use apimachinery::{meta, FieldError};
use serde_json::{json, Value};

use super::{
    make_username, Claims, KubernetesClaim, ObjRef, ServiceAccountTokens,
    EXPIRATION_EXTENSION_SECONDS, WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS,
};
use crate::registry::context::RequestContext;
use crate::registry::Registry;

const KIND: &str = "TokenRequest";
const GROUP: &str = "authentication.k8s.io";
const API_VERSION: &str = "authentication.k8s.io/v1";

fn invalid(name: &str, errs: &[FieldError]) -> ApiError {
    ApiError::invalid(KIND, GROUP, name, errs)
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn get(reg: &Registry, plural: &str, ns: &str, name: &str) -> Result<Value, ApiError> {
    let store = reg
        .get("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no {plural} store")))?;
    store.get(ns, name).await
}

/// Serve a TokenRequest for ServiceAccount `ns/name`; returns the
/// TokenRequest with its status (201 Created).
pub async fn create_token(
    reg: &Registry,
    tokens: &ServiceAccountTokens,
    ctx: &RequestContext,
    ns: &str,
    name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str) {
        if !av.is_empty() && av != API_VERSION {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({API_VERSION})"
            )));
        }
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str) {
        if !k.is_empty() && k != KIND {
            return Err(ApiError::bad_request(format!(
                "{k} in version \"v1\" cannot be handled as a {KIND}: the kind in the data ({k}) does not match the expected kind ({KIND})"
            )));
        }
    }
    let body_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                "metadata.name",
                json!(body_name),
                "must match the service account name if specified",
            )],
        ));
    }
    let body_ns = body
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_ns.is_empty() && body_ns != ns {
        return Err(invalid(
            name,
            &[FieldError::invalid(
                "metadata.namespace",
                json!(body_ns),
                "must match the service account namespace if specified",
            )],
        ));
    }
    let sa = get(reg, "serviceaccounts", ns, name).await?;

    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = tokens.api_audiences.clone();
    }
    let mut expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "{KIND} in version \"v1\" cannot be handled as a {KIND}: json: cannot unmarshal {v} into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64"
            ))
        })?,
    };
    let now = chrono::Utc::now().timestamp();

    // Static validation.
    let mut errs = Vec::new();
    if expiration < 10 * 60 {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1i64 << 32 {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errs.is_empty() {
        return Err(invalid("", &errs));
    }
    if tokens.signer.is_none() || tokens.issuers.is_empty() {
        return Err(ApiError::internal(
            "failed to generate token: no service account signing key is configured (--service-account-signing-key-file, --service-account-issuer)",
        ));
    }

    let mut claim = KubernetesClaim {
        namespace: ns.to_string(),
        serviceaccount: ObjRef {
            name: name.to_string(),
            uid: meta::uid(&sa).to_string(),
        },
        ..Default::default()
    };
    let mut pod_bound = false;
    let bound = spec
        .get("boundObjectRef")
        .filter(|v| v.is_object())
        .cloned();
    if let Some(r) = &bound {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let ref_name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let ref_uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let uid;
        match (group, kind) {
            ("", "Pod") => {
                let pod = get(reg, "pods", ns, ref_name).await?;
                let sa_of_pod = pod
                    .pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if sa_of_pod != name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                    )));
                }
                uid = meta::uid(&pod).to_string();
                claim.pod = Some(ObjRef {
                    name: ref_name.to_string(),
                    uid: uid.clone(),
                });
                pod_bound = true;
                let node_name = pod
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !node_name.is_empty() {
                    let node_uid = match reg.get("", "v1", "nodes") {
                        Some(s) => match s.get_cached("", node_name).await? {
                            Some(n) => meta::uid(&n).to_string(),
                            None => String::new(),
                        },
                        None => String::new(),
                    };
                    claim.node = Some(ObjRef {
                        name: node_name.to_string(),
                        uid: node_uid,
                    });
                }
            }
            ("", "Node") => {
                let node = get(reg, "nodes", "", ref_name).await?;
                uid = meta::uid(&node).to_string();
                claim.node = Some(ObjRef {
                    name: ref_name.to_string(),
                    uid: uid.clone(),
                });
            }
            ("", "Secret") => {
                let secret = get(reg, "secrets", ns, ref_name).await?;
                uid = meta::uid(&secret).to_string();
                claim.secret = Some(ObjRef {
                    name: ref_name.to_string(),
                    uid: uid.clone(),
                });
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {group}/{version}, Kind={kind}"
                )));
            }
        }
        if !ref_uid.is_empty() && ref_uid != uid {
            return Err(ApiError::conflict(
                &GroupResource::new(group, kind),
                ref_name,
                &format!("the UID in the bound object reference ({ref_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
    }

    if tokens.max_expiration_seconds > 0 && expiration > tokens.max_expiration_seconds {
        ctx.warn(format!(
            "requested expiration of {expiration} seconds shortened to {} seconds",
            tokens.max_expiration_seconds
        ));
        expiration = tokens.max_expiration_seconds;
    }
    // The admission-injected volume asks for 3607 s: such pod-bound tokens
    // for the API itself live a year, with `warnafter` at the requested time.
    let mut exp = expiration;
    let kube_audiences = audiences
        .iter()
        .all(|a| tokens.api_audiences.iter().any(|x| x == a));
    if tokens.extend_expiration
        && pod_bound
        && expiration == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
        && kube_audiences
    {
        claim.warnafter = Some(now + expiration);
        exp = EXPIRATION_EXTENSION_SECONDS;
    }
    let claims = Claims {
        aud: audiences.clone(),
        exp: now + exp,
        iat: now,
        iss: tokens.issuers[0].clone(),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: claim,
        nbf: now,
        sub: make_username(ns, name),
    };
    let token = tokens
        .sign(&claims)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;

    let mut out_spec = json!({
        "audiences": audiences,
        "expirationSeconds": expiration,
    });
    if let Some(b) = bound {
        out_spec["boundObjectRef"] = b;
    }
    Ok(json!({
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": rfc3339(now),
        },
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": rfc3339(now + expiration),
        },
    }))
}
