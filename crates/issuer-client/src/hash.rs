//! The label hash the Go driver (csi-lib) writes on every CertificateRequest.
//!
//! Written by hand because it is a compatibility contract, not a general hash:
//! FNV-1 (not FNV-1a) 32-bit over the id's bytes, the sum printed in decimal,
//! then each character of that decimal string mapped through apimachinery's
//! `rand.SafeEncodeString` alphabet. Nodes running the Go driver and this
//! driver must compute the same value so they can find and clean up each
//! other's requests.

/// apimachinery's `rand.SafeEncodeString` alphabet (no vowels, no confusable characters).
const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1 32-bit offset basis.
const FNV32_OFFSET: u32 = 0x811c_9dc5;
/// FNV-1 32-bit prime.
const FNV32_PRIME: u32 = 0x0100_0193;

/// FNV-1 (multiply, then xor) 32-bit hash of `data`, as Go's `hash/fnv.New32`.
pub(crate) fn fnv1_32(data: &[u8]) -> u32 {
    data.iter().fold(FNV32_OFFSET, |hash, byte| {
        hash.wrapping_mul(FNV32_PRIME) ^ u32::from(*byte)
    })
}

/// apimachinery `rand.SafeEncodeString`: each byte `c` becomes `ALPHABET[c % 27]`.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|c| char::from(SAFE_ALPHABET[usize::from(c) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The value of the `csi.cert-manager.io/node-id-hash` and
/// `csi.cert-manager.io/volume-id-hash` labels for `id`, exactly as the Go
/// driver computes it.
///
/// ```
/// assert_eq!(cmcsi_issuer_client::label_hash("node-a"), "9bd6bbfff");
/// ```
pub fn label_hash(id: &str) -> String {
    safe_encode(&fnv1_32(id.as_bytes()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1_sums_match_go_vectors() {
        assert_eq!(fnv1_32(b"node-a"), 568_266_999);
        assert_eq!(fnv1_32(b"csi-0123456789abcdef"), 303_873_405);
        // FNV-1 of the empty input is the offset basis.
        assert_eq!(fnv1_32(b""), FNV32_OFFSET);
    }

    #[test]
    fn label_hash_matches_go_vectors() {
        assert_eq!(label_hash("node-a"), "9bd6bbfff");
        assert_eq!(label_hash("csi-0123456789abcdef"), "747dc7849");
    }

    #[test]
    fn label_hash_is_a_valid_label_value() {
        for id in ["", "x", "a-very-long-node-name.example.com", "csi-ffffffff"] {
            let value = label_hash(id);
            assert!(!value.is_empty() && value.len() <= 10, "{value}");
            assert!(value.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{value}");
        }
    }
}
