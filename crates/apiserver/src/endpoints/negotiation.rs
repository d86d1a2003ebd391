//! Content negotiation: request bodies (JSON, YAML), response encodings
//! (JSON, YAML) and the "as=Table" / "as=PartialObjectMetadata" transforms.

use apimachinery::errors::ApiError;
use serde_json::Value;

/// What the client asked to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Object,
    Table,
    PartialMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Yaml,
}

/// Parse an Accept header. Media types are tried in order; protobuf is not
/// offered, so a client that also accepts JSON gets JSON.
pub fn parse_accept(accept: Option<&str>) -> Result<(Output, Encoding), ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok((Output::Object, Encoding::Json));
    };
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = None;
        let mut g = None;
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(v.trim().to_string()),
                    "g" => g = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let enc = match media.as_str() {
            "application/json" | "*/*" | "application/*" | "application/json-patch+json" => {
                Encoding::Json
            }
            "application/yaml" => Encoding::Yaml,
            _ => continue,
        };
        let out = match (as_.as_deref(), g.as_deref()) {
            (None, _) => Output::Object,
            (Some("Table"), Some("meta.k8s.io") | None) => Output::Table,
            (Some("PartialObjectMetadata") | Some("PartialObjectMetadataList"), _) => {
                Output::PartialMetadata
            }
            _ => continue,
        };
        return Ok((out, enc));
    }
    Err(ApiError::not_acceptable(&[
        "application/json",
        "application/yaml",
    ]))
}

/// Decode a request body as JSON or YAML, by Content-Type.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    match ct.as_str() {
        "application/yaml" | "application/apply-patch+yaml" | "text/yaml" => {
            let v: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
            })?;
            serde_json::to_value(v)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
        }
        "application/json"
        | ""
        | "*/*"
        | "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        ct if apimachinery::protobuf::is_media_type(ct) => {
            apimachinery::protobuf::decode(body).map_err(|e| ApiError::bad_request(e))
        }
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json",
                "application/yaml",
                apimachinery::protobuf::MEDIA_TYPE,
            ],
        )),
    }
}

/// Encode a response value.
pub fn encode(v: &Value, enc: Encoding) -> (Vec<u8>, &'static str) {
    match enc {
        Encoding::Json => (
            serde_json::to_vec(v).unwrap_or_default(),
            "application/json",
        ),
        Encoding::Yaml => (
            serde_yaml::to_string(v).unwrap_or_default().into_bytes(),
            "application/yaml",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_table_accept_header_selects_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            parse_accept(Some(a)).unwrap(),
            (Output::Table, Encoding::Json)
        );
    }

    #[test]
    fn protobuf_falls_back_to_json_or_is_refused() {
        assert_eq!(
            parse_accept(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap()
            .1,
            Encoding::Json
        );
        assert_eq!(
            parse_accept(Some("application/vnd.kubernetes.protobuf"))
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let e = decode_body(Some("application/json"), b"{\"a\":").unwrap_err();
        assert_eq!(e.code, 400);
        let e = decode_body(Some("text/plain"), b"x").unwrap_err();
        assert_eq!(e.code, 415);
    }
}
