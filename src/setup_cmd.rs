//! The set-up steps that need more than a worker's rights: `gavel migrate`
//! (the schema's owner: tables, then each role's grants) and `gavel access`
//! (Kafka SCRAM users and ACLs, from deploy/access.txt).

use anyhow::{Context, Result};
use gavel_runtime::access::{self, kafka_admin::KafkaAdmin, postgres_grants, AccessTable};
use gavel_runtime::{postgres, Config};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum AccessAction {
    /// Give every role its Kafka ACLs (idempotent: existing ones stay). With
    /// --credentials DIR, also create or re-key the SCRAM user named in each
    /// DIR/<role>.env (a GAVEL_CONFIG file); without, users `gavel-<role>`.
    Apply {
        #[arg(long)]
        credentials: Option<PathBuf>,
    },
    /// Print each role's rights under this configuration's names.
    Show { role: Option<String> },
    /// Print every role's Kafka rights as Strimzi KafkaUsers
    /// (deploy/k8s/strimzi/users.yaml).
    Strimzi,
}

/// What `apply_migrations` did.
pub struct Migrated {
    pub read_side: Vec<i32>,
    pub outbox: Vec<i32>,
    pub grants: postgres_grants::Applied,
}

/// Applies the read side's and the outbox's migrations, then grants.
pub async fn apply_migrations(config: &Config) -> Result<Migrated> {
    let mut client = postgres::connect(config)
        .await
        .context("connecting to Postgres as the schema owner")?;
    let schema = &config.postgres_schema;
    // The command API's idempotency keys live beside the read side's tables.
    let mut read_side = gavel_sinks::migrations();
    read_side.extend(gavel_producers::command_api::migrations());
    let read_side = postgres::migrate(&mut client, schema, &read_side).await?;
    let outbox = gavel_producers::outbox::migrations();
    let outbox = postgres::migrate(&mut client, &config.outbox_schema, &outbox).await?;
    let grants = postgres_grants::apply(&client, config, None).await?;
    Ok(Migrated {
        read_side,
        outbox,
        grants,
    })
}

/// `gavel migrate`: `apply_migrations`, reported.
pub async fn migrate(config: &Config) -> Result<()> {
    let Migrated {
        read_side,
        outbox,
        grants,
    } = apply_migrations(config).await?;
    println!(
        "migrated {} ({} applied now) and {} ({} applied now); {} grants",
        config.postgres_schema,
        read_side.len(),
        config.outbox_schema,
        outbox.len(),
        grants.statements
    );
    if !grants.missing_roles.is_empty() {
        eprintln!(
            "warning: no such Postgres roles, so no grants for them: {} \
             (create them with LOGIN and a password, then run `gavel migrate` again)",
            grants.missing_roles.join(", ")
        );
    }
    Ok(())
}

pub fn access(config: &Config, action: AccessAction) -> Result<()> {
    let table = AccessTable::builtin()?;
    match action {
        AccessAction::Show { role } => {
            let roles = match role {
                Some(role) => vec![role],
                None => table.roles().into_iter().map(str::to_owned).collect(),
            };
            for role in roles {
                println!("{role}: {:#?}", table.rights(&role, config)?);
            }
        }
        AccessAction::Apply { credentials } => apply(config, &table, credentials.as_deref())?,
        AccessAction::Strimzi => print!("{}", access::strimzi::kafka_users(&table, config)?),
    }
    Ok(())
}

fn apply(config: &Config, table: &AccessTable, credentials: Option<&Path>) -> Result<()> {
    let admin = KafkaAdmin::new(config)?;
    for role in table.roles() {
        if table.rights(role, config)?.kafka.is_empty() {
            continue;
        }
        let (user, password) = match credentials {
            Some(dir) => match role_credentials(dir, role)? {
                Some(credential) => credential,
                None => continue,
            },
            None => (access::deployed_user(role), None),
        };
        let acls = access::provision_kafka_role(&admin, config, role, &user, password.as_deref())
            .with_context(|| format!("role {role} (Kafka user {user})"))?;
        let made = if password.is_some() {
            "SCRAM user and "
        } else {
            ""
        };
        println!("{role}: {made}{acls} ACLs for User:{user}");
    }
    Ok(())
}

/// The SASL user and password in `dir/<role>.env`; `None` when there is no
/// such file (that role's credentials live elsewhere).
fn role_credentials(dir: &Path, role: &str) -> Result<Option<(String, Option<String>)>> {
    let path = dir.join(format!("{role}.env"));
    if !path.exists() {
        return Ok(None);
    }
    let file = path.to_string_lossy();
    let settings = Config::from_file(&file).with_context(|| format!("reading {file}"))?;
    let security = settings.kafka_security;
    if security.sasl_username.is_empty() {
        // This role reaches Kafka without SASL (compose's set-up step uses
        // the admin listener): it has no user to make.
        return Ok(None);
    }
    Ok(Some((
        security.sasl_username,
        Some(security.sasl_password.expose().to_owned()),
    )))
}
