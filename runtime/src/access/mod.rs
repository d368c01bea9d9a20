//! Least privilege: every right of every role in Kafka, Postgres and the schema
//! registry, from one declarative table (`deploy/access.txt`). The table names
//! topics and groups through the settings (`{commands}`, `{sink_group}`, ...),
//! so one table serves the deployed names and a test's private pipeline alike.
//! `gavel access apply` turns it into SCRAM users and ACLs, `gavel migrate` into
//! Postgres grants; deploy/validate checks the Kubernetes and compose files
//! against the same table.

pub mod kafka_admin;
mod names;
pub mod postgres_grants;
mod provision;
pub mod strimzi;

pub use names::Names;
pub use provision::{deployed_user, principal, provision_kafka_role, remove_kafka_user};

use crate::{Config, Result, RuntimeError};

/// The table as built into the binary.
pub const TABLE: &str = include_str!("../../../deploy/access.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Kafka,
    Postgres,
    Registry,
}

/// One line of the table: a right of a role, names not yet filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    number: usize,
    role: String,
    system: System,
    resource: String,
    rights: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaResource {
    Topic,
    Group,
    TransactionalId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KafkaOperation {
    Read,
    Write,
    Describe,
    Create,
}

impl KafkaOperation {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "Read" => Some(Self::Read),
            "Write" => Some(Self::Write),
            "Describe" => Some(Self::Describe),
            "Create" => Some(Self::Create),
            _ => None,
        }
    }
}

/// One Kafka ACL (allow, any host) of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaAcl {
    pub resource: KafkaResource,
    pub name: String,
    /// A prefixed pattern (the table's trailing `*`), else literal.
    pub prefixed: bool,
    pub operation: KafkaOperation,
}

/// One Postgres right of a role on an object `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresRight {
    Table {
        name: String,
        privileges: Vec<String>,
    },
    Sequence {
        name: String,
    },
    /// Owns the schema: runs the migrations (or the rebuild's shadow tables).
    Owner {
        schema: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegistryRight {
    Read,
    Write,
}

/// The rights of one role, names filled in from a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleRights {
    pub kafka: Vec<KafkaAcl>,
    pub postgres: Vec<PostgresRight>,
    pub registry: Option<RegistryRight>,
}

#[derive(Debug, Clone)]
pub struct AccessTable {
    lines: Vec<Line>,
}

const PRIVILEGES: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

impl AccessTable {
    /// The table built into this binary.
    pub fn builtin() -> Result<Self> {
        Self::parse(TABLE)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let content = raw.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            lines.push(parse_line(index + 1, content)?);
        }
        Ok(Self { lines })
    }

    /// Every role, in the table's order.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = Vec::new();
        for line in &self.lines {
            if !roles.contains(&line.role.as_str()) {
                roles.push(&line.role);
            }
        }
        roles
    }

    /// The rights of `role` with the names of `config`; an unknown role is an error.
    pub fn rights(&self, role: &str, config: &Config) -> Result<RoleRights> {
        if !self.roles().contains(&role) {
            return Err(RuntimeError::Access(format!(
                "no role {role:?} in the access table (roles: {})",
                self.roles().join(", ")
            )));
        }
        let names = Names::of(config);
        let mut rights = RoleRights::default();
        for line in self.lines.iter().filter(|l| l.role == role) {
            for resource in names.expand(&line.resource).map_err(|e| at(line, &e))? {
                add_right(&mut rights, line, &resource)?;
            }
        }
        Ok(rights)
    }
}

fn at(line: &Line, problem: &str) -> RuntimeError {
    RuntimeError::Access(format!("deploy/access.txt line {}: {problem}", line.number))
}

fn parse_line(number: usize, content: &str) -> Result<Line> {
    let words: Vec<&str> = content.split_whitespace().collect();
    let bad = |why: String| RuntimeError::Access(format!("deploy/access.txt line {number}: {why}"));
    let [role, system, resource, rights] = words[..] else {
        return Err(bad(format!(
            "expected ROLE SYSTEM RESOURCE RIGHTS, got {content:?}"
        )));
    };
    let system = match system {
        "kafka" => System::Kafka,
        "postgres" => System::Postgres,
        "registry" => System::Registry,
        other => return Err(bad(format!("unknown system {other:?}"))),
    };
    Ok(Line {
        number,
        role: role.to_owned(),
        system,
        resource: resource.to_owned(),
        rights: rights.split(',').map(str::to_owned).collect(),
    })
}

fn add_right(rights: &mut RoleRights, line: &Line, resource: &str) -> Result<()> {
    match line.system {
        System::Kafka => rights.kafka.extend(kafka_acls(line, resource)?),
        System::Postgres => rights.postgres.push(postgres_right(line, resource)?),
        System::Registry => {
            let right = match line.rights.as_slice() {
                [r] if r == "read" => RegistryRight::Read,
                [r] if r == "write" => RegistryRight::Write,
                other => {
                    return Err(at(
                        line,
                        &format!("registry rights are read or write, got {other:?}"),
                    ))
                }
            };
            rights.registry = rights.registry.max(Some(right));
        }
    }
    Ok(())
}

fn kafka_acls(line: &Line, resource: &str) -> Result<Vec<KafkaAcl>> {
    let (kind, name) = resource.split_once(':').ok_or_else(|| {
        at(
            line,
            "a Kafka resource is topic:, group: or transactional-id:",
        )
    })?;
    let resource = match kind {
        "topic" => KafkaResource::Topic,
        "group" => KafkaResource::Group,
        "transactional-id" => KafkaResource::TransactionalId,
        other => return Err(at(line, &format!("unknown Kafka resource {other:?}"))),
    };
    let (name, prefixed) = match name.strip_suffix('*') {
        Some(prefix) => (prefix, true),
        None => (name, false),
    };
    line.rights
        .iter()
        .map(|word| {
            let operation = KafkaOperation::parse(word)
                .ok_or_else(|| at(line, &format!("unknown Kafka operation {word:?}")))?;
            Ok(KafkaAcl {
                resource,
                name: name.to_owned(),
                prefixed,
                operation,
            })
        })
        .collect()
}

fn postgres_right(line: &Line, resource: &str) -> Result<PostgresRight> {
    let (kind, name) = resource
        .split_once(':')
        .ok_or_else(|| at(line, "a Postgres object is table:, sequence: or schema:"))?;
    match (kind, line.rights.as_slice()) {
        ("schema", [owner]) if owner == "owner" => Ok(PostgresRight::Owner {
            schema: name.to_owned(),
        }),
        ("sequence", [usage]) if usage == "USAGE" => Ok(PostgresRight::Sequence {
            name: name.to_owned(),
        }),
        ("table", privileges) if privileges.iter().all(|p| PRIVILEGES.contains(&p.as_str())) => {
            Ok(PostgresRight::Table {
                name: name.to_owned(),
                privileges: privileges.to_vec(),
            })
        }
        _ => Err(at(
            line,
            &format!("{kind}: takes owner (schema), USAGE (sequence) or {PRIVILEGES:?} (table)"),
        )),
    }
}

/// The Kafka principal of a role: `User:<prefix><role>` (`gavel-` when deployed).
pub fn kafka_user(prefix: &str, role: &str) -> String {
    format!("{prefix}{role}")
}

/// The Postgres role of a role: `gavel_query_api` for `query-api`.
pub fn postgres_role(role: &str) -> String {
    format!("gavel_{}", role.replace('-', "_"))
}

#[cfg(test)]
mod tests;
