//! Key usages, lifetime (duration, renew-before) and the key.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Parser<'_> {
    pub(super) fn usages(&mut self) -> Vec<KeyUsage> {
        let Some(value) = self.get(keys::KEY_USAGES) else {
            return KeyUsage::DEFAULT.to_vec();
        };
        let accepted = || {
            let names: Vec<&str> = KeyUsage::ALL.iter().map(|u| u.as_str()).collect();
            format!(
                "accepted: comma-separated cert-manager usages: {}",
                names.join(", ")
            )
        };
        let entries = split_plain(value);
        if entries.is_empty() {
            self.invalid(keys::KEY_USAGES, value, "lists no usage", accepted());
            return Vec::new();
        }
        let mut out: Vec<KeyUsage> = Vec::new();
        for e in &entries {
            match e.parse::<KeyUsage>() {
                Ok(u) => {
                    if !out.contains(&u) {
                        out.push(u);
                    }
                }
                Err(_) => {
                    let problem = match nearest_usage(e) {
                        Some(n) => format!("not a cert-manager key usage (did you mean {n:?}?)"),
                        None => "not a cert-manager key usage".to_owned(),
                    };
                    self.invalid(keys::KEY_USAGES, e, problem, accepted());
                }
            }
        }
        out
    }

    pub(super) fn go_duration(&mut self, key: &str) -> Option<Duration> {
        let value = self.get(key)?;
        const ACCEPTED: &str = "accepted: a positive Go duration such as 720h, 1h30m, 90m, 1.5h or 45s (units h, m, s, ms, us, ns; there is no d: write 24h per day)";
        match parse_go_duration(value) {
            Ok(d) if d.is_zero() => {
                self.invalid(key, value, "must be longer than zero", ACCEPTED);
                None
            }
            Ok(d) => Some(d),
            Err(DurationError::Negative) => {
                self.invalid(key, value, "must not be negative", ACCEPTED);
                None
            }
            Err(e) => {
                self.invalid(key, value, format!("not a Go duration: {e}"), ACCEPTED);
                None
            }
        }
    }

    /// `None` when given but invalid (already reported).
    pub(super) fn duration(&mut self) -> Option<Duration> {
        if self.get(keys::DURATION).is_none() {
            return Some(self.opts.duration);
        }
        self.go_duration(keys::DURATION)
    }

    pub(super) fn renew_before(&mut self, duration: Option<Duration>) -> Option<Duration> {
        let rb = self.go_duration(keys::RENEW_BEFORE)?;
        let duration = duration?;
        if rb >= duration {
            let why = format!(
                "renew-before ({}) must be shorter than the duration ({}): the certificate would be due for renewal as soon as it is issued",
                crate::format_go_duration(rb),
                crate::format_go_duration(duration)
            );
            if self.opts.tolerate_long_renew_before {
                self.warnings.push(format!(
                    "ignored {}: {why}; renewing at two thirds of the lifetime instead",
                    keys::RENEW_BEFORE
                ));
            } else {
                self.conflict(
                    keys::RENEW_BEFORE,
                    format!("{why}; shorten it, lengthen {}, or remove it to renew at two thirds of the lifetime", keys::DURATION),
                );
            }
            return None;
        }
        Some(rb)
    }

    pub(super) fn key(&mut self) -> KeySpec {
        #[derive(Clone, Copy, PartialEq)]
        enum Alg {
            Rsa,
            Ecdsa,
            Ed25519,
        }
        let alg = match self.get(keys::KEY_ALGORITHM) {
            None => Some(Alg::Rsa),
            Some(v) if v.eq_ignore_ascii_case("rsa") => Some(Alg::Rsa),
            Some(v) if v.eq_ignore_ascii_case("ecdsa") => Some(Alg::Ecdsa),
            Some(v) if v.eq_ignore_ascii_case("ed25519") => Some(Alg::Ed25519),
            Some(v) => {
                self.invalid(
                    keys::KEY_ALGORITHM,
                    v,
                    "not a supported key algorithm",
                    "accepted: RSA (the default), ECDSA or Ed25519, in any case",
                );
                None
            }
        };
        let size = self.get(keys::KEY_SIZE);
        let algorithm = match alg {
            None | Some(Alg::Rsa) => {
                let bits = match size {
                    None => 2048,
                    Some(s) => match s.parse::<u16>() {
                        Ok(b)
                            if s.bytes().all(|c| c.is_ascii_digit())
                                && (2048..=8192).contains(&b) =>
                        {
                            b
                        }
                        _ if alg.is_none() => 2048,
                        _ => {
                            self.invalid(
                                keys::KEY_SIZE,
                                s,
                                "not a valid RSA key size",
                                "accepted for RSA: a number of bits from 2048 to 8192 (default 2048)",
                            );
                            2048
                        }
                    },
                };
                KeyAlgorithm::Rsa { bits }
            }
            Some(Alg::Ecdsa) => KeyAlgorithm::Ecdsa(match size {
                None | Some("256") => EcdsaCurve::P256,
                Some("384") => EcdsaCurve::P384,
                Some("521") => EcdsaCurve::P521,
                Some(s) => {
                    self.invalid(
                        keys::KEY_SIZE,
                        s,
                        "not an ECDSA curve size",
                        "accepted for ECDSA: 256 (the default), 384 or 521",
                    );
                    EcdsaCurve::P256
                }
            }),
            Some(Alg::Ed25519) => {
                if let Some(s) = size {
                    self.invalid(
                        keys::KEY_SIZE,
                        s,
                        "Ed25519 keys have a fixed size",
                        "remove key-size when key-algorithm is Ed25519",
                    );
                }
                KeyAlgorithm::Ed25519
            }
        };
        let default_encoding = if matches!(algorithm, KeyAlgorithm::Rsa { .. }) {
            KeyEncoding::Pkcs1
        } else {
            KeyEncoding::Pkcs8
        };
        let encoding = match self.get(keys::KEY_ENCODING) {
            None => default_encoding,
            Some(v) if v.eq_ignore_ascii_case("pkcs8") => KeyEncoding::Pkcs8,
            Some(v) if v.eq_ignore_ascii_case("pkcs1") => {
                if alg.is_some() && !matches!(algorithm, KeyAlgorithm::Rsa { .. }) {
                    self.conflict(
                        keys::KEY_ENCODING,
                        format!(
                            "PKCS1 can only encode RSA keys, and key-algorithm is {}; use PKCS8 or remove key-encoding",
                            algorithm.as_str()
                        ),
                    );
                    KeyEncoding::Pkcs8
                } else {
                    KeyEncoding::Pkcs1
                }
            }
            Some(v) => {
                self.invalid(
                    keys::KEY_ENCODING,
                    v,
                    "not a key encoding",
                    "accepted: PKCS1 (RSA only; the default for RSA) or PKCS8 (the default otherwise)",
                );
                default_encoding
            }
        };
        KeySpec {
            algorithm,
            encoding,
        }
    }
}
