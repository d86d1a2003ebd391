//! Turns a request path and method into upstream's RequestInfo: which
//! resource, namespace, name, subresource and verb a request addresses.

use http::Method;

/// What a request is about, as upstream's `RequestInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection (resource requests)
    /// or the lower-case HTTP method (non-resource requests).
    pub verb: String,
    /// "api" or "apis".
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl RequestInfo {
    /// Whether the verb changes state (for the mutating in-flight limit).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) || (!self.is_resource_request
            && !matches!(self.verb.as_str(), "get" | "head" | "options"))
    }
    /// Watches and connect-style subresources are long-running: exempt from the request timeout.
    pub fn is_long_running(&self) -> bool {
        self.verb == "watch"
            || matches!(
                self.subresource.as_str(),
                "log" | "exec" | "attach" | "portforward" | "proxy"
            )
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Parse a request. `watch_param` is the `watch` query parameter's truthiness.
pub fn parse(method: &Method, path: &str, watch_param: bool) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.as_str().to_ascii_lowercase(),
        ..Default::default()
    };
    let parts = split_path(path);
    if parts.is_empty() || !(parts[0] == "api" || parts[0] == "apis") {
        return info;
    }
    let mut cur: &[String] = &parts;
    info.api_prefix = cur[0].clone();
    cur = &cur[1..];
    if info.api_prefix == "apis" {
        if cur.is_empty() {
            return info;
        }
        info.api_group = cur[0].clone();
        cur = &cur[1..];
    }
    if cur.is_empty() {
        return info;
    }
    info.api_version = cur[0].clone();
    cur = &cur[1..];
    if cur.is_empty() {
        return info;
    }
    info.is_resource_request = true;

    let mut legacy_watch = false;
    if cur[0] == "watch" {
        legacy_watch = true;
        cur = &cur[1..];
        if cur.is_empty() {
            info.is_resource_request = false;
            return info;
        }
    }
    let owned: Vec<String>;
    if cur[0] == "namespaces" {
        if cur.len() >= 2 {
            info.namespace = cur[1].clone();
            if cur.len() > 2 && !matches!(cur[2].as_str(), "status" | "finalize") {
                owned = cur[2..].to_vec();
                cur = &owned;
            }
        }
    }
    info.resource = cur[0].clone();
    if cur.len() >= 2 {
        info.name = cur[1].clone();
    }
    if cur.len() >= 3 {
        info.subresource = cur[2].clone();
    }
    if info.resource == "namespaces" {
        // /api/v1/namespaces/{name}: the namespace is the object itself.
        info.namespace.clear();
        if cur.len() >= 2 {
            info.name = cur[1].clone();
        }
    }
    // Paths deeper than resource/name/subresource (e.g. proxy paths) keep the first three parts.
    info.verb = match *method {
        Method::GET | Method::HEAD => {
            if legacy_watch || (watch_param && info.subresource.is_empty()) {
                "watch".into()
            } else if info.name.is_empty() {
                "list".into()
            } else {
                "get".into()
            }
        }
        Method::POST => "create".into(),
        Method::PUT => "update".into(),
        Method::PATCH => "patch".into(),
        Method::DELETE => {
            if info.name.is_empty() {
                "deletecollection".into()
            } else {
                "delete".into()
            }
        }
        _ => info.verb.clone(),
    };
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_pod_get_parses() {
        let i = parse(&Method::GET, "/api/v1/namespaces/default/pods/web", false);
        assert_eq!(
            (
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.verb.as_str()
            ),
            ("default", "pods", "web", "get")
        );
    }

    #[test]
    fn namespace_status_is_a_subresource() {
        let i = parse(&Method::PUT, "/api/v1/namespaces/foo/finalize", false);
        assert_eq!(
            (
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str(),
                i.namespace.as_str()
            ),
            ("namespaces", "foo", "finalize", "")
        );
        let i = parse(&Method::GET, "/api/v1/namespaces/foo", false);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.verb.as_str()),
            ("namespaces", "foo", "get")
        );
    }

    #[test]
    fn group_list_watch_and_delete_collection() {
        let i = parse(&Method::GET, "/apis/apps/v1/deployments", true);
        assert_eq!(
            (i.api_group.as_str(), i.resource.as_str(), i.verb.as_str()),
            ("apps", "deployments", "watch")
        );
        let i = parse(&Method::GET, "/api/v1/watch/namespaces/a/configmaps", false);
        assert_eq!(i.verb, "watch");
        let i = parse(&Method::DELETE, "/api/v1/namespaces/a/configmaps", false);
        assert_eq!(i.verb, "deletecollection");
        let i = parse(
            &Method::PATCH,
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            false,
        );
        assert_eq!(
            (i.subresource.as_str(), i.verb.as_str()),
            ("scale", "patch")
        );
    }

    #[test]
    fn non_resource_paths_are_flagged() {
        assert!(!parse(&Method::GET, "/healthz", false).is_resource_request);
        assert!(!parse(&Method::GET, "/apis/apps/v1", false).is_resource_request);
    }
}
