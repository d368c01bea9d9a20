//! A Postgres role of a test's own, with rights on that test's schemas only.
//! A worker runs as it; the test then takes a right away (a fatal
//! misconfiguration), caps its connections or ends its sessions (transient
//! outages), without touching any other test's connections.

use super::TestEnv;
use gavel_runtime::postgres;

pub struct TestRole {
    pub name: String,
    password: String,
    /// The configuration the test's own (admin) connections use.
    admin: gavel_runtime::Config,
    dropped: bool,
}

impl TestRole {
    /// A login role with every right on `schemas` (already migrated by the
    /// admin) and CREATE on the database, which the workers' migration step
    /// asks for even when every migration is applied.
    pub async fn create(env: &TestEnv, schemas: &[&str]) -> Self {
        let name = format!("{}_role", env.config.postgres_schema);
        let password = format!("pw-{name}");
        let client = env.pg().await;
        let database: String = client
            .query_one("SELECT current_database()", &[])
            .await
            .expect("database name")
            .get(0);
        let mut sql = format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{password}';
             GRANT CONNECT, CREATE ON DATABASE {database} TO {name};"
        );
        for schema in schemas {
            sql.push_str(&format!(
                "GRANT ALL ON SCHEMA {schema} TO {name};
                 GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {name};
                 GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema} TO {name};"
            ));
        }
        client.batch_execute(&sql).await.expect("create test role");
        Self {
            name,
            password,
            admin: env.config.clone(),
            dropped: false,
        }
    }

    /// `migrations` applied to the test's schema by the admin, then a role
    /// with every right on it.
    pub async fn on_migrated_schema(env: &TestEnv, migrations: &[postgres::Migration]) -> Self {
        let mut client = env.pg().await;
        let schema = &env.config.postgres_schema;
        postgres::migrate(&mut client, schema, migrations)
            .await
            .expect("migrate the test's schema");
        Self::create(env, &[schema]).await
    }

    /// The test's Postgres URL with this role as the user.
    pub fn url(&self) -> String {
        let url = &self.admin.postgres_url;
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (_, host) = rest.split_once('@').expect("a URL with a user");
        format!("{scheme}://{}:{}@{host}", self.name, self.password)
    }

    /// The test's configuration, connecting as this role.
    pub fn config(&self, config: &gavel_runtime::Config) -> gavel_runtime::Config {
        let mut config = config.clone();
        config.postgres_url = self.url();
        config
    }

    /// Runs `sql` as the admin, `{role}` standing for this role.
    pub async fn admin(&self, sql: &str) {
        let client = postgres::connect(&self.admin).await.expect("admin");
        client
            .batch_execute(&sql.replace("{role}", &self.name))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Ends every session of this role and refuses it new ones (too many
    /// connections for role, SQLSTATE 53300) until [`TestRole::let_in`]:
    /// a worker's next statement finds its connection gone and cannot make
    /// another. Returns how many sessions were ended.
    pub async fn cut_off(&self) -> i64 {
        self.admin("ALTER ROLE {role} CONNECTION LIMIT 0").await;
        let client = postgres::connect(&self.admin).await.expect("admin");
        let row = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
                &[&self.name],
            )
            .await
            .expect("terminate sessions");
        row.get(0)
    }

    /// Sessions of this role started from now on cancel a statement that
    /// runs longer than `timeout` (SQLSTATE 57014).
    pub async fn set_statement_timeout(&self, timeout: &str) {
        self.admin(&format!(
            "ALTER ROLE {{role}} SET statement_timeout = '{timeout}'"
        ))
        .await;
    }

    /// Holds `table` locked against every other session (reads included)
    /// until the lock is released.
    pub async fn lock_table(&self, table: &str) -> TableLock {
        let client = postgres::connect(&self.admin).await.expect("admin");
        client
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
            ))
            .await
            .expect("lock the table");
        TableLock { client }
    }

    /// Lets the role connect again after [`TestRole::cut_off`].
    pub async fn let_in(&self) {
        self.admin("ALTER ROLE {role} CONNECTION LIMIT -1").await;
    }

    pub async fn drop_role(mut self) {
        drop_role(&self.admin, &self.name).await;
        self.dropped = true;
    }
}

/// A table lock held by a transaction of the test's own.
pub struct TableLock {
    client: tokio_postgres::Client,
}

impl TableLock {
    pub async fn release(self) {
        self.client
            .batch_execute("COMMIT")
            .await
            .expect("release the lock");
    }
}

async fn drop_role(admin: &gavel_runtime::Config, name: &str) {
    let Ok(client) = postgres::connect(admin).await else {
        return;
    };
    let _ = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&name],
        )
        .await;
    let _ = client
        .batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}"))
        .await;
}

/// A test that panics still removes its role (on a thread of its own, as
/// `TestEnv` removes its topics).
impl Drop for TestRole {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        super::block_on_own_thread(async move { drop_role(&admin, &name).await });
    }
}
