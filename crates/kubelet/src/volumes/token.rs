//! Service-account tokens for projected volumes (upstream's kubelet token
//! manager): tokens are requested through the TokenRequest API
//! (serviceaccounts/<name>/token, bound to the pod), cached per request
//! (account, namespace, audiences, expiration, bound object), and
//! requested again once 80% of their lifetime has passed or they are older
//! than 24 hours (with up to 10 s of jitter). A failed refresh keeps
//! serving the cached token until it expires. Entries of a pod are dropped
//! when its volumes are torn down; expired ones on every lookup.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::authentication::v1::TokenRequest;
use tracing::warn;

use super::source::ObjectSource;

/// Tokens older than this are refreshed whatever their expiry.
const MAX_TTL: Duration = Duration::hours(24);
/// Random spread of refresh times, so pods do not refresh in lockstep.
const MAX_JITTER_SECONDS: f64 = 10.0;

#[derive(Default)]
pub struct TokenManager {
    cache: Mutex<HashMap<String, TokenRequest>>,
}

fn cache_key(name: &str, namespace: &str, tr: &TokenRequest) -> String {
    let exp = tr.spec.expiration_seconds.unwrap_or(0);
    let bound = tr
        .spec
        .bound_object_ref
        .as_ref()
        .map(|r| {
            format!(
                "{}/{}/{}/{}",
                r.api_version.as_deref().unwrap_or(""),
                r.kind.as_deref().unwrap_or(""),
                r.name.as_deref().unwrap_or(""),
                r.uid.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    format!(
        "{name:?}/{namespace:?}/{:?}/{exp}/{bound:?}",
        tr.spec.audiences
    )
}

fn expiry(tr: &TokenRequest) -> Option<DateTime<Utc>> {
    let ts = tr.status.as_ref()?.expiration_timestamp.0;
    DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().max(0) as u32)
}

fn expired(tr: &TokenRequest, now: DateTime<Utc>) -> bool {
    expiry(tr).is_none_or(|e| now > e)
}

fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let r = (nanos % 1000) as f64 / 1000.0;
    Duration::milliseconds((r * MAX_JITTER_SECONDS * 1000.0) as i64)
}

/// Upstream's rule: refresh after 24 h, or within the last 20% of the
/// token's lifetime (both less a jitter).
pub fn requires_refresh(tr: &TokenRequest, now: DateTime<Utc>, jitter: Duration) -> bool {
    let Some(ttl) = tr.spec.expiration_seconds else {
        return false;
    };
    let Some(exp) = expiry(tr) else {
        return true;
    };
    let iat = exp - Duration::seconds(ttl);
    if now > iat + MAX_TTL - jitter {
        return true;
    }
    now > exp - Duration::seconds(ttl * 20 / 100) - jitter
}

impl TokenManager {
    /// A token for `namespace/name` as described by `tr`, from the cache
    /// when still fresh, else from the API.
    pub async fn get(
        &self,
        source: &dyn ObjectSource,
        namespace: &str,
        name: &str,
        tr: &TokenRequest,
    ) -> Result<TokenRequest, String> {
        let key = cache_key(name, namespace, tr);
        let now = Utc::now();
        let cached = {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.retain(|_, t| !expired(t, now));
            c.get(&key).cloned()
        };
        if let Some(c) = &cached {
            if !requires_refresh(c, now, jitter()) {
                return Ok(c.clone());
            }
        }
        match source.service_account_token(namespace, name, tr).await {
            Ok(fresh) => {
                if fresh.status.as_ref().is_none_or(|s| s.token.is_empty()) {
                    return Err("failed to fetch token: the API returned no token".into());
                }
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cached {
                Some(c) if !expired(&c, Utc::now()) => {
                    warn!(serviceaccount = %format!("{namespace}/{name}"), error = %e,
                        "could not refresh the service account token; using the cached one");
                    Ok(c)
                }
                _ => Err(format!("failed to fetch token: {e}")),
            },
        }
    }

    /// Forget the tokens bound to a pod.
    pub fn forget_pod(&self, pod_uid: &str) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|_, t| {
            t.spec
                .bound_object_ref
                .as_ref()
                .and_then(|r| r.uid.as_deref())
                != Some(pod_uid)
        });
    }

    /// Number of cached tokens (tests).
    pub fn len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::{TokenRequestSpec, TokenRequestStatus};

    fn tr(ttl: i64, exp: DateTime<Utc>) -> TokenRequest {
        TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(ttl),
                ..Default::default()
            },
            status: Some(TokenRequestStatus {
                token: "t".into(),
                expiration_timestamp: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(exp.timestamp()).unwrap(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn refresh_at_80_percent_or_after_a_day() {
        let now = Utc::now();
        let none = Duration::zero();
        // Issued now for an hour: fresh.
        assert!(!requires_refresh(
            &tr(3600, now + Duration::seconds(3600)),
            now,
            none
        ));
        // 79% through: fresh; 81% through: refresh.
        let t = tr(1000, now + Duration::seconds(210));
        assert!(!requires_refresh(&t, now, none));
        let t = tr(1000, now + Duration::seconds(190));
        assert!(requires_refresh(&t, now, none));
        // A year-long token is refreshed after 24 hours.
        let year = 365 * 24 * 3600;
        let t = tr(year, now + Duration::seconds(year) - Duration::hours(23));
        assert!(!requires_refresh(&t, now, none));
        let t = tr(year, now + Duration::seconds(year) - Duration::hours(25));
        assert!(requires_refresh(&t, now, none));
        // The jitter refreshes a little early.
        let t = tr(1000, now + Duration::seconds(205));
        assert!(requires_refresh(&t, now, Duration::seconds(10)));
    }
}
