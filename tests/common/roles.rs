//! Roles with their own credentials on a test's private pipeline: a SCRAM
//! user per role (`<test id>-<role>`) with exactly the role's ACLs under the
//! test's topic and group names (deploy/access.txt), over the stack's SASL_SSL
//! listener; the role's Postgres login and registry credential from the local
//! stack's credentials (deploy/local/lib/access.sh). Users and ACLs are removed
//! at the end, also when the test fails.

use super::TestEnv;
use gavel_runtime::access::{self, kafka_admin::KafkaAdmin, AccessTable, KafkaResource};
use gavel_runtime::{kafka, Config};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Roles {
    admin: KafkaAdmin,
    users: HashMap<String, (String, String)>,
    base: Vec<(String, String)>,
}

impl Roles {
    /// Users and ACLs for `roles` on `env`'s pipeline (made as the stack's
    /// admin, the plain listener's super user).
    pub fn provision(env: &TestEnv, roles: &[&str]) -> Self {
        let admin = KafkaAdmin::new(&env.config).expect("kafka admin");
        let mut users = HashMap::new();
        for role in roles {
            let user = format!("{}-{role}", env.config.instance_id);
            let password = super::unique("pw");
            access::provision_kafka_role(&admin, &env.config, role, &user, Some(&password))
                .unwrap_or_else(|e| panic!("provisioning {role}: {e}"));
            users.insert((*role).to_owned(), (user, password));
        }
        let base = super::process::stack_settings("tls-env")
            .into_iter()
            .filter(|(k, _)| k.starts_with("GAVEL_KAFKA_"))
            .collect();
        let roles_made = Self { admin, users, base };
        for role in roles {
            roles_made.wait_until_authorized(env, role);
        }
        roles_made
    }

    /// Waits until the broker lets `role` in and sees one of its topics: the
    /// admin requests return once the controller holds the credential and the
    /// ACLs, the broker's authorizer has them a moment later (seconds on a
    /// busy machine), and a worker started before then fails its first steps.
    fn wait_until_authorized(&self, env: &TestEnv, role: &str) {
        let rights = AccessTable::builtin()
            .and_then(|t| t.rights(role, &env.config))
            .expect("role rights");
        let Some(topic) = rights
            .kafka
            .iter()
            .find(|a| a.resource == KafkaResource::Topic && !a.prefixed)
        else {
            return;
        };
        let config = self.config(env, role);
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(error) = kafka::partition_count(&config, &topic.name) {
            assert!(
                Instant::now() < deadline,
                "{role} still not authorized for {}: {error}",
                topic.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The settings `role` runs with: the test's names, its own Kafka user,
    /// and its Postgres login and registry credential from the stack.
    pub fn settings(&self, role: &str) -> Vec<(String, String)> {
        let (user, password) = &self.users[role];
        let mut settings = self.base.clone();
        settings.push(("GAVEL_KAFKA_SASL_USERNAME".into(), user.clone()));
        settings.push(("GAVEL_KAFKA_SASL_PASSWORD".into(), password.clone()));
        settings.extend(stack_credentials(role));
        settings
    }

    /// `env`'s configuration as `role` sees it.
    pub fn config(&self, env: &TestEnv, role: &str) -> Config {
        env.config
            .with_overrides(self.settings(role))
            .expect("role settings")
    }
}

/// The Postgres and registry settings of `role` in the local stack's
/// credentials (not its Kafka ones: the test makes users of its own).
pub fn stack_credentials(role: &str) -> Vec<(String, String)> {
    let dir = super::process::stack_text("credentials-dir");
    let path = format!("{dir}/{role}.env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| k.starts_with("GAVEL_POSTGRES_") || k.starts_with("GAVEL_REGISTRY_"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl Drop for Roles {
    fn drop(&mut self) {
        for (user, _) in self.users.values() {
            if let Err(error) = access::remove_kafka_user(&self.admin, user) {
                eprintln!("removing Kafka user {user}: {error}");
            }
        }
    }
}
