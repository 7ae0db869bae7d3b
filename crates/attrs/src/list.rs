//! Comma-separated attribute values.
//!
//! Two dialects, as in the Go driver:
//! - SANs and key usages: split at every comma, trim each entry
//!   ([`split_plain`]); their values cannot contain commas.
//! - Subject fields (organizations, street addresses, ...): a CSV line where an
//!   entry may be quoted (`"10 Downing Street, Westminster",Manchester`), with
//!   `""` or `\"` for a quote inside quotes and `\,` `\"` `\\` outside
//!   ([`split_escaped`], rendered back by [`join_escaped`]).
//!
//! Empty entries (a trailing comma, `a,,b`) are dropped in both dialects.

/// Splits at every comma, trims each entry and drops empty ones.
pub(crate) fn split_plain(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Splits a CSV line with quotes and backslash escapes; see the module docs.
/// The error names what is wrong, for a person.
pub(crate) fn split_escaped(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut entry = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err("a quoted entry is missing its closing '\"'".into()),
                    Some('"') => {
                        if chars.next_if_eq(&'"').is_some() {
                            entry.push('"');
                        } else {
                            break;
                        }
                    }
                    Some('\\') => match chars.next_if(|c| matches!(c, '"' | '\\')) {
                        Some(c) => entry.push(c),
                        None => entry.push('\\'),
                    },
                    Some(c) => entry.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let more = match chars.next() {
                None => false,
                Some(',') => true,
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} after a closing quote; put a comma between entries"
                    ));
                }
            };
            if !entry.is_empty() {
                out.push(entry);
            }
            if !more {
                return Ok(out);
            }
            continue;
        }
        let mut ended = true;
        while let Some(c) = chars.next() {
            match c {
                ',' => {
                    ended = false;
                    break;
                }
                '\\' => match chars.next_if(|c| matches!(c, ',' | '"' | '\\')) {
                    Some(escaped) => entry.push(escaped),
                    None => entry.push('\\'),
                },
                '"' => {
                    return Err(
                        "a '\"' inside an unquoted entry; quote the whole entry and double the inner quote, or write \\\""
                            .into(),
                    );
                }
                c => entry.push(c),
            }
        }
        let trimmed = entry.trim_end();
        if !trimmed.is_empty() {
            out.push(trimmed.to_owned());
        }
        if ended {
            return Ok(out);
        }
    }
}

/// Renders entries so that [`split_escaped`] gives them back.
pub(crate) fn join_escaped<S: AsRef<str>>(entries: &[S]) -> String {
    entries
        .iter()
        .map(|e| {
            let e = e.as_ref();
            let needs_quotes = e.is_empty()
                || e.contains([',', '"', '\\'])
                || e.starts_with(char::is_whitespace)
                || e.ends_with(char::is_whitespace);
            if needs_quotes {
                format!("\"{}\"", e.replace('\\', "\\\\").replace('"', "\"\""))
            } else {
                e.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_trims_and_drops_empty() {
        assert_eq!(
            split_plain(" a.com , b.com,,c.com, "),
            ["a.com", "b.com", "c.com"]
        );
        assert!(split_plain(" , ").is_empty());
    }

    #[test]
    fn escaped_quotes_keep_commas() {
        assert_eq!(
            split_escaped("\"10 Downing Street, Westminster\",Manchester").unwrap(),
            ["10 Downing Street, Westminster", "Manchester"]
        );
        assert_eq!(
            split_escaped(r"Acme\, Inc,Other").unwrap(),
            ["Acme, Inc", "Other"]
        );
        assert_eq!(split_escaped(r#""say ""hi""""#).unwrap(), [r#"say "hi""#]);
        assert_eq!(split_escaped(r#""say \"hi\"""#).unwrap(), [r#"say "hi""#]);
        assert_eq!(split_escaped(r"a\b").unwrap(), [r"a\b"]);
        assert_eq!(split_escaped(r"a\\,b").unwrap(), [r"a\", "b"]);
        assert_eq!(split_escaped(" a , b ,").unwrap(), ["a", "b"]);
        assert_eq!(split_escaped(r#" "a" , b"#).unwrap(), ["a", "b"]);
        assert_eq!(split_escaped(r#""a","#).unwrap(), ["a"]);
        assert_eq!(split_escaped(r#""" , x"#).unwrap(), ["x"]);
        assert_eq!(split_escaped(r#"" padded ""#).unwrap(), [" padded "]);
        assert!(split_escaped("").unwrap().is_empty());
    }

    #[test]
    fn escaped_errors() {
        assert!(split_escaped("\"open").unwrap_err().contains("closing"));
        assert!(
            split_escaped("\"a\"b")
                .unwrap_err()
                .contains("after a closing quote")
        );
        assert!(split_escaped("a\"b").unwrap_err().contains("unquoted"));
    }

    #[test]
    fn join_then_split_is_identity() {
        let cases: &[&[&str]] = &[
            &["a", "b"],
            &["Acme, Inc", "x"],
            &[r#"say "hi""#, r"back\slash", " lead", "trail "],
            &[r"\", r#"\""#, ",", "\""],
        ];
        for entries in cases {
            let joined = join_escaped(entries);
            assert_eq!(split_escaped(&joined).unwrap(), *entries, "{joined}");
        }
    }
}
