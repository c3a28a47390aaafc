//! `/openapi/v2`, served without definitions. kubectl reads it to check objects on the client
//! before it sends them when it cannot ask the server to check them (`fieldValidation`): for a
//! `kind: List` file (`kubectl create -f list.yaml`) it fails without it. With no definitions
//! kubectl checks no schema itself; the server still checks every item, under the
//! `fieldValidation` kubectl sends. The sandbox describes its kinds in `/openapi/v3`, which
//! `kubectl explain` and kubectl's patches read.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What client-go asks for (`discovery.OpenAPISchema`): the document in protobuf, under the
/// old name of the media type (with an `@`, which Go's MIME parser refuses in an answer).
const PROTOBUF_ASKED: &str = "proto-openapi.spec.v2@v1.0+protobuf";

/// The media type kube-apiserver answers with.
const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const SWAGGER: &str = "2.0";
const TITLE: &str = "Kubernetes";
const VERSION: &str = "v1.37.2";

/// The document, in protobuf if the client accepts it, else in JSON.
pub(super) fn document(headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains(PROTOBUF_ASKED) || accept.contains(PROTOBUF) {
        let mut response = protobuf().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
        return response;
    }
    axum::Json(
        json!({"swagger": SWAGGER, "info": {"title": TITLE, "version": VERSION},
        "paths": {}, "definitions": {}}),
    )
    .into_response()
}

/// `openapi_v2.Document{swagger, info{title, version}}` in protobuf: fields 1 and 2 of the
/// document, 1 and 2 of `Info`, each length-delimited.
fn protobuf() -> Vec<u8> {
    let field = |number: u8, bytes: &[u8]| {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    };
    let info = [field(1, TITLE.as_bytes()), field(2, VERSION.as_bytes())].concat();
    [field(1, SWAGGER.as_bytes()), field(2, &info)].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protobuf_document_names_swagger_and_the_version() {
        let bytes = protobuf();
        assert_eq!(&bytes[..5], b"\x0a\x032.0");
        assert_eq!(bytes[5], 0x12);
        assert_eq!(bytes[6] as usize, bytes.len() - 7);
    }
}
