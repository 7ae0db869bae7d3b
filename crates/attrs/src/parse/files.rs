//! File names, the PKCS#12 and JKS keystores, the credential bundle and the
//! file group.

#[allow(clippy::wildcard_imports)]
use super::*;

const DEFAULT_PKCS12_FILENAME: &str = "keystore.p12";
const DEFAULT_JKS_FILENAME: &str = "keystore.jks";
const DEFAULT_JKS_TRUSTSTORE_FILENAME: &str = "truststore.jks";
const DEFAULT_JKS_ALIAS: &str = "certificate";
/// The JKS aliases of the CA's trusted-certificate entries are `ca`, `ca-2`, ...
const JKS_CA_ALIAS: &str = "ca";

/// The attributes of one keystore kind, for the checks PKCS#12 and JKS share.
struct KeystoreKeys {
    what: &'static str,
    enable: &'static str,
    password: &'static str,
    secret_key: &'static str,
    /// Every attribute only used when enabled.
    dependent: &'static [&'static str],
}

const PKCS12_KEYS: KeystoreKeys = KeystoreKeys {
    what: "PKCS#12 keystore",
    enable: keys::PKCS12_ENABLE,
    password: keys::PKCS12_PASSWORD,
    secret_key: keys::PKCS12_PASSWORD_SECRET_KEY,
    dependent: &[
        keys::PKCS12_FILENAME,
        keys::PKCS12_PASSWORD,
        keys::PKCS12_PASSWORD_SECRET_KEY,
        keys::PKCS12_PROFILE,
        keys::PKCS12_TRUSTSTORE_FILENAME,
    ],
};

const JKS_KEYS: KeystoreKeys = KeystoreKeys {
    what: "JKS keystore",
    enable: keys::JKS_ENABLE,
    password: keys::JKS_PASSWORD,
    secret_key: keys::JKS_PASSWORD_SECRET_KEY,
    dependent: &[
        keys::JKS_FILENAME,
        keys::JKS_PASSWORD,
        keys::JKS_PASSWORD_SECRET_KEY,
        keys::JKS_ALIAS,
        keys::JKS_TRUSTSTORE_FILENAME,
    ],
};

impl Parser<'_> {
    pub(super) fn file(&mut self, key: &'static str, default: &str) -> (String, bool) {
        let name = self.get(key).unwrap_or(default);
        let ok = match validate::file_path(name) {
            Ok(()) => self.file_path_within_limits(key, name),
            Err(problem) => {
                self.invalid(
                    key,
                    name,
                    problem,
                    "accepted: a relative path inside the volume, such as tls.crt or certs/tls.crt",
                );
                false
            }
        };
        (name.to_owned(), ok && !self.too_large.contains(key))
    }

    /// Checks `name`'s depth and length against the options' limits.
    fn file_path_within_limits(&mut self, key: &str, name: &str) -> bool {
        let depth = name.split('/').count();
        let (max_depth, max_bytes) = (self.opts.max_file_path_depth, self.opts.max_file_path_bytes);
        let mut ok = true;
        if depth > max_depth {
            self.too_large(
                key,
                format!(
                    "the file name has {depth} path components; at most {max_depth} are allowed (the node's --max-file-name-depth limit): use a shallower path"
                ),
            );
            ok = false;
        }
        if name.len() > max_bytes {
            self.too_large(
                key,
                format!(
                    "the file name is {} bytes; at most {max_bytes} are allowed (the node's --max-file-name-bytes limit): use a shorter path",
                    name.len()
                ),
            );
            ok = false;
        }
        ok
    }

    pub(super) fn files(&mut self) -> Files {
        let (certificate, cert_ok) =
            self.file(keys::CERTIFICATE_FILE, &self.opts.certificate_file.clone());
        let (private_key, key_ok) =
            self.file(keys::PRIVATE_KEY_FILE, &self.opts.private_key_file.clone());
        let (ca, ca_ok) = self.file(keys::CA_FILE, &self.opts.ca_file.clone());
        let mut checked: Vec<(&'static str, String)> = Vec::new();
        for (key, name, ok) in [
            (keys::CERTIFICATE_FILE, &certificate, cert_ok),
            (keys::PRIVATE_KEY_FILE, &private_key, key_ok),
            (keys::CA_FILE, &ca, ca_ok),
        ] {
            if ok {
                checked.push((key, name.clone()));
            }
        }
        let pkcs12 = self.pkcs12(&mut checked);
        let jks = self.jks(&mut checked);
        let credential_bundle = match self.get(keys::CREDENTIAL_BUNDLE_FILE) {
            Some(_) => {
                let (name, ok) = self.file(keys::CREDENTIAL_BUNDLE_FILE, "");
                if ok {
                    checked.push((keys::CREDENTIAL_BUNDLE_FILE, name.clone()));
                }
                Some(name)
            }
            None => None,
        };
        // Pairwise distinct, and none the directory of another.
        for i in 0..checked.len() {
            for j in 0..i {
                let (ka, a) = &checked[j];
                let (kb, b) = &checked[i];
                if a == b {
                    self.conflict(
                        kb,
                        format!("{b:?} is also the file name of {ka}; give each file its own name"),
                    );
                } else if b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/")) {
                    self.conflict(
                        kb,
                        format!(
                            "{b:?} and {ka}'s {a:?} would need the same path as both a file and a directory"
                        ),
                    );
                }
            }
        }
        Files {
            certificate,
            private_key,
            ca,
            pkcs12,
            jks,
            credential_bundle,
        }
    }

    /// `Some(true)` when the keystore is enabled, `Some(false)` when disabled or the
    /// switch is invalid (reported), `None` when absent; reports or warns about
    /// dependent attributes given without it.
    fn keystore_enabled(&mut self, k: &KeystoreKeys) -> bool {
        let enable = self.get(k.enable);
        let enabled = match enable {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => {
                self.invalid(
                    k.enable,
                    v,
                    "not a boolean",
                    "accepted: \"true\" or \"false\"",
                );
                Some(false)
            }
        };
        match enabled {
            None => {
                for &key in k.dependent {
                    if self.attrs.contains_key(key) {
                        self.conflict(
                            key,
                            format!(
                                "only used with {}: \"true\"; set that to write a {}, or remove this attribute",
                                k.enable, k.what
                            ),
                        );
                    }
                }
                false
            }
            Some(false) => {
                for &key in k.dependent {
                    if self.attrs.contains_key(key)
                        && enable.is_some_and(|v| v.eq_ignore_ascii_case("false"))
                    {
                        self.warnings
                            .push(format!("ignored {key}: {} is \"false\"", k.enable));
                    }
                }
                false
            }
            Some(true) => true,
        }
    }

    /// The keystore's password, inline or from the volume's Secret.
    fn keystore_password(&mut self, k: &KeystoreKeys) -> (Password, PasswordSource) {
        let inline = self.get(k.password);
        let secret_key = self.get(k.secret_key);
        let empty = || (Password::new(String::new()), PasswordSource::Inline);
        match (inline, secret_key) {
            (Some(_), Some(_)) => {
                self.conflict(
                    k.secret_key,
                    format!(
                        "{} is also set; give the password once, either inline in {} or from the volume's Secret with {}, and remove the other",
                        k.password, k.password, k.secret_key
                    ),
                );
                empty()
            }
            (Some(p), None) => {
                if let Err(problem) = validate::password(p, self.opts.max_password_bytes) {
                    // Never quote the value: it is a secret.
                    self.conflict(
                        k.password,
                        format!("{problem}; give a password of printable text"),
                    );
                    return empty();
                }
                (Password::new(p), PasswordSource::Inline)
            }
            (None, Some(name)) => {
                if let Err(problem) = validate::secret_data_key(name) {
                    self.invalid(
                        k.secret_key,
                        name,
                        problem,
                        "accepted: a key of the Secret's data: letters, digits, '-', '_' and '.', at most 253 bytes",
                    );
                    return empty();
                }
                match self.secrets.get(name) {
                    Some(p)
                        if !p.is_empty()
                            && validate::password(p, self.opts.max_password_bytes).is_err() =>
                    {
                        let problem = validate::password(p, self.opts.max_password_bytes)
                            .err()
                            .unwrap_or_default();
                        // Never quote the value: it is a secret.
                        self.conflict(
                            k.secret_key,
                            format!(
                                "the value of key {name:?} of the volume's Secret is not a usable {} password: {problem}; put a password of printable text there",
                                k.what
                            ),
                        );
                        empty()
                    }
                    Some(p) if !p.is_empty() => (
                        Password::new(*p),
                        PasswordSource::Secret {
                            key: name.to_owned(),
                        },
                    ),
                    Some(_) => {
                        self.conflict(
                            k.secret_key,
                            format!(
                                "the volume's Secret has the key {name:?} but its value is empty; put the {} password there",
                                k.what
                            ),
                        );
                        empty()
                    }
                    None => {
                        let hint = if self.secrets.is_empty() {
                            "no Secret data reached the driver: set the volume's nodePublishSecretRef to a Secret in the Pod's namespace".to_owned()
                        } else {
                            let mut names: Vec<&str> =
                                self.secrets.keys().copied().take(10).collect();
                            names.sort_unstable();
                            format!("its keys are {}", names.join(", "))
                        };
                        self.conflict(
                            k.secret_key,
                            format!(
                                "the volume's nodePublishSecretRef Secret has no key {name:?} ({hint}); add the key or name one it has"
                            ),
                        );
                        empty()
                    }
                }
            }
            (None, None) => {
                if !self.too_large.contains(k.password) && !self.too_large.contains(k.secret_key) {
                    self.errors.push(AttributeError::Required {
                        attribute: k.password.to_owned(),
                        hint: format!(
                            "{} is \"true\", and the keystore needs a non-empty password; give it here or name a key of the volume's nodePublishSecretRef Secret in {}",
                            k.enable, k.secret_key
                        ),
                    });
                }
                empty()
            }
        }
    }

    fn pkcs12(&mut self, checked: &mut Vec<(&'static str, String)>) -> Option<Pkcs12> {
        if !self.keystore_enabled(&PKCS12_KEYS) {
            return None;
        }
        let (filename, ok) = self.file(keys::PKCS12_FILENAME, DEFAULT_PKCS12_FILENAME);
        if ok {
            checked.push((keys::PKCS12_FILENAME, filename.clone()));
        }
        let (password, password_source) = self.keystore_password(&PKCS12_KEYS);
        let profile = match self.get(keys::PKCS12_PROFILE) {
            None => self.opts.pkcs12_profile,
            Some(v) => match Pkcs12Profile::ALL
                .iter()
                .find(|p| p.as_str().eq_ignore_ascii_case(v))
            {
                Some(p) => *p,
                None => {
                    let names: Vec<&str> = Pkcs12Profile::ALL.iter().map(|p| p.as_str()).collect();
                    self.invalid(
                        keys::PKCS12_PROFILE,
                        v,
                        "not a PKCS#12 profile",
                        format!(
                            "accepted: {} (default {}); LegacyRC2 and LegacyDES are for old Java (before 8u301/11.0.12)",
                            names.join(", "),
                            self.opts.pkcs12_profile.as_str()
                        ),
                    );
                    self.opts.pkcs12_profile
                }
            },
        };
        let truststore_filename = match self.get(keys::PKCS12_TRUSTSTORE_FILENAME) {
            Some(_) => {
                let (name, ok) = self.file(keys::PKCS12_TRUSTSTORE_FILENAME, "");
                if ok {
                    checked.push((keys::PKCS12_TRUSTSTORE_FILENAME, name.clone()));
                }
                Some(name)
            }
            None => None,
        };
        Some(Pkcs12 {
            filename,
            password,
            password_source,
            profile,
            truststore_filename,
        })
    }

    fn jks(&mut self, checked: &mut Vec<(&'static str, String)>) -> Option<Jks> {
        if !self.keystore_enabled(&JKS_KEYS) {
            return None;
        }
        let (filename, ok) = self.file(keys::JKS_FILENAME, DEFAULT_JKS_FILENAME);
        if ok {
            checked.push((keys::JKS_FILENAME, filename.clone()));
        }
        let (truststore_filename, ok) = self.file(
            keys::JKS_TRUSTSTORE_FILENAME,
            DEFAULT_JKS_TRUSTSTORE_FILENAME,
        );
        if ok {
            checked.push((keys::JKS_TRUSTSTORE_FILENAME, truststore_filename.clone()));
        }
        let (password, password_source) = self.keystore_password(&JKS_KEYS);
        let alias = self.get(keys::JKS_ALIAS).unwrap_or(DEFAULT_JKS_ALIAS);
        const ACCEPTED: &str = "accepted: printable text other than ca and ca-<n>, which name the CA's entries (default certificate); Java reads aliases in lower case";
        let lower = alias.to_lowercase();
        if alias.chars().any(char::is_control) {
            self.invalid(
                keys::JKS_ALIAS,
                alias,
                "contains control characters",
                ACCEPTED,
            );
        } else if lower == JKS_CA_ALIAS
            || lower
                .strip_prefix("ca-")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            self.invalid(
                keys::JKS_ALIAS,
                alias,
                "is the alias of the CA's trusted-certificate entry",
                ACCEPTED,
            );
        }
        Some(Jks {
            filename,
            password,
            password_source,
            alias: alias.to_owned(),
            truststore_filename,
        })
    }

    pub(super) fn fs_group(&mut self) -> Option<u32> {
        let v = self.get(keys::FS_GROUP)?;
        match v.parse::<u32>() {
            Ok(g) if g > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Some(g),
            _ => {
                self.invalid(
                    keys::FS_GROUP,
                    v,
                    "not a group ID",
                    "accepted: a whole number from 1 to 4294967295",
                );
                None
            }
        }
    }
}
