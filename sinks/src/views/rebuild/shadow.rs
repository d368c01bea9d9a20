//! A view's shadow table, built beside the live one and swapped in. It starts
//! with the live table's columns, constraints and primary key only (the
//! upserts' conflict target); the other indexes are made once the bulk is in,
//! which is cheaper than keeping them up to date row by row. At the swap the
//! indexes take the live table's index names, so names never drift.

use crate::views::View;
use crate::SinkError;
use gavel_runtime::access::postgres_grants;
use gavel_runtime::Config;
use tokio_postgres::{Client, Transaction};

pub struct Shadow {
    pub view: View,
    pub live: String,
    pub name: String,
    /// Secondary indexes not made yet: CREATE statements for the shadow.
    deferred: Vec<String>,
    /// (shadow index, live index name) for the swap.
    renames: Vec<(String, String)>,
}

/// One index of the live table, as Postgres describes it.
struct LiveIndex {
    name: String,
    definition: String,
    primary: bool,
}

impl Shadow {
    pub async fn create(client: &Client, schema: &str, view: View) -> Result<Self, SinkError> {
        let live = view.table(schema);
        let name = format!("{live}_rebuild");
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {name};
                 CREATE TABLE {name} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
            ))
            .await?;
        let mut shadow = Self {
            view,
            live,
            name,
            deferred: Vec::new(),
            renames: Vec::new(),
        };
        for index in live_indexes(client, &shadow.live).await? {
            let shadow_index = format!("{}_rb", index.name);
            let create = shadow.create_statement(&index, &shadow_index)?;
            shadow
                .renames
                .push((format!("{schema}.{shadow_index}"), index.name.clone()));
            if index.primary {
                client
                    .batch_execute(&format!(
                        "{create}; ALTER TABLE {} ADD CONSTRAINT {shadow_index} PRIMARY KEY USING INDEX {shadow_index}",
                        shadow.name
                    ))
                    .await?;
            } else {
                shadow.deferred.push(create);
            }
        }
        Ok(shadow)
    }

    /// `index`'s definition on the shadow table under `shadow_index`.
    fn create_statement(&self, index: &LiveIndex, shadow_index: &str) -> Result<String, SinkError> {
        let (head, method) = index.definition.split_once(" USING ").ok_or_else(|| {
            SinkError::Rebuild(format!("unexpected index definition: {}", index.definition))
        })?;
        let unique = if head.starts_with("CREATE UNIQUE") {
            "UNIQUE "
        } else {
            ""
        };
        Ok(format!(
            "CREATE {unique}INDEX {shadow_index} ON {} USING {method}",
            self.name
        ))
    }

    /// Makes the deferred indexes (before the swap's lock is taken).
    pub async fn finish_indexes(&self, client: &Client) -> Result<(), SinkError> {
        for create in &self.deferred {
            client.batch_execute(create).await?;
        }
        Ok(())
    }

    /// `built`, after dropping `shadows` if it failed: the live tables are
    /// untouched then, and no half-built shadow is left behind (best effort:
    /// the next rebuild of a view drops its shadow anyway).
    pub async fn discard_if_failed<T>(
        client: &Client,
        shadows: &[Shadow],
        built: Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        if built.is_err() {
            for shadow in shadows {
                shadow.discard(client).await;
            }
        }
        built
    }

    async fn discard(&self, client: &Client) {
        let drop = format!("DROP TABLE IF EXISTS {}", self.name);
        if let Err(error) = client.batch_execute(&drop).await {
            tracing::warn!(%error, table = %self.name, "shadow table of a failed rebuild not dropped");
        }
    }

    /// Puts the shadow in the live table's place (inside the swap transaction),
    /// with the grants of the table it replaces: a new table has none, and the
    /// live sink and the query API must not lose theirs for an instant.
    pub async fn swap(&self, tx: &Transaction<'_>, config: &Config) -> Result<(), SinkError> {
        let old = format!("{}_replaced", self.live);
        let bare = |t: &str| t.rsplit('.').next().unwrap_or(t).to_owned();
        let mut sql = format!(
            "ALTER TABLE {live} RENAME TO {}; ALTER TABLE {shadow} RENAME TO {}; DROP TABLE {old};",
            bare(&old),
            bare(&self.live),
            live = self.live,
            shadow = self.name,
        );
        for (shadow_index, live_name) in &self.renames {
            sql.push_str(&format!(
                " ALTER INDEX {shadow_index} RENAME TO {live_name};"
            ));
        }
        tx.batch_execute(&sql).await?;
        postgres_grants::apply(tx, config, Some(&self.live)).await?;
        Ok(())
    }
}

async fn live_indexes(client: &Client, table: &str) -> Result<Vec<LiveIndex>, SinkError> {
    let rows = client
        .query(
            "SELECT c.relname::text, pg_get_indexdef(i.indexrelid), i.indisprimary
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = $1::text::regclass ORDER BY c.relname",
            &[&table],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| LiveIndex {
            name: r.get(0),
            definition: r.get(1),
            primary: r.get(2),
        })
        .collect())
}
