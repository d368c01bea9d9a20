//! Bearer tokens: HS256 JWTs signed with `GAVEL_JWT_SECRET`, carrying the user
//! (`sub`), the tenant (`tenant`) and an expiry (`exp`, required). Every command
//! route checks the token before it looks at the body.

use super::error::ApiError;
use axum::http::{header, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp`: small, so an expired token stops working
/// within seconds rather than the library's default minute.
const LEEWAY_SECS: u64 = 5;

/// Who sent the request, as the token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub tenant: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
}

pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn new(secret: &str) -> Self {
        // Only HS256: a token naming another algorithm (e.g. `none`) is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The user of a request, or 401 saying what is wrong with its credentials.
    pub fn user(&self, headers: &HeaderMap) -> Result<User, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))?;
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| ApiError::unauthorized(reason(e.kind())))?
            .claims;
        if claims.sub.trim().is_empty() || claims.tenant.trim().is_empty() {
            return Err(ApiError::unauthorized(
                "token claims sub and tenant must not be empty",
            ));
        }
        Ok(User {
            id: claims.sub,
            tenant: claims.tenant,
        })
    }
}

fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::InvalidSignature => "token signature is not valid".into(),
        ErrorKind::InvalidAlgorithm => "token algorithm not accepted (HS256 only)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim {claim} is malformed"),
        ErrorKind::ImmatureSignature => "token not valid yet".into(),
        ErrorKind::Json(error) => format!("token claims invalid: {error}"),
        _ => "token malformed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
    use serde_json::json;

    fn headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    fn token(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn reason_of(result: Result<User, ApiError>) -> String {
        format!("{:?}", result.unwrap_err())
    }

    #[test]
    fn a_valid_token_names_user_and_tenant() {
        let exp = get_current_timestamp() + 60;
        let t = token("k", json!({"sub": "ann", "tenant": "t1", "exp": exp}));
        let user = Verifier::new("k").user(&headers(&t)).unwrap();
        assert_eq!((user.id.as_str(), user.tenant.as_str()), ("ann", "t1"));
    }

    #[test]
    fn bad_tokens_say_why() {
        let now = get_current_timestamp();
        let verifier = Verifier::new("k");
        let expired = token("k", json!({"sub": "a", "tenant": "t", "exp": now - 600}));
        assert!(reason_of(verifier.user(&headers(&expired))).contains("expired"));
        let forged = token("other", json!({"sub": "a", "tenant": "t", "exp": now + 60}));
        assert!(reason_of(verifier.user(&headers(&forged))).contains("signature"));
        let no_exp = token("k", json!({"sub": "a", "tenant": "t"}));
        assert!(reason_of(verifier.user(&headers(&no_exp))).contains("exp"));
        let no_tenant = token("k", json!({"sub": "a", "exp": now + 60}));
        assert!(reason_of(verifier.user(&headers(&no_tenant))).contains("tenant"));
        assert!(reason_of(verifier.user(&HeaderMap::new())).contains("missing"));
    }
}
