//! How a process reaches the schema registry: its URL, the basic-auth
//! credential it holds (a worker holds a reader's, `gavel schemas register`
//! the registrar's) and the CA that signs the registry's certificate. Checked
//! once at configuration load, like the Kafka and Postgres transports, so a
//! typo stops the process at start with the setting's name.

use crate::config::Secret;
use crate::{Result, RuntimeError};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEndpoint {
    pub url: String,
    /// Basic-auth user; empty: no credential is sent.
    pub username: String,
    pub password: Secret,
    /// PEM file of the CA(s) that sign the registry's certificate (https
    /// URLs); empty: the system trust store.
    pub ca_location: String,
}

impl RegistryEndpoint {
    pub fn new(url: &str, username: &str, password: Secret, ca_location: &str) -> Result<Self> {
        let config = |why: String| RuntimeError::Config(why);
        if username.is_empty() != password.expose().is_empty() {
            return Err(config(
                "GAVEL_REGISTRY_USERNAME and GAVEL_REGISTRY_PASSWORD go together".into(),
            ));
        }
        if !ca_location.is_empty() {
            if !url.starts_with("https://") {
                return Err(config(format!(
                    "GAVEL_REGISTRY_CA_LOCATION is set but GAVEL_REGISTRY_URL {url:?} is not https"
                )));
            }
            let pem = std::fs::read(ca_location).map_err(|e| {
                config(format!(
                    "GAVEL_REGISTRY_CA_LOCATION names {ca_location:?}, which cannot be read: {e}"
                ))
            })?;
            if !reqwest::Certificate::from_pem_bundle(&pem).is_ok_and(|c| !c.is_empty()) {
                return Err(config(format!(
                    "GAVEL_REGISTRY_CA_LOCATION {ca_location:?} holds no PEM certificate"
                )));
            }
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            username: username.to_owned(),
            password,
            ca_location: ca_location.to_owned(),
        })
    }

    /// Plain HTTP, no credential: the local default.
    pub fn plain(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            username: String::new(),
            password: Secret::new(""),
            ca_location: String::new(),
        }
    }

    /// An HTTP client for this registry: bounded request time, and when a CA
    /// is configured, only that CA is trusted (as Postgres' root cert is).
    /// The file was checked at load; should it have gone since, no root is
    /// added and the TLS handshake fails with the reason.
    pub fn client_builder(&self, timeout: Duration) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder().timeout(timeout);
        if self.ca_location.is_empty() {
            return builder;
        }
        let roots = std::fs::read(&self.ca_location)
            .ok()
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
            .unwrap_or_default();
        builder.tls_certs_only(roots)
    }

    /// Adds the basic-auth credential, if any, to a request.
    pub fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.username.is_empty() {
            request
        } else {
            request.basic_auth(&self.username, Some(self.password.expose()))
        }
    }

    /// schema_registry_converter's settings for this registry.
    pub fn converter_settings(&self, timeout: Duration) -> SrSettings {
        let mut settings = SrSettings::new_builder(self.url.clone());
        settings.set_timeout(timeout);
        if !self.username.is_empty() {
            settings.set_basic_authorization(&self.username, Some(self.password.expose()));
        }
        settings
            .build_with(self.client_builder(timeout))
            .unwrap_or_else(|error| {
                tracing::error!(%error, url = %self.url, "registry client settings refused; using defaults");
                SrSettings::new(self.url.clone())
            })
    }

    /// What the connection uses, for messages (never the password).
    pub fn describe(&self) -> String {
        match self.username.as_str() {
            "" => self.url.clone(),
            user => format!("{} as {user:?}", self.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_without_a_password_or_a_ca_on_plain_http_is_refused() {
        let no_password = RegistryEndpoint::new("https://r", "reader", Secret::new(""), "");
        assert!(no_password.is_err());
        let ca_on_http = RegistryEndpoint::new("http://r", "", Secret::new(""), "/etc/hostname")
            .unwrap_err()
            .to_string();
        assert!(ca_on_http.contains("not https"), "{ca_on_http}");
        let missing = RegistryEndpoint::new("https://r", "", Secret::new(""), "/nonexistent.pem")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("GAVEL_REGISTRY_CA_LOCATION"), "{missing}");
    }

    #[test]
    fn the_password_never_shows() {
        let endpoint =
            RegistryEndpoint::new("http://r/", "reader", Secret::new("s3cret"), "").unwrap();
        assert_eq!(endpoint.url, "http://r");
        assert!(!format!("{endpoint:?} {}", endpoint.describe()).contains("s3cret"));
    }
}
