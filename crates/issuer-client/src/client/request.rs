//! A [`NewRequest`] checked and turned into the `CertificateRequest` object
//! to create: labels, annotations, the Pod as owner, and a generated name.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::NewRequest;
use crate::error::IssueError;
use crate::types::{CertificateRequest, CertificateRequestSpec, go_duration};
use crate::{ANNOTATION_VOLUME_ID, LABEL_NODE_ID_HASH, LABEL_VOLUME_ID_HASH, label_hash};

/// The object to create for `request`: labelled with the node's and the
/// volume's hashes, annotated with the full volume id, owned by the Pod,
/// named by the caller or by [`generate_name`].
pub(super) fn certificate_request(
    request: NewRequest,
    node_hash: &str,
) -> Result<CertificateRequest, IssueError> {
    let NewRequest {
        name,
        namespace,
        csr_pem,
        issuer_ref,
        duration,
        is_ca,
        usages,
        mut annotations,
        volume_id,
        pod,
    } = request;
    let labels = BTreeMap::from([
        (LABEL_NODE_ID_HASH.to_owned(), node_hash.to_owned()),
        (LABEL_VOLUME_ID_HASH.to_owned(), label_hash(&volume_id)),
    ]);
    annotations.insert(ANNOTATION_VOLUME_ID.to_owned(), volume_id);
    let metadata = ObjectMeta {
        name: Some(match name {
            Some(n) => n,
            None => generate_name(&pod.name)?,
        }),
        namespace: Some(namespace),
        labels: Some(labels),
        annotations: Some(annotations),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.name,
            uid: pod.uid,
            ..Default::default()
        }]),
        ..Default::default()
    };
    let spec = CertificateRequestSpec {
        request: csr_pem,
        issuer_ref,
        duration: duration.map(go_duration),
        is_ca,
        usages,
        ..Default::default()
    };
    Ok(CertificateRequest::new(metadata, spec))
}

/// Checks the fields every request needs, naming every missing one at once.
pub(super) fn validate(r: &NewRequest) -> Result<(), IssueError> {
    let mut problems = Vec::new();
    if r.namespace.is_empty() {
        problems.push("namespace is empty");
    }
    if r.volume_id.is_empty() {
        problems.push("volume id is empty");
    }
    if r.pod.name.is_empty() || r.pod.uid.is_empty() {
        problems.push("pod name and uid are required (for the owner reference)");
    }
    if r.issuer_ref.name.is_empty() {
        problems.push("issuer name is empty");
    }
    if r.csr_pem.is_empty() {
        problems.push("CSR is empty");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(IssueError::InvalidInput(problems.join("; ")))
    }
}

/// A fresh request name for a Pod: `<pod name, up to 52 chars>-<10 random
/// characters>`, readable in `kubectl get`.
pub fn generate_name(pod_name: &str) -> Result<String, IssueError> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut random = [0u8; 10];
    getrandom::fill(&mut random)
        .map_err(|e| IssueError::InvalidInput(format!("no randomness for a name: {e}")))?;
    let suffix: String = random
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let prefix: String = pod_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .map(|c| c.to_ascii_lowercase())
        .take(52)
        .collect();
    let prefix = prefix.trim_matches(|c: char| c == '-' || c == '.');
    Ok(if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}-{suffix}")
    })
}
