//! `Idempotency-Key`: with one, a request's ids derive from the key, the
//! tenant and the user, so a retry names the same command (and the same new
//! auction or order), while two users who happen to pick the same key never
//! collide: the aggregate dedupes by command id alone, so a shared id would
//! hand one user's outcome to the other. Without the header every request is
//! a new command (UUID v7).
//!
//! A key is also bound to the request it first came with (route, target,
//! body digest; see `key_store`): the same key on another request is a 422.

use super::auth::User;
use super::error::ApiError;
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 128;

/// A checked `Idempotency-Key` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The request's key, None without the header, 400 when malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = value.as_bytes();
        let valid = (1..=MAX_KEY_LEN).contains(&key.len()) && key.iter().all(u8::is_ascii_graphic);
        if !valid {
            return Err(ApiError::bad_request(format!(
                "Idempotency-Key must be 1..={MAX_KEY_LEN} visible ASCII characters"
            )));
        }
        // Visible ASCII is valid UTF-8.
        Ok(Some(Self(String::from_utf8_lossy(key).into_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A UUID v8 from SHA-256 of tenant, user and key, NUL-separated. The key
    /// is visible ASCII; tenant and user come from a signed token, so only the
    /// token issuer could craft two pairs that hash alike.
    fn derived(&self, user: &User) -> Uuid {
        let mut hash = Sha256::new();
        hash.update(user.tenant.as_bytes());
        hash.update([0]);
        hash.update(user.id.as_bytes());
        hash.update([0]);
        hash.update(self.0.as_bytes());
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Builder::from_custom_bytes(bytes).into_uuid()
    }
}

/// The command id of a request.
pub fn command_id(user: &User, key: Option<&Key>) -> String {
    key.map_or_else(Uuid::now_v7, |key| key.derived(user))
        .to_string()
}

/// The id of something new the request creates (an auction without an id in
/// its body, an order): `{prefix}-` and the command id's hex, so a retry
/// names the same one and ids never collide across tenants.
pub fn new_id(prefix: &str, user: &User, key: Option<&Key>) -> String {
    let id = key.map_or_else(Uuid::now_v7, |key| key.derived(user));
    format!("{prefix}-{}", id.simple())
}

/// What a key is bound to: the route template, the aggregate it targets and a
/// digest of the body's JSON in canonical form (keys sorted), so a retry
/// whose client orders members differently is still the same request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub route: String,
    pub target: String,
    pub body_sha256: Vec<u8>,
}

impl Binding {
    /// Call after the body was validated: it is an object, or empty.
    pub fn new(route: &str, target: &str, body: &Bytes) -> Self {
        let value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(body).unwrap_or(Value::Null)
        };
        let mut canonical = Vec::with_capacity(body.len());
        write_canonical(&value, &mut canonical);
        Self {
            route: route.to_owned(),
            target: target.to_owned(),
            body_sha256: Sha256::digest(&canonical).to_vec(),
        }
    }

    /// Why `self` (the new request) is not the request the key was first used
    /// for, or None when it is the same.
    pub fn mismatch(&self, first: &Binding) -> Option<String> {
        let used = "Idempotency-Key was already used";
        if self.route != first.route {
            Some(format!(
                "{used} for {}; a key names one request",
                first.route
            ))
        } else if self.target != first.target {
            Some(format!(
                "{used} for {} {:?}; a key names one request",
                first.route, first.target
            ))
        } else if self.body_sha256 != first.body_sha256 {
            Some(format!("{used} with another body; a key names one request"))
        } else {
            None
        }
    }
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (index, (name, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(name.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            tenant: "t".into(),
            roles: Vec::new(),
            expires_at: 0,
        }
    }

    fn key(value: &str) -> Option<Key> {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, value.parse().unwrap());
        Key::from_headers(&headers).unwrap()
    }

    #[test]
    fn a_key_is_stable_per_user_and_distinct_across_users() {
        let a = command_id(&user("ann"), key("k-1").as_ref());
        assert_eq!(a, command_id(&user("ann"), key("k-1").as_ref()));
        assert_ne!(a, command_id(&user("bob"), key("k-1").as_ref()));
        assert_ne!(a, command_id(&user("ann"), key("k-2").as_ref()));
        let auction = new_id("auc", &user("ann"), key("k-1").as_ref());
        assert_eq!(auction, new_id("auc", &user("ann"), key("k-1").as_ref()));
        assert_ne!(
            new_id("auc", &user("ann"), None),
            new_id("auc", &user("ann"), None)
        );
    }

    #[test]
    fn keys_are_checked() {
        for bad in ["x".repeat(129), "has space".to_owned()] {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, bad.parse().unwrap());
            assert!(Key::from_headers(&headers).is_err(), "{bad}");
        }
        assert_eq!(Key::from_headers(&HeaderMap::new()).unwrap(), None);
        assert_ne!(
            command_id(&user("ann"), None),
            command_id(&user("ann"), None)
        );
    }

    #[test]
    fn a_binding_ignores_member_order_and_whitespace_but_not_values() {
        let body = |text: &'static str| Bytes::from_static(text.as_bytes());
        let first = Binding::new(
            "POST /auctions/{id}/bids",
            "lot-1",
            &body(r#"{"amount": 5, "currency": "EUR"}"#),
        );
        let same = Binding::new(
            "POST /auctions/{id}/bids",
            "lot-1",
            &body(r#"{"currency":"EUR","amount":5}"#),
        );
        assert_eq!(same.mismatch(&first), None);
        let more = Binding::new(
            "POST /auctions/{id}/bids",
            "lot-1",
            &body(r#"{"amount": 6, "currency": "EUR"}"#),
        );
        assert!(more.mismatch(&first).unwrap().contains("another body"));
        let elsewhere = Binding::new(
            "POST /auctions/{id}/bids",
            "lot-2",
            &body(r#"{"amount": 5, "currency": "EUR"}"#),
        );
        assert!(elsewhere.mismatch(&first).unwrap().contains("lot-1"));
        let cancel = Binding::new("POST /auctions/{id}/cancel", "lot-1", &body(""));
        assert!(cancel.mismatch(&first).unwrap().contains("bids"));
        assert_eq!(
            Binding::new("r", "t", &body("")),
            Binding::new("r", "t", &body("{}"))
        );
    }
}
