//! JSON encoding of records that hold secrets (a pending request's key, a
//! volume context with a token or a keystore password), into buffers that
//! are wiped when dropped, including every buffer outgrown on the way.
//!
//! `serde_json::to_vec` grows a plain `Vec` by reallocation, and each
//! reallocation frees the old buffer with a partial copy of the secret in
//! it; wrapping the result in `Zeroizing` afterwards wipes only the last
//! one. No crate offers a zeroizing `io::Write` sink, so this is a small
//! one written here.

use std::io;

use zeroize::Zeroizing;

/// The first buffer's size: enough for a pending record with an RSA-4096
/// key in one allocation.
const INITIAL_CAPACITY: usize = 4096;

/// An [`io::Write`] into a [`Zeroizing`] buffer that never lets the `Vec`
/// reallocate on its own: before a write would outgrow it, the contents
/// move to a buffer twice as large and the old one is wiped.
#[derive(Default)]
pub struct ZeroizingWriter {
    buf: Zeroizing<Vec<u8>>,
}

impl ZeroizingWriter {
    /// A writer whose first buffer holds `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Zeroizing::new(Vec::with_capacity(capacity)),
        }
    }

    /// The bytes written.
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

impl io::Write for ZeroizingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let needed = self
            .buf
            .len()
            .checked_add(data.len())
            .ok_or_else(|| io::Error::other("secret record too large"))?;
        if needed > self.buf.capacity() {
            let capacity = needed.max(self.buf.capacity().saturating_mul(2));
            let mut bigger = Zeroizing::new(Vec::with_capacity(capacity));
            bigger.extend_from_slice(&self.buf);
            // The old buffer is dropped here, and `Zeroizing` wipes all of
            // its capacity.
            self.buf = bigger;
        }
        // Within capacity: `extend_from_slice` does not reallocate.
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes `value` as JSON into a [`Zeroizing`] buffer, leaving no unwiped
/// copy behind (see [`ZeroizingWriter`]).
pub fn to_json_zeroizing<T: serde::Serialize + ?Sized>(
    value: &T,
) -> serde_json::Result<Zeroizing<Vec<u8>>> {
    let mut w = ZeroizingWriter::with_capacity(INITIAL_CAPACITY);
    serde_json::to_writer(&mut w, value)?;
    Ok(w.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn grows_by_moving_and_keeps_every_byte() {
        let mut w = ZeroizingWriter::with_capacity(4);
        let mut want = Vec::new();
        for i in 0..1000u32 {
            let piece = i.to_string();
            w.write_all(piece.as_bytes()).unwrap();
            want.extend_from_slice(piece.as_bytes());
        }
        let out: Zeroizing<Vec<u8>> = w.into_inner();
        assert_eq!(*out, want);
        assert!(out.capacity() < 2 * want.len() + 8, "doubling, not more");
    }

    #[test]
    fn json_round_trips_through_a_zeroizing_buffer() {
        let value = serde_json::json!({
            "token": "x".repeat(10_000),
            "nested": {"a": [1, 2, 3], "quote": "\"\n"},
        });
        let out: Zeroizing<Vec<u8>> = to_json_zeroizing(&value).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, value);
        assert_eq!(*out, serde_json::to_vec(&value).unwrap());
    }
}
