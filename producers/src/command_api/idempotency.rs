//! Command ids. With an `Idempotency-Key` the id is derived from the key, the
//! tenant and the user, so a retry maps to the same command (the aggregate then
//! answers with the original outcome and writes nothing new), while two users
//! who happen to pick the same key never collide: the aggregate dedupes by id
//! alone, so a shared id would hand one user's outcome to the other.
//! Without the header every request is a new command (UUID v7).

use super::auth::User;
use super::error::ApiError;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 128;

/// The command id of a request.
pub fn command_id(user: &User, headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(Uuid::now_v7().to_string());
    };
    let key = value.as_bytes();
    let valid = (1..=MAX_KEY_LEN).contains(&key.len()) && key.iter().all(u8::is_ascii_graphic);
    if !valid {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1..={MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(derived(user, key).to_string())
}

/// A UUID v8 from SHA-256 of tenant, user and key, NUL-separated. The key is
/// visible ASCII; tenant and user come from a signed token, so only the token
/// issuer could craft two pairs that hash alike.
fn derived(user: &User, key: &[u8]) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(user.tenant.as_bytes());
    hash.update([0]);
    hash.update(user.id.as_bytes());
    hash.update([0]);
    hash.update(key);
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            tenant: "t".into(),
        }
    }

    fn with_key(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, key.parse().unwrap());
        headers
    }

    #[test]
    fn a_key_is_stable_per_user_and_distinct_across_users() {
        let a = command_id(&user("ann"), &with_key("k-1")).unwrap();
        assert_eq!(a, command_id(&user("ann"), &with_key("k-1")).unwrap());
        assert_ne!(a, command_id(&user("bob"), &with_key("k-1")).unwrap());
        assert_ne!(a, command_id(&user("ann"), &with_key("k-2")).unwrap());
    }

    #[test]
    fn keys_are_checked() {
        assert!(command_id(&user("ann"), &with_key(&"x".repeat(129))).is_err());
        assert!(command_id(&user("ann"), &with_key("has space")).is_err());
        let fresh = command_id(&user("ann"), &HeaderMap::new()).unwrap();
        assert_ne!(fresh, command_id(&user("ann"), &HeaderMap::new()).unwrap());
    }
}
