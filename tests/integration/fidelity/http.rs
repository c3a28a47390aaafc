//! Raw HTTP to either server, and the small builders and readers the probes share.

use partner_operator::testing::PartnerFixture;

use super::*;

/// A response as a probe sees it.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) code: u16,
    pub(super) body: Value,
    pub(super) warnings: Vec<String>,
}

impl Reply {
    /// Status code, and for a failure its reason and the fields its causes name.
    pub(super) fn outcome(&self) -> Value {
        if self.code < 400 {
            return json!(self.code);
        }
        let mut causes: Vec<String> = self.body["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["field"].as_str().unwrap_or("").to_string())
            .collect();
        causes.sort();
        causes.dedup();
        json!([self.code, self.body["reason"], causes])
    }

    pub(super) fn rv(&self) -> String {
        self.body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Clone)]
pub(super) struct Http {
    pub(super) client: Client,
    /// The same server without kube-rs's retries (see `client_without_retries`).
    pub(super) once: Client,
}

impl Http {
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        accept: &str,
        body: Option<&Value>,
    ) -> Reply {
        let bytes = match body {
            None => vec![],
            Some(Value::String(yaml)) => yaml.clone().into_bytes(),
            Some(body) => serde_json::to_vec(body).unwrap(),
        };
        self.call_raw(method, path, content_type, accept, bytes)
            .await
    }

    /// As [`Http::call`], with the body as bytes (a protobuf body, say).
    pub(super) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        accept: &str,
        bytes: Vec<u8>,
    ) -> Reply {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("Content-Type", content_type)
            .header("Accept", accept)
            .body(kube::client::Body::from(bytes))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.send(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within 30 s"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let code = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect();
        let bytes = response.into_body().collect_bytes().await.unwrap();
        let watch = path.contains("watch=true");
        let whole = serde_json::from_slice(&bytes).ok().filter(|_| !watch);
        let body = whole.unwrap_or_else(|| {
            // A watch: one JSON document per line (a list of one, for a single event).
            let events: Vec<Value> = String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or(json!(l)))
                .collect();
            Value::Array(events)
        });
        Reply {
            code,
            body,
            warnings,
        }
    }

    pub(super) async fn get(&self, path: &str) -> Reply {
        self.call(
            Method::GET,
            path,
            "application/json",
            "application/json",
            None,
        )
        .await
    }

    /// A GET whose 429, 503 or 504 comes back as it is, not retried.
    pub(super) async fn get_once(&self, path: &str) -> Reply {
        let once = Http {
            client: self.once.clone(),
            once: self.once.clone(),
        };
        once.get(path).await
    }

    pub(super) async fn get_as(&self, path: &str, accept: &str) -> Reply {
        self.call(Method::GET, path, "application/json", accept, None)
            .await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(
            Method::POST,
            path,
            "application/json",
            "application/json",
            Some(&body),
        )
        .await
    }

    pub(super) async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(
            Method::PUT,
            path,
            "application/json",
            "application/json",
            Some(&body),
        )
        .await
    }

    pub(super) async fn patch(&self, path: &str, content_type: &str, body: Value) -> Reply {
        self.call(
            Method::PATCH,
            path,
            content_type,
            "application/json",
            Some(&body),
        )
        .await
    }

    pub(super) async fn delete(&self, path: &str) -> Reply {
        self.call(
            Method::DELETE,
            path,
            "application/json",
            "application/json",
            None,
        )
        .await
    }

    /// Polls `path` until `done` holds for its reply, or `patience` passes: the last reply
    /// either way (what the two servers did is compared, a timeout included).
    pub(super) async fn until(
        &self,
        path: &str,
        patience: Patience,
        done: impl Fn(&Reply) -> bool,
    ) -> Reply {
        within(patience, || async {
            let reply = self.get(path).await;
            if done(&reply) { Ok(reply) } else { Err(reply) }
        })
        .await
        .unwrap_or_else(|last| last)
    }
}

pub(super) const MERGE: &str = "application/merge-patch+json";
pub(super) const JSON_PATCH: &str = "application/json-patch+json";
pub(super) const STRATEGIC: &str = "application/strategic-merge-patch+json";
pub(super) const APPLY: &str = "application/apply-patch+yaml";
pub(super) const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

pub(super) fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

pub(super) fn partner(name: &str) -> Value {
    PartnerFixture::new(name)
        .organization("Contoso")
        .email("ops@contoso.example")
        .manifest()
}

pub(super) fn partners(ns: &str) -> String {
    format!("/apis/partner-operator.io/v1alpha1/namespaces/{ns}/partners")
}

pub(super) fn cms(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps")
}

pub(super) fn names(list: &Reply) -> Value {
    json!(
        list.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["metadata"]["name"].clone())
            .collect::<Vec<_>>()
    )
}

pub(super) fn managers(object: &Value) -> Value {
    let mut entries: Vec<(String, String, String)> = object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
                m["subresource"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    entries.sort();
    json!(entries)
}
