//! RFC 4514 distinguished-name strings for `literal-subject`.
//!
//! Written by hand: the crates that parse DN strings are X.509/ASN.1 crates,
//! which this crate must not depend on. The grammar follows cert-manager's
//! parser (RDNs separated by `,` or `;`, multi-valued RDNs joined by `+`,
//! backslash escapes of special characters or two hex digits, surrounding
//! spaces trimmed, the `#hex` form refused), and is stricter where cert-manager
//! silently produces a broken subject: attribute types must be known names or
//! dotted OIDs, and an RDN may not be empty.

use crate::spec::SubjectAttribute;

/// The attribute type names `literal-subject` accepts (case-insensitive),
/// with their OIDs: cert-manager's set plus `POSTALCODE`.
pub const ATTRIBUTE_TYPES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("POSTALCODE", "2.5.4.17"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("DC", "0.9.2342.19200300.100.1.25"),
];

/// Parses an RFC 4514 string into RDNs in encoding order: the reverse of the
/// string, so `CN=a,O=b` gives `[[O=b], [CN=a]]`.
pub(crate) fn parse_dn(input: &str) -> Result<Vec<Vec<SubjectAttribute>>, String> {
    if input.trim().is_empty() {
        return Err("the subject is empty".into());
    }
    // Split into raw (type, value) pieces at unescaped separators.
    let mut rdns: Vec<Vec<SubjectAttribute>> = Vec::new();
    let mut current: Vec<SubjectAttribute> = Vec::new();
    let mut start = 0;
    let mut escaping = false;
    let bytes = input.as_bytes();
    for (pos, &b) in bytes.iter().enumerate() {
        if escaping {
            escaping = false;
            continue;
        }
        match b {
            b'\\' => escaping = true,
            b',' | b';' | b'+' => {
                current.push(parse_atv(&input[start..pos])?);
                if b != b'+' {
                    rdns.push(std::mem::take(&mut current));
                }
                start = pos + 1;
            }
            _ => {}
        }
    }
    current.push(parse_atv(&input[start..])?);
    rdns.push(current);
    rdns.reverse();
    Ok(rdns)
}

fn parse_atv(piece: &str) -> Result<SubjectAttribute, String> {
    let Some(eq) = find_unescaped(piece, b'=') else {
        if piece.trim().is_empty() {
            return Err("an empty RDN (two separators in a row, or one at an end)".into());
        }
        return Err(format!(
            "{:?} has no '=' between type and value",
            piece.trim()
        ));
    };
    let raw_type = piece[..eq].trim();
    let raw_value = &piece[eq + 1..];
    let (attr_type, oid) = attribute_type(raw_type)?;
    let trimmed = raw_value.trim_start();
    if trimmed.starts_with('#') {
        return Err(format!(
            "{raw_type}: the '#' hex-encoded value form is not supported; write the value as text"
        ));
    }
    let value = unescape(raw_value).map_err(|e| format!("{raw_type}: {e}"))?;
    Ok(SubjectAttribute {
        attr_type,
        oid,
        value,
    })
}

fn find_unescaped(s: &str, wanted: u8) -> Option<usize> {
    let mut escaping = false;
    for (pos, &b) in s.as_bytes().iter().enumerate() {
        if escaping {
            escaping = false;
        } else if b == b'\\' {
            escaping = true;
        } else if b == wanted {
            return Some(pos);
        }
    }
    None
}

fn attribute_type(raw: &str) -> Result<(String, String), String> {
    if raw.is_empty() {
        return Err("an attribute has an empty type before '='".into());
    }
    if let Some((name, oid)) = ATTRIBUTE_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(raw))
    {
        return Ok(((*name).to_owned(), (*oid).to_owned()));
    }
    let oid = raw
        .strip_prefix("OID.")
        .or_else(|| raw.strip_prefix("oid."))
        .unwrap_or(raw);
    if is_dotted_oid(oid) {
        // Name the OID by its short name when it has one.
        if let Some((name, oid)) = ATTRIBUTE_TYPES.iter().find(|(_, o)| *o == oid) {
            return Ok(((*name).to_owned(), (*oid).to_owned()));
        }
        return Ok((oid.to_owned(), oid.to_owned()));
    }
    let names: Vec<&str> = ATTRIBUTE_TYPES.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "unknown attribute type {raw:?}; use one of {} or a dotted OID such as 2.5.4.12",
        names.join(", ")
    ))
}

fn is_dotted_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs.iter().all(|a| {
            !a.is_empty()
                && a.len() <= 20
                && a.bytes().all(|b| b.is_ascii_digit())
                && (a.len() == 1 || !a.starts_with('0'))
        })
        && matches!(arcs[0], "0" | "1" | "2")
}

/// Trims unescaped surrounding spaces and resolves escapes.
fn unescape(raw: &str) -> Result<String, String> {
    let mut s = raw.trim_start();
    // Keep a trailing space that is escaped ("a\ ").
    let trimmed_end = s.trim_end();
    if trimmed_end.len() < s.len() && ends_with_odd_backslashes(trimmed_end) {
        s = &s[..trimmed_end.len() + 1];
    } else {
        s = trimmed_end;
    }
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&next) = bytes.get(i + 1) else {
            return Err("the value ends with a lone '\\'".into());
        };
        if matches!(
            next,
            b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\'
        ) {
            out.push(next);
            i += 2;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        });
        match hex {
            Some(byte) if bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                out.push(byte);
                i += 3;
            }
            _ => {
                return Err(format!(
                    "'\\' must be followed by one of  \"#+,;<=>\\ or a space, or by two hex digits, not {:?}",
                    String::from_utf8_lossy(&bytes[i + 1..bytes.len().min(i + 3)])
                ));
            }
        }
    }
    String::from_utf8(out).map_err(|_| "hex escapes do not form valid UTF-8".to_owned())
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(dn: &str) -> Vec<Vec<(String, String)>> {
        parse_dn(dn)
            .unwrap()
            .into_iter()
            .map(|rdn| {
                rdn.into_iter()
                    .map(|a| (a.attr_type, a.value))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn p(t: &str, v: &str) -> (String, String) {
        (t.to_owned(), v.to_owned())
    }

    #[test]
    fn simple_dn_in_encoding_order() {
        assert_eq!(
            pairs("CN=web,OU=Shop,O=Acme Ltd,C=GB"),
            vec![
                vec![p("C", "GB")],
                vec![p("O", "Acme Ltd")],
                vec![p("OU", "Shop")],
                vec![p("CN", "web")],
            ]
        );
    }

    #[test]
    fn multi_valued_semicolons_spaces_case() {
        assert_eq!(
            pairs(" cn = a + uid = b ; o=c "),
            vec![vec![p("O", "c")], vec![p("CN", "a"), p("UID", "b")]]
        );
    }

    #[test]
    fn escapes_and_hex() {
        assert_eq!(pairs(r"O=Acme\, Inc"), vec![vec![p("O", "Acme, Inc")]]);
        assert_eq!(pairs(r"CN=a\+b\=c"), vec![vec![p("CN", "a+b=c")]]);
        assert_eq!(pairs(r"CN=caf\C3\A9"), vec![vec![p("CN", "café")]]);
        assert_eq!(pairs(r"CN=trailing\ "), vec![vec![p("CN", "trailing ")]]);
        assert_eq!(pairs(r"CN=\ lead"), vec![vec![p("CN", " lead")]]);
        assert_eq!(pairs("CN=a=b"), vec![vec![p("CN", "a=b")]]);
    }

    #[test]
    fn oids() {
        let rdns = parse_dn("2.5.4.12=Engineer,2.5.4.3=x,OID.1.2.3=y").unwrap();
        assert_eq!(rdns[0][0].attr_type, "1.2.3");
        assert_eq!(rdns[1][0].attr_type, "CN");
        assert_eq!(rdns[1][0].oid, "2.5.4.3");
        assert_eq!(rdns[2][0].attr_type, "2.5.4.12");
        assert_eq!(rdns[2][0].oid, "2.5.4.12");
    }

    #[test]
    fn errors() {
        let e = |s: &str| parse_dn(s).unwrap_err();
        assert!(e("").contains("empty"));
        assert!(e("CN=a,,O=b").contains("empty RDN"));
        assert!(e("CN=a,").contains("empty RDN"));
        assert!(e("CN").contains("no '='"));
        assert!(e("=a").contains("empty type"));
        assert!(e("XX=a").contains("unknown attribute type \"XX\""));
        assert!(e("CN=#0403616263").contains("'#' hex-encoded"));
        assert!(e(r"CN=a\").contains("lone"));
        assert!(e(r"CN=a\zz").contains("two hex digits"));
        assert!(e(r"CN=\ff").contains("UTF-8"));
        assert!(e("1.02.3=a").contains("unknown attribute type"));
    }
}
