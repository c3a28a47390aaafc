//! Signing keys: read from a labelled Secret in the operator's namespace that names the one
//! Distributor it signs for, held briefly, never printed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use standardwebhooks::Webhook;

use crate::api::SecretKeyRef;

/// The label a Secret must carry (value `"true"`) before a Distributor may name it as a signing
/// key: the operator's namespace holds other Secrets (the SMTP password) that no endpoint may
/// be signed with.
pub const SIGNING_KEY_LABEL: &str = "partner-operator.io/webhook-signing-key";

/// The annotation that binds a signing key Secret to the one Distributor it signs for (its
/// name): another Distributor naming the Secret is refused, so none can have its deliveries
/// signed with another's key. (An annotation: a Distributor's name may be longer than a label
/// value.)
pub const SIGNING_KEY_DISTRIBUTOR_ANNOTATION: &str = "partner-operator.io/distributor";

/// How long keys read from a Secret are used before it is read again: a rotated key is in use
/// within this long.
const KEYS_TTL: Duration = Duration::from_secs(10);

/// One or more Standard Webhooks keys: each delivery is signed by each.
#[derive(Clone)]
pub struct SigningKeys(Vec<std::sync::Arc<Webhook>>);

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} keys, redacted)", self.0.len())
    }
}

/// Why no signing keys could be had; never says a key. A Secret that is missing, unlabelled,
/// bound to another Distributor or not readable by the operator (RBAC) is refused in the same
/// words, so that a Distributor's author learns nothing of the Secrets that are not theirs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "Secret {namespace}/{name} is not a signing key of Distributor {distributor}: it must \
         exist, be labelled {SIGNING_KEY_LABEL}=true and be annotated \
         {SIGNING_KEY_DISTRIBUTOR_ANNOTATION}={distributor}"
    )]
    NotBound {
        namespace: String,
        name: String,
        distributor: String,
    },
    #[error("Secret {namespace}/{name} has no entry {key:?}")]
    NoEntry {
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "entry {key:?} of Secret {namespace}/{name} is not a Standard Webhooks key (whsec_ and base64, 24 to 64 bytes)"
    )]
    Malformed {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("cannot read Secret {namespace}/{name} now: {reason}")]
    Unreadable {
        namespace: String,
        name: String,
        reason: String,
    },
}

impl SigningKeys {
    /// Keys separated by whitespace, each `whsec_` and base64 (the prefix may be left out).
    /// `None` if there is none or one is not such a key.
    pub fn parse(text: &str) -> Option<Self> {
        let keys: Option<Vec<_>> = text
            .split_whitespace()
            .map(|key| {
                let decoded = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    key.strip_prefix("whsec_").unwrap_or(key),
                )
                .ok()?;
                (24..=64)
                    .contains(&decoded.len())
                    .then(|| Webhook::from_bytes(decoded).ok().map(std::sync::Arc::new))
                    .flatten()
            })
            .collect();
        keys.filter(|k| !k.is_empty()).map(Self)
    }

    /// The `webhook-signature` header: a `v1,<signature>` by each key.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.0
            .iter()
            .filter_map(|key| key.sign(id, timestamp, body).ok())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Signing keys by Distributor and Secret entry, read from the operator's namespace and kept
/// [`KEYS_TTL`].
pub struct SigningKeysCache {
    client: Client,
    namespace: String,
    held: Mutex<HashMap<(String, SecretKeyRef), (Instant, SigningKeys)>>,
}

impl SigningKeysCache {
    pub fn new(client: Client, namespace: String) -> Self {
        Self {
            client,
            namespace,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The keys `distributor` signs with, from the Secret entry its endpoint names.
    pub async fn get(
        &self,
        distributor: &str,
        reference: &SecretKeyRef,
    ) -> Result<SigningKeys, KeyError> {
        let held_as = (distributor.to_string(), reference.clone());
        if let Some((at, keys)) = self.held.lock().unwrap().get(&held_as)
            && at.elapsed() < KEYS_TTL
        {
            return Ok(keys.clone());
        }
        let keys = self.read(distributor, reference).await?;
        self.held
            .lock()
            .unwrap()
            .insert(held_as, (Instant::now(), keys.clone()));
        Ok(keys)
    }

    async fn read(
        &self,
        distributor: &str,
        reference: &SecretKeyRef,
    ) -> Result<SigningKeys, KeyError> {
        let (namespace, name) = (self.namespace.clone(), reference.name.clone());
        let not_bound = || KeyError::NotBound {
            namespace: self.namespace.clone(),
            name: reference.name.clone(),
            distributor: distributor.to_string(),
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let secret = match api.get_opt(&reference.name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => return Err(not_bound()),
            // Forbidden: the chart's Role may list the Secrets the operator reads; one it may
            // not read is refused as one that does not exist.
            Err(kube::Error::Api(status)) if status.code == 403 => return Err(not_bound()),
            Err(err) => {
                return Err(KeyError::Unreadable {
                    namespace,
                    name,
                    reason: match err {
                        kube::Error::Api(status) => format!("HTTP {}", status.code),
                        _ => "the API server did not answer".into(),
                    },
                });
            }
        };
        if !bound_to(&secret, distributor) {
            return Err(not_bound());
        }
        let key = reference.key.clone();
        let Some(value) = secret.data.as_ref().and_then(|d| d.get(&key)) else {
            return Err(KeyError::NoEntry {
                namespace,
                name,
                key,
            });
        };
        std::str::from_utf8(&value.0)
            .ok()
            .and_then(SigningKeys::parse)
            .ok_or(KeyError::Malformed {
                namespace,
                name,
                key,
            })
    }
}

/// Whether `secret` is a signing key (labelled) of `distributor` (annotated with its name).
fn bound_to(secret: &Secret, distributor: &str) -> bool {
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SIGNING_KEY_LABEL))
        .is_some_and(|v| v == "true");
    let annotated = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNING_KEY_DISTRIBUTOR_ANNOTATION))
        .is_some_and(|v| v == distributor);
    labelled && annotated
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn each_key_signs_so_a_receiver_with_either_verifies() {
        let keys = SigningKeys::parse(&format!("{KEY}  {OTHER}\n")).unwrap();
        let header = keys.sign("msg_1", 1_700_000_000, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        // The Standard Webhooks test vector's key gives its published signature.
        let one = SigningKeys::parse(KEY).unwrap();
        assert_eq!(
            one.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn what_is_not_a_key_is_refused_and_never_printed() {
        assert!(SigningKeys::parse("").is_none());
        assert!(SigningKeys::parse("whsec_!!!").is_none());
        assert!(SigningKeys::parse("whsec_c2hvcnQ=").is_none(), "5 bytes");
        let keys = SigningKeys::parse(KEY).unwrap();
        assert!(!format!("{keys:?}").contains("MfKQ"));
    }

    #[test]
    fn a_key_signs_only_for_the_distributor_it_names() {
        let secret = |labels: &[(&str, &str)], annotations: &[(&str, &str)]| {
            let map = |pairs: &[(&str, &str)]| {
                Some(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            };
            let mut s = Secret::default();
            s.metadata.labels = map(labels);
            s.metadata.annotations = map(annotations);
            s
        };
        let label = (SIGNING_KEY_LABEL, "true");
        let northwind = (SIGNING_KEY_DISTRIBUTOR_ANNOTATION, "northwind");
        assert!(bound_to(&secret(&[label], &[northwind]), "northwind"));
        assert!(!bound_to(&secret(&[label], &[northwind]), "contoso"));
        assert!(!bound_to(&secret(&[label], &[]), "northwind"));
        assert!(!bound_to(&secret(&[], &[northwind]), "northwind"));
        // The same words for every refusal, whatever the Secret is.
        let refusal = |name: &str| {
            KeyError::NotBound {
                namespace: "partner-operator".into(),
                name: name.into(),
                distributor: "contoso".into(),
            }
            .to_string()
        };
        assert_eq!(
            refusal("a").replace("/a ", "/_ "),
            refusal("b").replace("/b ", "/_ ")
        );
    }
}
