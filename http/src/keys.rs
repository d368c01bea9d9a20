//! Symmetric keys (the HS256 JWT secret, the cursor HMAC key) and the rule
//! that keeps weak ones off the network.
//!
//! How an API decides it is "loopback only": from the address its listener is
//! actually bound to. 127.0.0.0/8 and ::1 (also as ::ffff:127.x.y.z) are
//! loopback; anything else, 0.0.0.0 and :: included, is reachable from other
//! machines. A weak key (empty, the built-in local default, or shorter than 32
//! bytes) is then refused at start; on loopback it is accepted with a warning,
//! so `make demo` and tests work without a secret.

use crate::HttpError;
use gavel_runtime::config::LOCAL_JWT_SECRET;
use std::net::SocketAddr;

/// The shortest symmetric key accepted off loopback: 256 bits, as RFC 7518
/// asks of HS256 keys.
pub const MIN_KEY_BYTES: usize = 32;

/// True when only this machine can reach `address`.
pub fn loopback_only(address: SocketAddr) -> bool {
    address.ip().to_canonical().is_loopback()
}

/// Why `key` is too weak for a listener others can reach, or None.
pub fn weakness(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("empty")
    } else if key == LOCAL_JWT_SECRET {
        Some("the built-in local default")
    } else if key.len() < MIN_KEY_BYTES {
        Some("shorter than 32 bytes")
    } else {
        None
    }
}

/// Accepts a strong key anywhere and a weak one only on loopback (warned).
pub fn check(setting: &str, key: &str, listener: SocketAddr) -> Result<(), HttpError> {
    let Some(why) = weakness(key) else {
        return Ok(());
    };
    if loopback_only(listener) {
        tracing::warn!(
            %listener,
            "{setting} is {why}: accepted only because the API listens on loopback"
        );
        return Ok(());
    }
    Err(HttpError::Config(format!(
        "{setting} is {why}: refused on {listener}, which is not loopback only; \
         set a random key of at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -base64 48`)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: &str) -> SocketAddr {
        address.parse().expect("address")
    }

    #[test]
    fn loopback_is_decided_by_the_bound_address() {
        assert!(loopback_only(at("127.0.0.1:80")));
        assert!(loopback_only(at("127.9.9.9:80")));
        assert!(loopback_only(at("[::1]:80")));
        assert!(loopback_only(at("[::ffff:127.0.0.1]:80")));
        assert!(!loopback_only(at("0.0.0.0:80")));
        assert!(!loopback_only(at("[::]:80")));
        assert!(!loopback_only(at("10.1.2.3:80")));
    }

    #[test]
    fn weak_keys_only_on_loopback() {
        let strong = "k".repeat(MIN_KEY_BYTES);
        for weak in ["", LOCAL_JWT_SECRET, "short-key"] {
            assert!(check("K", weak, at("127.0.0.1:1")).is_ok(), "{weak:?}");
            let refused = check("K", weak, at("0.0.0.0:1")).unwrap_err().to_string();
            assert!(refused.contains("not loopback"), "{refused}");
        }
        assert!(check("K", &strong, at("0.0.0.0:1")).is_ok());
    }
}
