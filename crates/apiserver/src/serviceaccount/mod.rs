//! Service-account tokens: the issuer behind the serviceaccounts/token
//! subresource (TokenRequest) and the authenticator that accepts the
//! tokens it issued.
//!
//! Tokens are JWTs signed with --service-account-signing-key-file (RS256
//! for RSA keys, ES256/ES384 for ECDSA keys) carrying upstream's claims:
//! `iss` (the first --service-account-issuer), `sub`
//! (`system:serviceaccount:<ns>:<name>`), `aud`, `exp`, `iat`, `nbf`, `jti`
//! and the private `kubernetes.io` claim (namespace, serviceaccount, and the
//! bound pod/secret/node, `warnafter` for extended tokens).
//!
//! Authentication (upstream's non-legacy validator): the signature must
//! verify against one of the --service-account-key-file keys, the issuer
//! be one of ours, the audience intersect --api-audiences, the token be
//! within exp/nbf (one minute leeway), the ServiceAccount still exist with
//! the claimed uid and, for bound tokens, the pod/secret/node too, not
//! deleted more than a minute ago.

pub mod keys;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::context::UserInfo;
use crate::registry::Registry;
use crate::Options;

/// The requested expiration of the admission-injected token volume; tokens
/// asked for exactly this long are extended (see `extend_expiration`).
pub const WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
/// How long extended tokens really live: one year.
pub const EXPIRATION_EXTENSION_SECONDS: i64 = 24 * 365 * 60 * 60;
/// Clock skew tolerated on exp/nbf, and on deletion of bound objects.
const LEEWAY_SECONDS: i64 = 60;

/// Issuer and authenticator configuration from the flags.
pub struct ServiceAccountTokens {
    /// Every accepted issuer; the first signs.
    pub issuers: Vec<String>,
    pub api_audiences: Vec<String>,
    pub signer: Option<keys::SigningKey>,
    pub verify_keys: Vec<keys::VerifyKey>,
    /// 0 = no maximum.
    pub max_expiration_seconds: i64,
    pub extend_expiration: bool,
}

/// A reference to an object in the `kubernetes.io` claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The private `kubernetes.io` claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KubernetesClaim {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjRef>,
    #[serde(default)]
    pub serviceaccount: ObjRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// Every claim of a service-account token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    pub nbf: i64,
    pub sub: String,
}

/// Upstream's service-account user name.
pub fn make_username(ns: &str, name: &str) -> String {
    format!("system:serviceaccount:{ns}:{name}")
}

impl ServiceAccountTokens {
    /// No issuer, no keys: tokens are neither issued nor accepted.
    pub fn disabled() -> Self {
        ServiceAccountTokens {
            issuers: Vec::new(),
            api_audiences: Vec::new(),
            signer: None,
            verify_keys: Vec::new(),
            max_expiration_seconds: 0,
            extend_expiration: true,
        }
    }

    /// From the flags. Without an issuer and a signing key, TokenRequest
    /// is refused (upstream makes both required; ferrokube only warns) and
    /// service-account tokens are not accepted.
    pub fn from_options(opts: &Options) -> anyhow::Result<Self> {
        let signer = match &opts.service_account_signing_key_file {
            Some(p) => Some(keys::load_signing_key(p)?),
            None => None,
        };
        if signer.is_some() && opts.service_account_issuer.is_empty() {
            anyhow::bail!(
                "service-account-signing-key-file and service-account-issuer are required flags"
            );
        }
        let mut verify_keys = Vec::new();
        for p in &opts.service_account_key_file {
            verify_keys.extend(keys::load_verify_keys(p)?);
        }
        if opts.service_account_key_file.is_empty() {
            if let Some(s) = &signer {
                verify_keys.push(s.public.clone());
            }
        }
        let api_audiences = if opts.api_audiences.is_empty() {
            opts.service_account_issuer
                .first()
                .cloned()
                .into_iter()
                .collect()
        } else {
            opts.api_audiences.clone()
        };
        if signer.is_none() {
            tracing::warn!(
                "no --service-account-signing-key-file: serviceaccounts/token requests will fail"
            );
        }
        Ok(ServiceAccountTokens {
            issuers: opts.service_account_issuer.clone(),
            api_audiences,
            signer,
            verify_keys,
            max_expiration_seconds: opts.service_account_max_token_expiration.as_secs() as i64,
            extend_expiration: opts.service_account_extend_token_expiration,
        })
    }

    /// Sign claims with the signing key.
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        let Some(s) = &self.signer else {
            return Err("no service account signing key is configured".into());
        };
        let mut header = Header::new(s.alg);
        header.typ = None;
        header.kid = Some(s.kid.clone());
        jsonwebtoken::encode(&header, claims, &s.key).map_err(|e| e.to_string())
    }

    /// Verify signature, issuer, audience and time; `Ok(None)` when the
    /// token is not a JWT from one of our issuers (other authenticators may
    /// own it), `Err` when it is ours but invalid.
    pub fn verify(&self, token: &str) -> Result<Option<Claims>, String> {
        if self.issuers.is_empty() || self.verify_keys.is_empty() {
            return Ok(None);
        }
        if token.split('.').count() != 3 {
            return Ok(None);
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(None);
        };
        // Peek at the issuer before trusting anything.
        let Some(iss) = unverified_issuer(token) else {
            return Ok(None);
        };
        if !self.issuers.contains(&iss) {
            return Ok(None);
        }
        let mut last = "invalid signature".to_string();
        for k in self.verify_keys.iter().filter(|k| k.alg == header.alg) {
            let mut v = Validation::new(k.alg);
            v.leeway = LEEWAY_SECONDS as u64;
            v.validate_nbf = true;
            v.set_issuer(&self.issuers);
            v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            v.set_audience(&self.api_audiences);
            match jsonwebtoken::decode::<Claims>(token, &k.key, &v) {
                Ok(d) => return Ok(Some(d.claims)),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    match e.kind() {
                        ErrorKind::InvalidSignature => continue,
                        ErrorKind::ExpiredSignature => {
                            return Err("service account token has expired".into())
                        }
                        ErrorKind::ImmatureSignature => {
                            return Err("service account token is not valid yet".into())
                        }
                        ErrorKind::InvalidAudience => {
                            return Err(format!(
                                "token audiences is invalid for the target audience {:?}",
                                self.api_audiences
                            ))
                        }
                        other => last = format!("{other:?}"),
                    }
                }
            }
        }
        Err(last)
    }
}

fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss").and_then(Value::as_str).map(str::to_string)
}

fn deleted_before_leeway(obj: &Value, now: i64) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.timestamp() < now - LEEWAY_SECONDS)
}

/// The authenticator for service-account JWTs.
pub struct Authenticator {
    pub tokens: Arc<ServiceAccountTokens>,
    pub registry: Arc<Registry>,
}

impl Authenticator {
    async fn lookup(&self, plural: &str, ns: &str, name: &str) -> Result<Option<Value>, String> {
        let store = self
            .registry
            .get("", "v1", plural)
            .ok_or_else(|| format!("no {plural} store"))?;
        store.get_cached(ns, name).await.map_err(|e| e.message)
    }

    /// `Ok(None)`: not a token of ours. `Err`: ours but invalid (401).
    pub async fn authenticate(&self, token: &str) -> Result<Option<UserInfo>, String> {
        let Some(c) = self.tokens.verify(token)? else {
            return Ok(None);
        };
        let now = chrono::Utc::now().timestamp();
        let k = &c.kubernetes;
        let ns = k.namespace.as_str();
        let sa_name = k.serviceaccount.name.as_str();
        if ns.is_empty() || sa_name.is_empty() {
            return Err("service account token is missing the kubernetes.io claim".into());
        }
        let sa = self
            .lookup("serviceaccounts", ns, sa_name)
            .await?
            .ok_or_else(|| format!("serviceaccounts {sa_name:?} not found"))?;
        if deleted_before_leeway(&sa, now) {
            return Err(format!("service account {ns}/{sa_name} has been deleted"));
        }
        let sa_uid = apimachinery::meta::uid(&sa);
        if sa_uid != k.serviceaccount.uid {
            return Err(format!(
                "service account UID ({sa_uid}) does not match claim ({})",
                k.serviceaccount.uid
            ));
        }
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(s) = &k.secret {
            let obj = self.lookup("secrets", ns, &s.name).await.ok().flatten();
            match obj {
                Some(o) if !deleted_before_leeway(&o, now) => {
                    if apimachinery::meta::uid(&o) != s.uid {
                        return Err(format!(
                            "secret UID ({}) does not match service account secret ref claim ({})",
                            apimachinery::meta::uid(&o),
                            s.uid
                        ));
                    }
                }
                _ => return Err("service account token has been invalidated".into()),
            }
        }
        if let Some(p) = &k.pod {
            let obj = self.lookup("pods", ns, &p.name).await.ok().flatten();
            match obj {
                Some(o) if !deleted_before_leeway(&o, now) => {
                    if apimachinery::meta::uid(&o) != p.uid {
                        return Err(format!(
                            "pod UID ({}) does not match service account pod ref claim ({})",
                            apimachinery::meta::uid(&o),
                            p.uid
                        ));
                    }
                }
                _ => return Err("service account token has been invalidated".into()),
            }
            extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![p.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![p.uid.clone()],
            );
        }
        if let Some(n) = &k.node {
            // A node named by a pod-bound token is informational; a token
            // bound to the node itself requires the node to still exist.
            if k.pod.is_none() {
                let obj = self.lookup("nodes", "", &n.name).await.ok().flatten();
                match obj {
                    Some(o) if !deleted_before_leeway(&o, now) => {
                        if apimachinery::meta::uid(&o) != n.uid {
                            return Err(format!(
                                "node UID ({}) does not match service account node ref claim ({})",
                                apimachinery::meta::uid(&o),
                                n.uid
                            ));
                        }
                    }
                    _ => return Err("service account token has been invalidated".into()),
                }
            }
            extra.insert(
                "authentication.kubernetes.io/node-name".into(),
                vec![n.name.clone()],
            );
            if !n.uid.is_empty() {
                extra.insert(
                    "authentication.kubernetes.io/node-uid".into(),
                    vec![n.uid.clone()],
                );
            }
        }
        if !c.jti.is_empty() {
            extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={}", c.jti)],
            );
        }
        Ok(Some(UserInfo {
            name: make_username(ns, sa_name),
            uid: sa_uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            extra,
        }))
    }
}

/// Algorithms accepted (for documentation and tests).
pub const SUPPORTED_ALGORITHMS: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::ES256, Algorithm::ES384];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn testdata(f: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/serviceaccount/testdata")
            .join(f)
    }

    fn tokens(sign: &str, verify: &[&str]) -> ServiceAccountTokens {
        let signer = keys::load_signing_key(&testdata(sign)).unwrap();
        let mut verify_keys = Vec::new();
        for v in verify {
            verify_keys.extend(keys::load_verify_keys(&testdata(v)).unwrap());
        }
        ServiceAccountTokens {
            issuers: vec!["https://issuer".into(), "https://old-issuer".into()],
            api_audiences: vec!["https://issuer".into()],
            signer: Some(signer),
            verify_keys,
            max_expiration_seconds: 0,
            extend_expiration: true,
        }
    }

    fn claims(iss: &str, aud: &str, exp_in: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            iss: iss.into(),
            jti: "j".into(),
            kubernetes: KubernetesClaim {
                namespace: "ns".into(),
                serviceaccount: ObjRef {
                    name: "sa".into(),
                    uid: "u".into(),
                },
                ..Default::default()
            },
            nbf: now,
            sub: make_username("ns", "sa"),
        }
    }

    #[test]
    fn rsa_and_ecdsa_keys_sign_and_verify() {
        for (sign, verify, alg) in [
            ("rsa.key", "rsa.pub", Algorithm::RS256),
            ("rsa-pkcs8.key", "rsa.pub", Algorithm::RS256),
            ("rsa.key", "rsa.key", Algorithm::RS256),
            ("ec.key", "ec.pub", Algorithm::ES256),
            ("ec.key", "ec.key", Algorithm::ES256),
        ] {
            let t = tokens(sign, &[verify]);
            let jwt = t
                .sign(&claims("https://issuer", "https://issuer", 600))
                .unwrap();
            let h = jsonwebtoken::decode_header(&jwt).unwrap();
            assert_eq!(h.alg, alg, "{sign}");
            assert_eq!(h.typ, None);
            assert_eq!(
                h.kid.as_deref(),
                Some(t.verify_keys[0].kid.as_str()),
                "{sign}/{verify}"
            );
            let c = t.verify(&jwt).unwrap().unwrap();
            assert_eq!(c.sub, "system:serviceaccount:ns:sa");
            assert_eq!(c.kubernetes.serviceaccount.uid, "u");
        }
    }

    #[test]
    fn kid_is_the_hash_of_the_pkix_key() {
        // The same key read as a private key and as its PKIX public key.
        let from_private = keys::load_signing_key(&testdata("rsa.key")).unwrap();
        let from_public = keys::load_verify_keys(&testdata("rsa.pub")).unwrap();
        assert_eq!(from_private.kid, from_public[0].kid);
        let ec_private = keys::load_signing_key(&testdata("ec.key")).unwrap();
        let ec_public = keys::load_verify_keys(&testdata("ec.pub")).unwrap();
        assert_eq!(ec_private.kid, ec_public[0].kid);
    }

    #[test]
    fn rejects_bad_tokens() {
        let t = tokens("rsa.key", &["rsa.pub"]);
        // Another issuer's token is not ours to judge.
        let other = t
            .sign(&claims("https://elsewhere", "https://issuer", 600))
            .unwrap();
        assert!(t.verify(&other).unwrap().is_none());
        assert!(t.verify("garbage").unwrap().is_none());
        assert!(t.verify("a.b.c").unwrap().is_none());
        // A second accepted issuer verifies.
        let old = t
            .sign(&claims("https://old-issuer", "https://issuer", 600))
            .unwrap();
        assert!(t.verify(&old).unwrap().is_some());
        let expired = t
            .sign(&claims("https://issuer", "https://issuer", -120))
            .unwrap();
        assert!(t.verify(&expired).unwrap_err().contains("expired"));
        let wrong_aud = t.sign(&claims("https://issuer", "other", 600)).unwrap();
        assert!(t.verify(&wrong_aud).is_err());
        // Signed by a key we do not trust.
        let ec = tokens("ec.key", &["rsa.pub"]);
        let foreign = ec
            .sign(&claims("https://issuer", "https://issuer", 600))
            .unwrap();
        assert!(t.verify(&foreign).is_err());
        let rsa_other = tokens("rsa.key", &["ec.pub"]);
        assert!(rsa_other.verify(&old).is_err());
    }
}
