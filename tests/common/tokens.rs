//! Bearer tokens for tests: HS256 with the configuration's key, or any
//! algorithm and key a test brings (RS256/ES256 for JWKS tests).

use gavel_runtime::Config;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `sub`, `tenant`, `roles`, `iat` now and `exp` `ttl_secs` from now.
pub fn claims(user: &str, tenant: &str, roles: &[&str], ttl_secs: i64) -> Value {
    let now = epoch_secs();
    json!({"sub": user, "tenant": tenant, "roles": roles, "iat": now, "exp": now + ttl_secs})
}

/// Signed with `config`'s `GAVEL_JWT_SECRET`.
pub fn hs256(config: &Config, claims: &Value) -> String {
    let key = EncodingKey::from_secret(config.jwt_secret.expose().as_bytes());
    encode(&Header::default(), claims, &key).expect("token")
}
