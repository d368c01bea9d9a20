//! HMAC-SHA256 tags for values a client hands back (page cursors), so a
//! client can neither forge nor alter them. Every replica derives the same
//! key from the same setting, so any replica accepts any replica's tags.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Tag length: 128 bits is far beyond guessing, and keeps cursors short.
pub const TAG_BYTES: usize = 16;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// A key of its own for `purpose`, derived from a shared secret: the same
    /// secret gives different, unrelated keys for different purposes.
    pub fn derived(purpose: &str, secret: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"gavel-key-derivation\0");
        hash.update(purpose.as_bytes());
        hash.update([0]);
        hash.update(secret.as_bytes());
        Self::new(&hash.finalize())
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(message);
        mac
    }

    pub fn sign(&self, message: &[u8]) -> [u8; TAG_BYTES] {
        let full = self.mac(message).finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// Compares in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        tag.len() == TAG_BYTES && self.mac(message).verify_truncated_left(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_fits_only_its_message_and_key() {
        let signer = Signer::derived("cursor", "secret");
        let tag = signer.sign(b"page-2");
        assert!(signer.verify(b"page-2", &tag));
        assert!(!signer.verify(b"page-3", &tag));
        assert!(!signer.verify(b"page-2", &tag[..8]));
        assert!(!Signer::derived("cursor", "other").verify(b"page-2", &tag));
        assert!(!Signer::derived("other", "secret").verify(b"page-2", &tag));
    }
}
