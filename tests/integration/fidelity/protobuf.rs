//! Protobuf request bodies, as client-go's typed clients (Helm's among them) send them.

use super::*;

/// A Namespace created with a protobuf body, as `kubectl create namespace` (and client-go's
/// typed clients, Helm's Secret storage among them) send it; read back as JSON.
pub(super) async fn protobuf_request_body(http: Http, ns: String) -> Value {
    /// One length-delimited protobuf field (the lengths here are all under 128).
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128);
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let name = format!("{ns}-pb");
    // Namespace { metadata: ObjectMeta { name } }
    let namespace = field(1, &field(1, name.as_bytes()));
    // runtime.Unknown { typeMeta: { apiVersion, kind }, raw }, behind the "k8s\0" magic.
    let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
    let mut body = b"k8s\0".to_vec();
    body.extend([field(1, &type_meta), field(2, &namespace)].concat());
    let created = http
        .call_raw(
            Method::POST,
            "/api/v1/namespaces",
            "application/vnd.kubernetes.protobuf",
            "application/json",
            body,
        )
        .await;
    let read = http.get(&format!("/api/v1/namespaces/{name}")).await;
    json!({
        "create": created.code,
        "read": read.code,
        "name": read.body["metadata"]["name"],
    })
}

/// A Secret with binary `data` created and then replaced with protobuf bodies, as client-go's
/// typed clients (Helm's Secret release storage among them) send them; read back as JSON.
pub(super) async fn protobuf_secret_create_and_update(http: Http, ns: String) -> Value {
    use k8s_pb::api::core::v1::Secret;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;

    fn body(secret: &Secret) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
            }),
            raw: Some(secret.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
    }
    const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
    // JSON back: kube-apiserver would answer protobuf to a client that prefers it.
    const ACCEPT: &str = "application/json";
    let path = format!("/api/v1/namespaces/{ns}/secrets");
    let mut secret = Secret {
        metadata: Some(ObjectMeta {
            name: Some("release".into()),
            labels: [("owner".to_string(), "helm".to_string())].into(),
            ..Default::default()
        }),
        data: [("blob".to_string(), vec![0u8, 1, 2, 0xfe, 0xff])].into(),
        string_data: [("note".to_string(), "plain".to_string())].into(),
        r#type: Some("helm.sh/release.v1".into()),
        immutable: None,
    };
    let created = http
        .call_raw(Method::POST, &path, PROTOBUF, ACCEPT, body(&secret))
        .await;
    let read = http.get(&format!("{path}/release")).await;
    secret.metadata.as_mut().unwrap().resource_version = read.body["metadata"]["resourceVersion"]
        .as_str()
        .map(String::from);
    secret.data = [("blob".to_string(), b"second".to_vec())].into();
    secret.string_data.clear();
    let replaced = http
        .call_raw(
            Method::PUT,
            &format!("{path}/release"),
            PROTOBUF,
            ACCEPT,
            body(&secret),
        )
        .await;
    let reread = http.get(&format!("{path}/release")).await;
    let view = |r: &Reply| {
        json!({
            "labels": r.body["metadata"]["labels"],
            "type": r.body["type"],
            "data": r.body["data"],
        })
    };
    json!({
        "create": created.outcome(),
        "created": view(&created),
        "read": view(&read),
        "replace": replaced.outcome(),
        "reread": view(&reread),
    })
}
