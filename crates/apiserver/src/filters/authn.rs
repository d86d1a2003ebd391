//! Authentication: x509 client certificates (verified during the TLS
//! handshake against --client-ca-file; CN = user, O = groups), static
//! bearer tokens (--token-auth-file) and service-account JWTs
//! ([`crate::serviceaccount::Authenticator`]), in that order. A presented
//! token no authenticator accepts is a 401; requests without credentials
//! are system:anonymous when --anonymous-auth is on, otherwise 401.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use apimachinery::errors::ApiError;
use tower::{Layer, Service};

use super::BoxFut;
use crate::endpoints::{error_response, ResBody};
use crate::registry::context::UserInfo;

/// Identity from the client certificate of the connection, inserted by the server.
#[derive(Clone, Debug)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// Parsed --token-auth-file: token → user.
#[derive(Default, Clone)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

impl TokenFile {
    /// Upstream format: `token,user,uid,"group1,group2"` per line.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f = split_csv_line(line);
            if f.len() < 3 {
                anyhow::bail!(
                    "token file: line {}: expected at least 3 columns, found {}",
                    i + 1,
                    f.len()
                );
            }
            let groups = f
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            tokens.insert(
                f[0].clone(),
                UserInfo {
                    name: f[1].clone(),
                    uid: f[2].clone(),
                    groups,
                    extra: Default::default(),
                },
            );
        }
        Ok(TokenFile { tokens })
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

type SaAuthn = Option<Arc<crate::serviceaccount::Authenticator>>;

#[derive(Clone)]
pub struct AuthnLayer {
    tokens: Arc<TokenFile>,
    service_accounts: SaAuthn,
    anonymous: bool,
}

impl AuthnLayer {
    pub fn new(tokens: Arc<TokenFile>, service_accounts: SaAuthn, anonymous: bool) -> Self {
        AuthnLayer {
            tokens,
            service_accounts,
            anonymous,
        }
    }
}

impl<S> Layer<S> for AuthnLayer {
    type Service = Authn<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authn {
            inner,
            tokens: self.tokens.clone(),
            service_accounts: self.service_accounts.clone(),
            anonymous: self.anonymous,
        }
    }
}

#[derive(Clone)]
pub struct Authn<S> {
    inner: S,
    tokens: Arc<TokenFile>,
    service_accounts: SaAuthn,
    anonymous: bool,
}

fn with_authenticated(mut u: UserInfo) -> UserInfo {
    if !u.groups.iter().any(|g| g == "system:authenticated") && !u.is_anonymous() {
        u.groups.push("system:authenticated".into());
    }
    u
}

impl<S, B> Service<http::Request<B>> for Authn<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFut<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let bearer = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        let peer = req
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|p| p.0.clone());
        let user = match (peer, bearer) {
            (Some(u), _) => Some(with_authenticated(u)),
            (None, Some(t)) => match self.tokens.lookup(&t) {
                Some(u) => Some(with_authenticated(u.clone())),
                None => {
                    // Not a static token: maybe a service-account JWT; a
                    // presented but unknown token is never anonymous.
                    let Some(sa) = self.service_accounts.clone() else {
                        return Box::pin(async { Ok(error_response(&ApiError::unauthorized())) });
                    };
                    let mut inner = super::take_ready(&mut self.inner);
                    return Box::pin(async move {
                        match sa.authenticate(&t).await {
                            Ok(Some(u)) => {
                                req.extensions_mut().insert(u);
                                inner.call(req).await
                            }
                            Ok(None) => Ok(error_response(&ApiError::unauthorized())),
                            Err(e) => {
                                tracing::debug!(error = %e, "service account token rejected");
                                Ok(error_response(&ApiError::unauthorized()))
                            }
                        }
                    });
                }
            },
            (None, None) if self.anonymous => Some(UserInfo::anonymous()),
            (None, None) => None,
        };
        let Some(user) = user else {
            return Box::pin(async { Ok(error_response(&ApiError::unauthorized())) });
        };
        req.extensions_mut().insert(user);
        let mut inner = super::take_ready(&mut self.inner);
        Box::pin(async move { inner.call(req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_parses_quoted_groups() {
        let f = TokenFile::parse("abc,admin,uid1,\"system:masters,dev\"\n# comment\nxyz,bob,2\n")
            .unwrap();
        let u = f.lookup("abc").unwrap();
        assert_eq!(u.name, "admin");
        assert_eq!(u.groups, vec!["system:masters", "dev"]);
        assert!(f.lookup("xyz").unwrap().groups.is_empty());
        assert!(f.lookup("nope").is_none());
    }
}
