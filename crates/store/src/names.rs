//! Checks on everything that becomes a path component: volume ids, file-set
//! paths and private side-file names.

use crate::error::{StoreError, shorten};

/// Longest volume id accepted (the CSI spec's limit for `volume_id`).
pub const MAX_VOLUME_ID_LEN: usize = 128;
/// Longest relative path in a file set (Linux `PATH_MAX`, as the kubelet's AtomicWriter).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single path component (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Names inside a volume directory that private side files may not take.
const RESERVED_IN_VOLUME: &[&str] = &["metadata.json", "data"];

fn safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks a volume id: 1 to 128 bytes of `[A-Za-z0-9._-]`, not starting with `.`.
///
/// The kubelet's ids look like `csi-<sha256 hex>`.
pub fn check_volume_id(id: &str) -> Result<(), StoreError> {
    let reason = if id.is_empty() {
        Some("must not be empty")
    } else if id.len() > MAX_VOLUME_ID_LEN {
        Some("must be at most 128 bytes")
    } else if id.starts_with('.') {
        Some("must not start with '.'")
    } else if !id.chars().all(safe_char) {
        Some("may contain only ASCII letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidVolumeId {
            id: shorten(id),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks the name of a private side file: one component of `[A-Za-z0-9._-]`,
/// at most 200 bytes, not starting with `.`, not `metadata.json` or `data`.
pub fn check_private_name(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 200 {
        Some("must be at most 200 bytes")
    } else if name.starts_with('.') {
        Some("must not start with '.'")
    } else if !name.chars().all(safe_char) {
        Some("may contain only ASCII letters, digits, '.', '_' and '-'")
    } else if RESERVED_IN_VOLUME.contains(&name) {
        Some("is reserved by the store")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidFileName {
            name: shorten(name),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks a relative path in a file set and returns its components.
///
/// Refused: empty, longer than 4096 bytes, absolute, empty components (`a//b`,
/// trailing `/`), `.` or `..` components, any component starting with `..`
/// (reserved for the store's own entries such as `..data`), components longer
/// than 255 bytes, NUL or backslash anywhere.
pub fn check_relative_path(path: &str) -> Result<Vec<&str>, StoreError> {
    let fail = |reason| {
        Err(StoreError::InvalidFileName {
            name: shorten(path),
            reason,
        })
    };
    if path.is_empty() {
        return fail("must not be empty");
    }
    if path.len() > MAX_PATH_LEN {
        return fail("must be at most 4096 bytes");
    }
    if path.starts_with('/') {
        return fail("must be relative");
    }
    if path.contains('\0') {
        return fail("must not contain NUL");
    }
    if path.contains('\\') {
        return fail("must not contain a backslash");
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        if part.is_empty() {
            return fail("must not contain empty components");
        }
        if *part == "." || *part == ".." {
            return fail("must not contain '.' or '..' components");
        }
        if part.starts_with("..") {
            return fail("components must not start with '..' (reserved)");
        }
        if part.len() > MAX_NAME_LEN {
            return fail("components must be at most 255 bytes");
        }
    }
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn volume_ids() {
        let kubelet = format!("csi-{}", "ab".repeat(32));
        assert!(check_volume_id(&kubelet).is_ok());
        assert!(check_volume_id("vol-1_A.b").is_ok());
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            "a\0b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(
                    check_volume_id(bad),
                    Err(StoreError::InvalidVolumeId { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(check_volume_id(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn relative_paths() {
        assert_eq!(check_relative_path("tls.crt").unwrap(), ["tls.crt"]);
        assert_eq!(
            check_relative_path("bar/foo.crt").unwrap(),
            ["bar", "foo.crt"]
        );
        assert!(check_relative_path("a..b/.c").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "..data",
            "..2026_01_01",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "a\0b",
            "a\\b",
            "a/..x",
            &"y".repeat(256),
            &"y/".repeat(2049),
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn private_names() {
        assert!(check_private_name("pending-request.json").is_ok());
        for bad in ["", ".x", "a/b", "metadata.json", "data", "..", "a b"] {
            assert!(check_private_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
