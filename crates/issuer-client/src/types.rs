//! The typed cert-manager.io/v1 `CertificateRequest`, written by hand (no
//! schema generation) from the CRD that cert-manager v1.21 ships.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::TypeMeta;
use serde::{Deserialize, Serialize};

/// API group of cert-manager's resources.
pub const GROUP: &str = "cert-manager.io";
/// API version this crate speaks.
pub const VERSION: &str = "v1";
/// Kind of the resource.
pub const KIND: &str = "CertificateRequest";
/// Plural (REST resource) name.
pub const PLURAL: &str = "certificaterequests";
/// `apiVersion`: `GROUP/VERSION` (spelt out: it is written into every decoded
/// watch event's object, where formatting it each time showed in profiles).
const API_VERSION: &str = "cert-manager.io/v1";

/// A cert-manager.io/v1 `CertificateRequest`: one request to an issuer to
/// sign one CSR. Its spec is immutable once created; its status says whether
/// it was approved, denied, issued or failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateRequest {
    /// `apiVersion` and `kind`; set by [`CertificateRequest::new`].
    #[serde(flatten, default)]
    pub types: Option<TypeMeta>,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is requested.
    #[serde(default)]
    pub spec: CertificateRequestSpec,
    /// What cert-manager made of it; absent until a controller writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CertificateRequestStatus>,
}

impl CertificateRequest {
    /// A new request with `apiVersion`/`kind` filled in and no status.
    pub fn new(metadata: ObjectMeta, spec: CertificateRequestSpec) -> Self {
        Self {
            types: Some(TypeMeta {
                api_version: API_VERSION.to_owned(),
                kind: KIND.to_owned(),
            }),
            metadata,
            spec,
            status: None,
        }
    }

    /// The condition of type `kind` (e.g. `"Ready"`), if cert-manager set one.
    pub fn condition(&self, kind: &str) -> Option<&CertificateRequestCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == kind)
    }
}

/// `kube::Resource` for a type that is (a view of) cert-manager's
/// CertificateRequest: both the full type and the watch's slim one name the
/// same API resource.
macro_rules! certificate_request_resource {
    ($t:ty) => {
        impl kube::Resource for $t {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(KIND)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(GROUP)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(VERSION)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(PLURAL)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

certificate_request_resource!(CertificateRequest);

/// The form the node-wide watch decodes: a [`CertificateRequest`] without
/// the parts the driver never reads. `spec.request` (the CSR, up to the API
/// server's object size limit) and the creator's groups, uid and extra
/// fields are skipped while decoding (its user name is kept, to tell who
/// made a request), so a large request costs a
/// transient line buffer and nothing more. Of `metadata`, what the cache
/// keeps of an object (see `cache::slim`) is all that is decoded: no managed
/// fields, finalizers or `generateName`, and of the labels and annotations
/// only the driver's own. Converted into a [`CertificateRequest`] (with an
/// empty `spec.request`) for the cache.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WatchedRequest {
    #[serde(default, deserialize_with = "watched_metadata")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: WatchedSpec,
    #[serde(default)]
    status: Option<CertificateRequestStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedSpec {
    #[serde(default)]
    issuer_ref: IssuerRef,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default, rename = "isCA")]
    is_ca: bool,
    #[serde(default)]
    usages: Vec<String>,
    #[serde(default)]
    username: Option<String>,
}

impl From<WatchedRequest> for CertificateRequest {
    fn from(w: WatchedRequest) -> Self {
        let WatchedSpec {
            issuer_ref,
            duration,
            is_ca,
            usages,
            username,
        } = w.spec;
        CertificateRequest {
            types: Some(TypeMeta {
                api_version: API_VERSION.to_owned(),
                kind: KIND.to_owned(),
            }),
            metadata: w.metadata,
            spec: CertificateRequestSpec {
                issuer_ref,
                duration,
                is_ca,
                usages,
                username,
                ..Default::default()
            },
            status: w.status,
        }
    }
}

certificate_request_resource!(WatchedRequest);

/// The fields of a watched request's `metadata` that are decoded.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedMetadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(default, deserialize_with = "kept_labels")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "kept_annotations")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    owner_references: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
}

fn watched_metadata<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let Some(m) = Option::<WatchedMetadata>::deserialize(d)? else {
        return Ok(ObjectMeta::default());
    };
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        generation: m.generation,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        labels: m.labels,
        annotations: m.annotations,
        owner_references: m.owner_references,
        ..Default::default()
    })
}

fn kept_labels<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    d.deserialize_option(kept::Entries(&[
        crate::LABEL_NODE_ID_HASH,
        crate::LABEL_VOLUME_ID_HASH,
    ]))
}

fn kept_annotations<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    d.deserialize_option(kept::Entries(&[crate::ANNOTATION_VOLUME_ID]))
}

/// A string map decoded keeping only some keys: the others' values are
/// skipped unread, and no key is allocated to be compared.
mod kept {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    /// Decodes `null` or a map into the entries whose key is listed.
    pub(super) struct Entries(pub(super) &'static [&'static str]);

    impl<'de> Visitor<'de> for Entries {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of strings or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key_seed(Key(self.0))? {
                match key {
                    Some(k) => {
                        kept.insert(k.to_owned(), map.next_value::<String>()?);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(Some(kept))
        }
    }

    /// A map key: which of the listed keys it is, if any.
    struct Key(&'static [&'static str]);

    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Option<&'static str>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Key {
        type Value = Option<&'static str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string key")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(self.0.iter().copied().find(|k| *k == v))
        }
    }
}

/// The `spec` of a [`CertificateRequest`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// The PEM `CERTIFICATE REQUEST` (base64 in JSON, as Go's `[]byte`).
    #[serde(with = "base64_bytes", default)]
    pub request: Vec<u8>,
    /// The issuer to ask.
    pub issuer_ref: IssuerRef,
    /// Requested lifetime as a Go duration string (`2160h0m0s`); see [`go_duration`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Request a CA certificate.
    #[serde(default, skip_serializing_if = "is_false", rename = "isCA")]
    pub is_ca: bool,
    /// Key usages by cert-manager name (`digital signature`, `server auth`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    /// Set by cert-manager from the creating identity; never set by clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Set by cert-manager from the creating identity; never set by clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by cert-manager from the creating identity; never set by clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Set by cert-manager from the creating identity; never set by clients.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A reference to the issuer that should sign a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IssuerRef {
    /// Name of the issuer.
    pub name: String,
    /// Kind (`Issuer`, `ClusterIssuer`, or an external issuer's kind); cert-manager defaults it to `Issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// API group; cert-manager defaults it to `cert-manager.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The `status` of a [`CertificateRequest`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    /// `Ready`, `Approved`, `Denied`, `InvalidRequest` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertificateRequestCondition>,
    /// PEM chain, leaf first (base64 in JSON).
    #[serde(
        with = "base64_opt_bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate: Option<Vec<u8>>,
    /// PEM CA certificate(s), possibly empty (base64 in JSON).
    #[serde(
        with = "base64_opt_bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ca: Option<Vec<u8>>,
    /// When the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_time: Option<Time>,
}

/// One status condition of a [`CertificateRequest`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestCondition {
    /// `Ready`, `Approved`, `Denied` or `InvalidRequest`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason (`Issued`, `Pending`, `Failed`, `Denied`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl CertificateRequestCondition {
    /// Whether `status` is `True`.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
    /// Whether `status` is `False`.
    pub fn is_false(&self) -> bool {
        self.status == "False"
    }
}

/// Formats a duration as Go's `time.Duration.String()` does (`2160h0m0s`,
/// `1m30s`, `1.5s`, `250ms`), the form cert-manager's `spec.duration` holds.
/// The one implementation lives in `cmcsi-attrs`, which owns the format.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(cmcsi_issuer_client::go_duration(Duration::from_secs(90 * 86400)), "2160h0m0s");
/// ```
pub use cmcsi_attrs::format_go_duration as go_duration;

/// serde for Go `[]byte` fields: standard base64 strings.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// serde for optional Go `[]byte` fields.
mod base64_opt_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => STANDARD
                .decode(s.as_bytes())
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use std::time::Duration;

    /// A watched request's metadata keeps what the cache keeps, and nothing a
    /// tenant adds besides.
    #[test]
    fn watched_metadata_keeps_only_the_drivers_own() {
        let w: WatchedRequest = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "r", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "2025-01-02T03:04:05Z",
                "generateName": "r-", "finalizers": ["f"],
                "labels": {
                    crate::LABEL_NODE_ID_HASH: "node", crate::LABEL_VOLUME_ID_HASH: "vol",
                    "other": "x"
                },
                "annotations": {crate::ANNOTATION_VOLUME_ID: "csi-1", "big": {"not": "a string"}},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pu"}],
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {"request": "Y3Ny", "issuerRef": {"name": "ca"}}
        }))
        .unwrap();
        let cr = CertificateRequest::from(w);
        let m = &cr.metadata;
        assert_eq!(
            (m.name.as_deref(), m.namespace.as_deref(), m.uid.as_deref()),
            (Some("r"), Some("ns"), Some("u"))
        );
        assert_eq!(m.resource_version.as_deref(), Some("7"));
        assert_eq!(m.generation, Some(2));
        assert!(m.creation_timestamp.is_some());
        assert!(m.generate_name.is_none() && m.finalizers.is_none() && m.managed_fields.is_none());
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[crate::LABEL_VOLUME_ID_HASH], "vol");
        assert_eq!(
            m.annotations
                .as_ref()
                .unwrap()
                .get(crate::ANNOTATION_VOLUME_ID)
                .map(String::as_str),
            Some("csi-1")
        );
        assert_eq!(m.annotations.as_ref().unwrap().len(), 1);
        assert_eq!(m.owner_references.as_ref().unwrap()[0].uid, "pu");
        assert!(cr.spec.request.is_empty());

        let bare: WatchedRequest =
            serde_json::from_value(serde_json::json!({"metadata": {"labels": null}})).unwrap();
        assert!(CertificateRequest::from(bare).metadata.labels.is_none());
    }

    #[test]
    fn api_version_is_group_and_version() {
        assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
    }

    #[test]
    fn go_duration_matches_go_formatting() {
        let cases = [
            (Duration::from_secs(2160 * 3600), "2160h0m0s"),
            (Duration::from_secs(720 * 3600), "720h0m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3661), "1h1m1s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1200), "1.2µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::ZERO, "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn serialises_like_cert_manager_expects() {
        let cr = CertificateRequest::new(
            ObjectMeta {
                name: Some("r1".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            CertificateRequestSpec {
                request: b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec(),
                issuer_ref: IssuerRef {
                    name: "ca".into(),
                    kind: Some("Issuer".into()),
                    group: Some("cert-manager.io".into()),
                },
                duration: Some("2160h0m0s".into()),
                is_ca: true,
                usages: vec!["digital signature".into()],
                ..Default::default()
            },
        );
        let json = serde_json::to_value(&cr).unwrap();
        assert_eq!(json["apiVersion"], "cert-manager.io/v1");
        assert_eq!(json["kind"], "CertificateRequest");
        assert_eq!(
            json["spec"]["request"],
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"
        );
        assert_eq!(json["spec"]["issuerRef"]["name"], "ca");
        assert_eq!(json["spec"]["isCA"], true);
        assert_eq!(json["spec"]["duration"], "2160h0m0s");
        assert_eq!(json["spec"]["usages"][0], "digital signature");
        assert!(json["spec"].get("username").is_none());
        assert!(json.get("status").is_none());
        assert_eq!(
            CertificateRequest::url_path(&(), Some("ns")),
            "/apis/cert-manager.io/v1/namespaces/ns/certificaterequests"
        );
    }

    #[test]
    fn deserialises_status_from_cert_manager() {
        let json = serde_json::json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"name": "r1", "namespace": "ns", "uid": "u1"},
            "spec": {
                "request": "Y3Ny",
                "issuerRef": {"name": "ca"},
                "username": "system:serviceaccount:ns:sa",
                "groups": ["system:serviceaccounts"],
                "extra": {"k": ["v"]}
            },
            "status": {
                "conditions": [
                    {"type": "Approved", "status": "True", "reason": "cert-manager.io"},
                    {"type": "Ready", "status": "True", "reason": "Issued",
                     "lastTransitionTime": "2026-01-02T03:04:05Z"}
                ],
                "certificate": "Y2VydA==",
                "ca": ""
            }
        });
        let cr: CertificateRequest = serde_json::from_value(json).unwrap();
        assert_eq!(cr.spec.request, b"csr");
        assert_eq!(
            cr.spec.username.as_deref(),
            Some("system:serviceaccount:ns:sa")
        );
        let status = cr.status.as_ref().unwrap();
        assert_eq!(status.certificate.as_deref(), Some(&b"cert"[..]));
        assert_eq!(status.ca.as_deref(), Some(&b""[..]));
        assert!(cr.condition("Ready").unwrap().is_true());
        assert!(cr.condition("Denied").is_none());
    }
}
