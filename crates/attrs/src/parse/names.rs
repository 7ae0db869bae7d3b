//! Subject and subject alternative names.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Parser<'_> {
    pub(super) fn subject(&mut self) -> Subject {
        if self.get(keys::LITERAL_SUBJECT).is_some() {
            let overridden: Vec<&str> = std::iter::once(keys::COMMON_NAME)
                .chain(SUBJECT_LIST_KEYS.iter().copied())
                .chain(std::iter::once(keys::SERIAL_NUMBER))
                .filter(|k| self.get(k).is_some())
                .collect();
            for k in overridden {
                self.warnings.push(format!(
                    "ignored {k}: {} is set and overrides every other subject attribute",
                    keys::LITERAL_SUBJECT
                ));
            }
            let Some(text) = self.templated(keys::LITERAL_SUBJECT) else {
                return Subject::Literal(LiteralSubject {
                    text: String::new(),
                    rdns: Vec::new(),
                });
            };
            let rdns = match parse_dn(&text) {
                Ok(rdns) => rdns,
                Err(problem) => {
                    self.invalid(
                        keys::LITERAL_SUBJECT,
                        &text,
                        problem,
                        "accepted: an RFC 4514 string such as \"CN=web,OU=Shop,O=Acme\\, Inc,C=GB\"",
                    );
                    Vec::new()
                }
            };
            let count: usize = rdns.iter().map(Vec::len).sum();
            if count > limits::MAX_SUBJECT_ENTRIES {
                self.too_large(
                    keys::LITERAL_SUBJECT,
                    format!(
                        "{count} attributes; at most {} are allowed",
                        limits::MAX_SUBJECT_ENTRIES
                    ),
                );
            }
            return Subject::Literal(LiteralSubject { text, rdns });
        }
        let mut fields = SubjectFields::default();
        if let Some(cn) = self.templated(keys::COMMON_NAME) {
            if cn.chars().any(char::is_control) {
                self.invalid(
                    keys::COMMON_NAME,
                    &cn,
                    "contains control characters",
                    "accepted: printable text, e.g. ${POD_NAME}.${POD_NAMESPACE}",
                );
            }
            fields.common_name = Some(cn);
        }
        for &key in SUBJECT_LIST_KEYS {
            let values = self.subject_list(key);
            match key {
                keys::ORGANIZATIONS => fields.organizations = values,
                keys::ORGANIZATIONAL_UNITS => fields.organizational_units = values,
                keys::COUNTRIES => fields.countries = values,
                keys::PROVINCES => fields.provinces = values,
                keys::LOCALITIES => fields.localities = values,
                keys::STREET_ADDRESSES => fields.street_addresses = values,
                _ => fields.postal_codes = values,
            }
        }
        if let Some(sn) = self.get(keys::SERIAL_NUMBER) {
            if sn.chars().any(char::is_control) {
                self.invalid(
                    keys::SERIAL_NUMBER,
                    sn,
                    "contains control characters",
                    "accepted: printable text (not templated)",
                );
            }
            fields.serial_number = Some(sn.to_owned());
        }
        Subject::Fields(fields)
    }

    pub(super) fn subject_list(&mut self, key: &str) -> Vec<String> {
        let Some(value) = self.templated(key) else {
            return Vec::new();
        };
        const ACCEPTED: &str = "accepted: a comma-separated list; quote an entry that contains a comma (\"Acme, Inc\",Other) or escape the comma (Acme\\, Inc)";
        let entries = match split_escaped(&value) {
            Ok(e) => e,
            Err(problem) => {
                self.invalid(key, &value, problem, ACCEPTED);
                return Vec::new();
            }
        };
        if entries.len() > limits::MAX_SUBJECT_ENTRIES {
            self.too_large(
                key,
                format!(
                    "{} entries; at most {} are allowed",
                    entries.len(),
                    limits::MAX_SUBJECT_ENTRIES
                ),
            );
            return Vec::new();
        }
        for e in &entries {
            if e.chars().any(char::is_control) {
                self.invalid(key, e, "an entry contains control characters", ACCEPTED);
            } else if key == keys::COUNTRIES
                && !(e.len() == 2 && e.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                self.invalid(
                    key,
                    e,
                    "not a two-letter country code",
                    "accepted: ISO 3166 two-letter codes, comma-separated, e.g. GB,DE",
                );
            }
        }
        entries
    }

    pub(super) fn sans(&mut self) -> (Vec<String>, Vec<IpAddr>, Vec<String>) {
        let dns = self.san_list(keys::DNS_NAMES, true, |s| {
            validate::dns_san(s).map(|()| s.to_owned())
        }, "accepted: DNS names such as web.shop.svc.cluster.local or *.example.com, comma-separated");
        let ips = self.san_list(keys::IP_SANS, true, |s| {
            s.parse::<IpAddr>()
                .map_err(|_| "not an IP address".to_owned())
        }, "accepted: IPv4 or IPv6 addresses such as 192.0.2.1 or 2001:db8::1, comma-separated, or ${POD_IP} / ${POD_IPS}");
        let uris = self.san_list(keys::URI_SANS, true, |s| {
            validate::uri_san(s).map(|()| s.to_owned())
        }, "accepted: absolute URIs such as spiffe://cluster.local/ns/shop/sa/web, comma-separated");
        let total = dns.len() + ips.len() + uris.len();
        let max_sans = self.opts.max_sans.min(limits::MAX_SANS_TOTAL);
        if total > max_sans {
            self.too_large(
                keys::DNS_NAMES,
                format!(
                    "{total} SANs in dns-names, ip-sans and uri-sans together; at most {max_sans} are allowed (the node's --max-sans limit): split the names over several volumes"
                ),
            );
        }
        let any_given = [keys::DNS_NAMES, keys::IP_SANS, keys::URI_SANS]
            .iter()
            .any(|k| self.get(k).is_some() && !split_plain(self.get(k).unwrap_or("")).is_empty())
            || LIST_KEYS.iter().any(|k| self.too_large.contains(k));
        if self.opts.require_san && !any_given {
            self.errors.push(AttributeError::Required {
                attribute: keys::DNS_NAMES.to_owned(),
                hint: format!(
                    "at least one of {}, {} or {} must name the certificate's identity",
                    keys::DNS_NAMES,
                    keys::IP_SANS,
                    keys::URI_SANS
                ),
            });
        }
        (dns, ips, uris)
    }

    pub(super) fn san_list<T>(
        &mut self,
        key: &str,
        templated: bool,
        check: impl Fn(&str) -> Result<T, String>,
        accepted: &str,
    ) -> Vec<T> {
        let value = if templated {
            self.templated(key)
        } else {
            self.get(key).map(str::to_owned)
        };
        let Some(value) = value else {
            return Vec::new();
        };
        let entries = split_plain(&value);
        if entries.len() > limits::MAX_SANS_PER_KIND {
            self.too_large(
                key,
                format!(
                    "{} entries; at most {} are allowed",
                    entries.len(),
                    limits::MAX_SANS_PER_KIND
                ),
            );
            return Vec::new();
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            match check(e) {
                Ok(v) => out.push(v),
                Err(mut problem) => {
                    if !templated && e.contains('$') {
                        problem.push_str(" (variables are not expanded in this attribute)");
                    }
                    self.invalid(key, e, problem, accepted);
                }
            }
        }
        out
    }
}
