//! File names, the PKCS#12 keystore and the file group.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Parser<'_> {
    pub(super) fn file(&mut self, key: &'static str, default: &str) -> (String, bool) {
        let name = self.get(key).unwrap_or(default);
        let ok = match validate::file_path(name) {
            Ok(()) => true,
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
        }
    }

    pub(super) fn pkcs12(&mut self, checked: &mut Vec<(&'static str, String)>) -> Option<Pkcs12> {
        let enable = self.get(keys::PKCS12_ENABLE);
        let enabled = match enable {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => {
                self.invalid(
                    keys::PKCS12_ENABLE,
                    v,
                    "not a boolean",
                    "accepted: \"true\" or \"false\"",
                );
                Some(false)
            }
        };
        match enabled {
            None => {
                for key in [keys::PKCS12_FILENAME, keys::PKCS12_PASSWORD] {
                    if self.attrs.contains_key(key) {
                        self.conflict(
                            key,
                            format!(
                                "only used with {}: \"true\"; set that to write a PKCS#12 keystore, or remove this attribute",
                                keys::PKCS12_ENABLE
                            ),
                        );
                    }
                }
                None
            }
            Some(false) => {
                for key in [keys::PKCS12_FILENAME, keys::PKCS12_PASSWORD] {
                    if self.attrs.contains_key(key)
                        && enable.is_some_and(|v| v.eq_ignore_ascii_case("false"))
                    {
                        self.warnings.push(format!(
                            "ignored {key}: {} is \"false\"",
                            keys::PKCS12_ENABLE
                        ));
                    }
                }
                None
            }
            Some(true) => {
                let (filename, ok) = self.file(keys::PKCS12_FILENAME, DEFAULT_PKCS12_FILENAME);
                if ok {
                    checked.push((keys::PKCS12_FILENAME, filename.clone()));
                }
                let password = match self.get(keys::PKCS12_PASSWORD) {
                    Some(p) => p.to_owned(),
                    None => {
                        if !self.too_large.contains(keys::PKCS12_PASSWORD) {
                            self.errors.push(AttributeError::Required {
                                attribute: keys::PKCS12_PASSWORD.to_owned(),
                                hint: format!(
                                    "{} is \"true\", and the keystore needs a non-empty password",
                                    keys::PKCS12_ENABLE
                                ),
                            });
                        }
                        String::new()
                    }
                };
                Some(Pkcs12 {
                    filename,
                    password: Password::new(password),
                })
            }
        }
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
