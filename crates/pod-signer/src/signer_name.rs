//! Signer names → cert-manager issuer references, following cert-manager's
//! convention for Kubernetes CertificateSigningRequests.

use cmcsi_issuer_client::IssuerRef;

/// The signer-name domain of ClusterIssuers: `clusterissuers.cert-manager.io/<name>`.
pub const CLUSTER_ISSUERS: &str = "clusterissuers.cert-manager.io";
/// The signer-name domain of Issuers: `issuers.cert-manager.io/<namespace>.<name>`.
pub const ISSUERS: &str = "issuers.cert-manager.io";

/// What a signer name names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A ClusterIssuer.
    ClusterIssuer(String),
    /// A namespaced Issuer.
    Issuer {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// Whether `signer_name` is one of this signer's (either domain).
pub fn is_ours(signer_name: &str) -> bool {
    signer_name
        .split_once('/')
        .is_some_and(|(d, _)| d == CLUSTER_ISSUERS || d == ISSUERS)
}

impl Signer {
    /// Parses one of this signer's names; `Err` says what is wrong with it.
    pub fn parse(signer_name: &str) -> Result<Signer, String> {
        let (domain, rest) = signer_name
            .split_once('/')
            .ok_or_else(|| format!("{signer_name:?} has no '/'"))?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        match domain {
            CLUSTER_ISSUERS if valid(rest) => Ok(Signer::ClusterIssuer(rest.to_owned())),
            ISSUERS => match rest.split_once('.') {
                Some((ns, name)) if valid(ns) && valid(name) => Ok(Signer::Issuer {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                }),
                _ => Err(format!(
                    "{signer_name:?} does not name an Issuer: use {ISSUERS}/<namespace>.<issuer name>"
                )),
            },
            CLUSTER_ISSUERS => Err(format!(
                "{signer_name:?} does not name a ClusterIssuer: use {CLUSTER_ISSUERS}/<issuer name>"
            )),
            _ => Err(format!("{signer_name:?} is not a cert-manager signer name")),
        }
    }

    /// The `issuerRef` of the CertificateRequest.
    pub fn issuer_ref(&self) -> IssuerRef {
        match self {
            Signer::ClusterIssuer(name) => IssuerRef {
                name: name.clone(),
                kind: Some("ClusterIssuer".into()),
                group: Some("cert-manager.io".into()),
            },
            Signer::Issuer { name, .. } => IssuerRef {
                name: name.clone(),
                kind: Some("Issuer".into()),
                group: Some("cert-manager.io".into()),
            },
        }
    }
}

/// `--allowed-issuers`: which signer names may be used. Empty allows all.
/// Entries are signer names, or `clusterissuers.cert-manager.io/*` and
/// `issuers.cert-manager.io/*` for every issuer of a kind, or
/// `issuers.cert-manager.io/<namespace>.*` for every Issuer of a namespace.
#[derive(Clone, Debug, Default)]
pub struct AllowedIssuers(Vec<String>);

impl AllowedIssuers {
    /// Checks and keeps the entries.
    pub fn new(entries: Vec<String>) -> Result<Self, String> {
        for e in &entries {
            let pattern = e.strip_suffix('*').unwrap_or(e);
            if !is_ours(e) || (pattern == e.as_str() && Signer::parse(e).is_err()) {
                return Err(format!(
                    "{e:?} is not a signer name of this signer: use {CLUSTER_ISSUERS}/<name>, \
                     {ISSUERS}/<namespace>.<name>, or end one with * (for instance {CLUSTER_ISSUERS}/*)"
                ));
            }
        }
        Ok(Self(entries))
    }

    /// Whether `signer_name` may be used.
    pub fn allows(&self, signer_name: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => signer_name.starts_with(prefix),
                None => e == signer_name,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            Signer::parse("clusterissuers.cert-manager.io/ca").unwrap(),
            Signer::ClusterIssuer("ca".into())
        );
        assert_eq!(
            Signer::parse("issuers.cert-manager.io/team-a.vault").unwrap(),
            Signer::Issuer {
                namespace: "team-a".into(),
                name: "vault".into()
            }
        );
        assert!(Signer::parse("issuers.cert-manager.io/noname").is_err());
        assert!(Signer::parse("clusterissuers.cert-manager.io/").is_err());
        assert!(is_ours("issuers.cert-manager.io/x.y"));
        assert!(!is_ours("example.com/x"));
    }

    #[test]
    fn allow_list() {
        let a = AllowedIssuers::new(vec![
            "clusterissuers.cert-manager.io/ca".into(),
            "issuers.cert-manager.io/team-a.*".into(),
        ])
        .unwrap();
        assert!(a.allows("clusterissuers.cert-manager.io/ca"));
        assert!(!a.allows("clusterissuers.cert-manager.io/other"));
        assert!(a.allows("issuers.cert-manager.io/team-a.x"));
        assert!(!a.allows("issuers.cert-manager.io/team-b.x"));
        assert!(AllowedIssuers::default().allows("anything"));
        assert!(AllowedIssuers::new(vec!["example.com/x".into()]).is_err());
    }
}
