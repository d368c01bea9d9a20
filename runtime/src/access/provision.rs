//! A role's Kafka principal made real: its SCRAM credential and its ACLs.

use super::kafka_admin::KafkaAdmin;
use super::{kafka_user, AccessTable};
use crate::{Config, Result};

/// Creates (or re-keys) `user` when a password is given, and allows it the
/// Kafka rights of `role` under `config`'s names. Idempotent: existing ACLs
/// stay as they are. Returns how many ACLs the role has.
pub fn provision_kafka_role(
    admin: &KafkaAdmin,
    config: &Config,
    role: &str,
    user: &str,
    password: Option<&str>,
) -> Result<usize> {
    let rights = AccessTable::builtin()?.rights(role, config)?;
    if let Some(password) = password {
        admin.upsert_scram_user(user, password)?;
    }
    admin.create_acls(&principal(user), &rights.kafka)?;
    Ok(rights.kafka.len())
}

/// Removes `user`'s SCRAM credential and every ACL of it (tests' own users).
pub fn remove_kafka_user(admin: &KafkaAdmin, user: &str) -> Result<usize> {
    admin.delete_scram_user(user)?;
    admin.delete_acls(&principal(user))
}

/// The Kafka principal of a SCRAM user.
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

/// The users `gavel access apply` makes by default: `gavel-<role>`.
pub fn deployed_user(role: &str) -> String {
    kafka_user("gavel-", role)
}
