//! The Postgres half of the access table: each role's grants on the objects of
//! a configuration's schemas, applied by `gavel migrate` (as the owner) after
//! the migrations, and again on a table a rebuild swapped in (a new table has
//! no grants of its own). A role that does not exist is left out and named:
//! its login, password and existence are the database administrator's (the
//! local stack, compose and the local overlay create them).

use super::{postgres_role, AccessTable, PostgresRight};
use crate::{Config, Result};
use tokio_postgres::GenericClient;

/// One GRANT for one Postgres role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: String,
    pub sql: String,
}

/// Every grant the table gives on objects of `config`'s schemas, or only on
/// `object` (`schema.table`) when given.
pub fn grants(table: &AccessTable, config: &Config, object: Option<&str>) -> Result<Vec<Grant>> {
    let mut grants = Vec::new();
    for role in table.roles() {
        let pg_role = postgres_role(role);
        let mut schemas: Vec<&str> = Vec::new();
        let rights = table.rights(role, config)?;
        for right in &rights.postgres {
            let (name, sql) = match right {
                PostgresRight::Table { name, privileges } => (
                    name,
                    format!(
                        "GRANT {} ON TABLE {name} TO {pg_role}",
                        privileges.join(", ")
                    ),
                ),
                PostgresRight::Sequence { name } => {
                    (name, format!("GRANT USAGE ON SEQUENCE {name} TO {pg_role}"))
                }
                PostgresRight::Owner { .. } => continue,
            };
            if object.is_some_and(|o| o != name) {
                continue;
            }
            let schema = name.split('.').next().unwrap_or_default();
            if !schemas.contains(&schema) {
                schemas.push(schema);
                grants.push(Grant {
                    role: pg_role.clone(),
                    sql: format!("GRANT USAGE ON SCHEMA {schema} TO {pg_role}"),
                });
            }
            grants.push(Grant {
                role: pg_role.clone(),
                sql,
            });
        }
    }
    Ok(grants)
}

/// What applying the grants did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub statements: usize,
    /// Roles the table names that this database does not have.
    pub missing_roles: Vec<String>,
}

/// Applies `grants(table, config, object)` for the roles that exist. Inside a
/// caller's transaction when `client` is one (a rebuild's swap).
pub async fn apply(
    client: &impl GenericClient,
    config: &Config,
    object: Option<&str>,
) -> Result<Applied> {
    let table = AccessTable::builtin()?;
    let grants = grants(&table, config, object)?;
    let existing: Vec<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Applied::default();
    for grant in grants {
        if existing.contains(&grant.role) {
            client.batch_execute(&grant.sql).await?;
            applied.statements += 1;
        } else if !applied.missing_roles.contains(&grant.role) {
            applied.missing_roles.push(grant.role);
        }
    }
    Ok(applied)
}
