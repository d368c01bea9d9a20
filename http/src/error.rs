//! The one error type of the crate: why an API could not start or serve.
//! Refusals of single requests are [`crate::ApiError`] responses, not errors.

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A setting that makes the API unsafe or unusable (weak key on a public
    /// listener, no way to verify tokens, ...).
    #[error("configuration: {0}")]
    Config(String),
    /// The identity provider's key set could not be read or understood.
    #[error("JWKS: {0}")]
    Jwks(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
