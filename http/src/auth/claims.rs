//! What a verified token must say beyond its signature: who (`sub`), which
//! tenant, which roles, and a lifetime within bounds. The signature, `exp`,
//! `nbf`, `iss` and `aud` are checked by `jsonwebtoken` with the validation
//! built here; the rest is read from the claims as JSON, because the tenant
//! and roles claims are named by settings (identity providers differ).

use super::User;
use crate::ApiError;
use gavel_runtime::http_settings::HttpSettings;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp`, `nbf` and `iat`: small, so an expired token
/// stops working within seconds rather than the library's default minute.
pub(crate) const LEEWAY_SECS: u64 = 5;
const MAX_USER_LEN: usize = 256;
const MAX_TENANT_LEN: usize = 128;
const MAX_ROLES: usize = 64;

#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    issuer: Option<String>,
    audience: Option<String>,
    max_lifetime_secs: u64,
    tenant_claim: String,
    roles_claim: String,
}

fn configured(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

impl ClaimRules {
    pub(crate) fn new(settings: &HttpSettings) -> Self {
        Self {
            issuer: configured(&settings.issuer),
            audience: configured(&settings.audience),
            max_lifetime_secs: settings.max_token_lifetime.as_secs(),
            tenant_claim: settings.tenant_claim.clone(),
            roles_claim: settings.roles_claim.clone(),
        }
    }

    /// The library's checks for a token signed with `algorithm`.
    pub(crate) fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        // Off by default in the library: a token whose nbf lies ahead is refused.
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Not configured: any audience (or none) is accepted.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The user a signature-checked token names, or 401 with the reason.
    pub(crate) fn user(&self, claims: &Map<String, Value>, now: u64) -> Result<User, ApiError> {
        let id = bounded_string(claim(claims, "sub"), "sub", MAX_USER_LEN)?;
        let tenant = bounded_string(
            claim(claims, &self.tenant_claim),
            &self.tenant_claim,
            MAX_TENANT_LEN,
        )?;
        let roles = self.roles(claims)?;
        let expires_at = self.lifetime(claims, now)?;
        Ok(User {
            id,
            tenant,
            roles,
            expires_at,
        })
    }

    fn roles(&self, claims: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
        let malformed = || {
            ApiError::unauthorized(format!(
                "token claim {} must be an array of at most {MAX_ROLES} strings",
                self.roles_claim
            ))
        };
        match claim(claims, &self.roles_claim) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= MAX_ROLES => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(malformed))
                .collect(),
            Some(_) => Err(malformed()),
        }
    }

    /// `exp`, checked against the maximum lifetime from now and from `iat`.
    fn lifetime(&self, claims: &Map<String, Value>, now: u64) -> Result<u64, ApiError> {
        let seconds = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::unauthorized(format!("token claim {name} is malformed"))),
        };
        let exp =
            seconds("exp")?.ok_or_else(|| ApiError::unauthorized("token lacks the exp claim"))?;
        let too_long = || {
            ApiError::unauthorized(format!(
                "token lifetime exceeds the maximum of {} s",
                self.max_lifetime_secs
            ))
        };
        if exp.saturating_sub(now) > self.max_lifetime_secs + LEEWAY_SECS {
            return Err(too_long());
        }
        if let Some(iat) = seconds("iat")? {
            if iat > now + LEEWAY_SECS {
                return Err(ApiError::unauthorized("token issued in the future (iat)"));
            }
            if exp.saturating_sub(iat) > self.max_lifetime_secs {
                return Err(too_long());
            }
        }
        Ok(exp)
    }
}

/// A claim by name, or by dotted path (`realm_access.roles`) when no claim has
/// the whole name: namespaced claims such as `https://gavel.example/tenant`
/// contain dots themselves.
fn claim<'c>(claims: &'c Map<String, Value>, name: &str) -> Option<&'c Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let first = claims.get(parts.next()?)?;
    parts.try_fold(first, |value, part| value.as_object()?.get(part))
}

fn bounded_string(value: Option<&Value>, name: &str, max: usize) -> Result<String, ApiError> {
    match value.and_then(Value::as_str).map(str::trim) {
        Some(text) if !text.is_empty() && text.len() <= max => Ok(text.to_owned()),
        Some(_) => Err(ApiError::unauthorized(format!(
            "token claim {name} must be 1 to {max} characters"
        ))),
        None => Err(ApiError::unauthorized(format!(
            "token lacks the {name} claim (a string)"
        ))),
    }
}

/// A short reason for the client; never the library's own message.
pub(crate) fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "token signature is not valid".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            "token algorithm does not match its key".into()
        }
        ErrorKind::InvalidIssuer => "token issuer not accepted".into(),
        ErrorKind::InvalidAudience => "token audience not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim {claim} is malformed"),
        _ => "token malformed".into(),
    }
}
