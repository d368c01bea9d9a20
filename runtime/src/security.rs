//! Transport security of the two servers every worker talks to: Kafka
//! (TLS and SASL/SCRAM, as a platform Kafka such as Strimzi asks for) and
//! Postgres (TLS when the URL says `sslmode=require`). The settings are parsed
//! and checked once, at configuration load, so a typo fails the worker at start
//! with the setting's name instead of as a broker that never answers.

use crate::config::Secret;
use crate::{Result, RuntimeError};
use rdkafka::config::ClientConfig;
use std::str::FromStr;

/// How a Kafka client connects: librdkafka's `security.protocol` plus the
/// SASL credentials and the CA that signs the brokers' certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSecurity {
    pub protocol: KafkaProtocol,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (used with SASL_* only).
    pub sasl_mechanism: String,
    pub sasl_username: String,
    pub sasl_password: Secret,
    /// PEM file of the CA(s) that sign the brokers' certificates; empty: the
    /// system trust store.
    pub ssl_ca_location: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

impl FromStr for KafkaProtocol {
    type Err = RuntimeError;

    fn from_str(raw: &str) -> Result<Self> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(RuntimeError::Config(format!(
                "GAVEL_KAFKA_SECURITY_PROTOCOL must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got {raw:?}"
            ))),
        }
    }
}

const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl KafkaSecurity {
    /// Checks that the settings make a connection that can work: SASL needs a
    /// known mechanism, a user name and a password; a CA file must be readable.
    pub fn new(
        protocol: &str,
        sasl_mechanism: &str,
        sasl_username: &str,
        sasl_password: Secret,
        ssl_ca_location: &str,
    ) -> Result<Self> {
        let protocol: KafkaProtocol = protocol.parse()?;
        let sasl_mechanism = sasl_mechanism.trim().to_ascii_uppercase();
        if protocol.uses_sasl() {
            if !SASL_MECHANISMS.contains(&sasl_mechanism.as_str()) {
                return Err(RuntimeError::Config(format!(
                    "GAVEL_KAFKA_SASL_MECHANISM must be one of {SASL_MECHANISMS:?} with {}, got {sasl_mechanism:?}",
                    protocol.as_str()
                )));
            }
            if sasl_username.is_empty() || sasl_password.expose().is_empty() {
                return Err(RuntimeError::Config(format!(
                    "{} needs GAVEL_KAFKA_SASL_USERNAME and GAVEL_KAFKA_SASL_PASSWORD",
                    protocol.as_str()
                )));
            }
        }
        if protocol.uses_tls() && !ssl_ca_location.is_empty() {
            readable("GAVEL_KAFKA_SSL_CA_LOCATION", ssl_ca_location)?;
        }
        Ok(Self {
            protocol,
            sasl_mechanism,
            sasl_username: sasl_username.to_owned(),
            sasl_password,
            ssl_ca_location: ssl_ca_location.to_owned(),
        })
    }

    /// What the connection uses, for error messages (never the password).
    pub fn describe(&self) -> String {
        match self.protocol {
            KafkaProtocol::Plaintext | KafkaProtocol::Ssl => self.protocol.as_str().to_owned(),
            KafkaProtocol::SaslPlaintext | KafkaProtocol::SaslSsl => format!(
                "{} {} as user {:?}",
                self.protocol.as_str(),
                self.sasl_mechanism,
                self.sasl_username
            ),
        }
    }

    /// librdkafka's settings for this connection. The broker's host name is
    /// checked against its certificate (librdkafka's default `https`
    /// endpoint identification), so a CA alone does not let any host pass.
    pub fn apply(&self, client: &mut ClientConfig) {
        client.set("security.protocol", self.protocol.as_str());
        if self.protocol.uses_sasl() {
            client
                .set("sasl.mechanism", &self.sasl_mechanism)
                .set("sasl.username", &self.sasl_username)
                .set("sasl.password", self.sasl_password.expose());
        }
        if self.protocol.uses_tls() && !self.ssl_ca_location.is_empty() {
            client.set("ssl.ca.location", &self.ssl_ca_location);
        }
    }
}

fn readable(key: &str, path: &str) -> Result<()> {
    std::fs::metadata(path).map(|_| ()).map_err(|e| {
        RuntimeError::Config(format!("{key} names {path:?}, which cannot be read: {e}"))
    })
}

/// How a worker reaches Postgres: `sslmode=require` in the URL asks for TLS,
/// with the server's certificate chain and host name verified (against
/// `root_cert`, or the system trust store when that is empty), which is what
/// libpq calls `verify-full`. Any other mode connects without TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTls {
    pub required: bool,
    pub root_cert: String,
}

impl PostgresTls {
    pub fn new(url: &str, root_cert: &str) -> Result<Self> {
        let parsed = tokio_postgres::Config::from_str(url).map_err(|e| {
            RuntimeError::Config(format!(
                "GAVEL_POSTGRES_URL is not a Postgres URL ({e}); sslmode takes disable, prefer or \
                 require, and require verifies the certificate and host name"
            ))
        })?;
        let required = matches!(
            parsed.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        if required && !root_cert.is_empty() {
            readable("GAVEL_POSTGRES_SSL_ROOT_CERT", root_cert)?;
        }
        Ok(Self {
            required,
            root_cert: root_cert.to_owned(),
        })
    }

    /// The TLS connector for `sslmode=require`.
    pub fn connector(&self) -> Result<postgres_openssl::MakeTlsConnector> {
        let tls = |e: openssl::error::ErrorStack| {
            RuntimeError::Config(format!("postgres TLS setup: {e}"))
        };
        let mut builder =
            openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())
                .map_err(tls)?;
        if !self.root_cert.is_empty() {
            builder.set_ca_file(&self.root_cert).map_err(tls)?;
        }
        Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(protocol: &str, user: &str, password: &str) -> Result<KafkaSecurity> {
        KafkaSecurity::new(protocol, "scram-sha-512", user, Secret::new(password), "")
    }

    #[test]
    fn plaintext_sets_only_the_protocol() {
        let security = kafka("plaintext", "", "").unwrap();
        let mut client = ClientConfig::new();
        security.apply(&mut client);
        assert_eq!(client.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(client.get("sasl.username"), None);
    }

    #[test]
    fn sasl_ssl_carries_the_credentials_and_the_ca() {
        let ca = std::env::temp_dir().join("gavel-security-test-ca.pem");
        std::fs::write(&ca, "not parsed here").unwrap();
        let security = KafkaSecurity::new(
            "SASL_SSL",
            "SCRAM-SHA-512",
            "gavel",
            Secret::new("pw"),
            ca.to_str().unwrap(),
        )
        .unwrap();
        let mut client = ClientConfig::new();
        security.apply(&mut client);
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("sasl.username"), Some("gavel"));
        assert_eq!(client.get("sasl.password"), Some("pw"));
        assert_eq!(client.get("ssl.ca.location"), ca.to_str());
    }

    #[test]
    fn sasl_without_credentials_or_with_an_unknown_mechanism_is_refused() {
        assert!(kafka("SASL_SSL", "", "pw").is_err());
        assert!(kafka("SASL_SSL", "gavel", "").is_err());
        assert!(KafkaSecurity::new("SASL_SSL", "GSSAPI", "u", Secret::new("p"), "").is_err());
        assert!(kafka("TLS", "", "").is_err(), "not a librdkafka protocol");
    }

    #[test]
    fn a_missing_ca_file_is_named_in_the_error() {
        let error = KafkaSecurity::new("SSL", "", "", Secret::new(""), "/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(error.contains("GAVEL_KAFKA_SSL_CA_LOCATION"), "{error}");
    }

    #[test]
    fn postgres_tls_follows_sslmode() {
        let url = |mode: &str| format!("postgres://u:p@db:5432/gavel?sslmode={mode}");
        assert!(PostgresTls::new(&url("require"), "").unwrap().required);
        assert!(!PostgresTls::new(&url("disable"), "").unwrap().required);
        assert!(
            !PostgresTls::new("postgres://u:p@db/gavel", "")
                .unwrap()
                .required
        );
        assert!(PostgresTls::new(&url("sometimes"), "").is_err());
        assert!(PostgresTls::new(&url("require"), "/nonexistent/root.crt").is_err());
    }
}
