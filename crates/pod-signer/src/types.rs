//! The Kubernetes objects the signer reads and writes, with only the fields
//! signing needs (k8s-openapi 0.29 has no `PodCertificateRequest` or `v1`
//! `ClusterTrustBundle` types).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, NamespaceResourceScope};
use serde::Deserialize;

/// The API group of PodCertificateRequests and ClusterTrustBundles.
pub const CERTIFICATES_GROUP: &str = "certificates.k8s.io";

/// A `PodCertificateRequest`, as much of it as the signer reads. Everything
/// else (in `metadata` too: labels, annotations, `managedFields`, ...) is
/// skipped when decoding, so the signer neither allocates nor keeps more of an
/// object than this.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodCertificateRequest {
    /// Metadata: name, namespace, uid, generation and resourceVersion only.
    #[serde(default, deserialize_with = "slim_metadata")]
    pub metadata: ObjectMeta,
    /// What the kubelet asked for.
    #[serde(default)]
    pub spec: PodCertificateRequestSpec,
    /// The outcome, when there is one.
    #[serde(default)]
    pub status: Option<PodCertificateRequestStatus>,
}

/// The fields of `metadata` the signer reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMetadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    resource_version: Option<String>,
}

fn slim_metadata<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<SlimMetadata>::deserialize(d)?;
    Ok(m.map(|m| ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        generation: m.generation,
        resource_version: m.resource_version,
        ..Default::default()
    })
    .unwrap_or_default())
}

/// `spec` of a [`PodCertificateRequest`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodCertificateRequestSpec {
    /// The signer asked for.
    pub signer_name: String,
    /// The Pod's name.
    pub pod_name: String,
    /// The Pod's uid.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// The Pod's ServiceAccount.
    pub service_account_name: String,
    /// The Pod's node.
    pub node_name: String,
    /// The longest lifetime the certificate may have.
    pub max_expiration_seconds: Option<i64>,
    /// The PKCS#10 request (DER), signed with the Pod's key.
    #[serde(rename = "stubPKCS10Request")]
    pub stub_pkcs10_request: Option<k8s_openapi::ByteString>,
}

/// `status` of a [`PodCertificateRequest`]: only whether it has an outcome.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodCertificateRequestStatus {
    /// `Issued`, `Denied`, `Failed`, `SuggestedKeyType`.
    pub conditions: Vec<Condition>,
    /// Whether an issued chain is there (its text is skipped, not kept: up to
    /// 100 KiB on every issued request the watch shows).
    #[serde(deserialize_with = "present")]
    pub certificate_chain: bool,
}

/// Whether a field is there and not null, without keeping its value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<serde::de::IgnoredAny>::deserialize(d)?.is_some())
}

/// A condition (`metav1.Condition`): its type and status (reason and
/// message are skipped).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// The condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

impl PodCertificateRequest {
    /// Whether the request has an outcome (`Issued`, `Denied` or `Failed`,
    /// or a chain): the signer has nothing more to do with it.
    pub fn has_outcome(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.certificate_chain
                || s.conditions.iter().any(|c| {
                    c.status == "True" && matches!(c.type_.as_str(), "Issued" | "Denied" | "Failed")
                })
        })
    }
}

/// The `ApiResource` of PodCertificateRequests in `version` (`v1` or `v1beta1`).
pub fn pod_certificate_request_resource(version: &str) -> ApiResource {
    ApiResource {
        group: CERTIFICATES_GROUP.into(),
        version: version.into(),
        api_version: format!("{CERTIFICATES_GROUP}/{version}"),
        kind: "PodCertificateRequest".into(),
        plural: "podcertificaterequests".into(),
    }
}

/// The `ApiResource` of ClusterTrustBundles in `version` (`v1` or `v1beta1`).
pub fn cluster_trust_bundle_resource(version: &str) -> ApiResource {
    ApiResource {
        group: CERTIFICATES_GROUP.into(),
        version: version.into(),
        api_version: format!("{CERTIFICATES_GROUP}/{version}"),
        kind: "ClusterTrustBundle".into(),
        plural: "clustertrustbundles".into(),
    }
}

impl kube::Resource for PodCertificateRequest {
    type DynamicType = ApiResource;
    type Scope = NamespaceResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.kind)
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.group)
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.version)
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.api_version)
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.plural)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}
