//! The HTTP face of the registry: request parsing, dispatch by verb and
//! subresource, encoding, discovery and OpenAPI.

pub mod discovery;
pub mod handlers;
pub mod negotiation;
pub mod request_info;
pub mod table;
pub mod watch;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use std::convert::Infallible;

use apimachinery::errors::ApiError;
use serde_json::Value;

/// Response body type used across the server (full or streamed).
pub type ResBody = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into()).boxed()
}

/// A JSON response with the given status.
pub fn json_response(code: u16, v: &Value) -> http::Response<ResBody> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}

/// The metav1.Status response for an error.
pub fn error_response(e: &ApiError) -> http::Response<ResBody> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after {
        if let Ok(v) = http::HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    r
}

pub fn text_response(code: u16, text: impl Into<String>) -> http::Response<ResBody> {
    http::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(full(text.into()))
        .unwrap_or_else(|_| http::Response::new(full(Bytes::new())))
}
