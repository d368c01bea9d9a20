//! The workers over the transports a production deployment uses: Kafka
//! SASL_SSL with SCRAM-SHA-512 and Postgres TLS (sslmode=require, the server's
//! certificate verified against a CA), both served by the local stack
//! (deploy/local/lib/tls.sh). Wrong credentials or an unverifiable certificate
//! stop a worker at once with the reason.

mod common;

use common::process::Worker;
use common::{eventually, TestEnv};
use gavel_runtime::Shutdown;
use std::process::Command;
use std::time::{Duration, Instant};

/// The settings that point a worker at the stack's secured listeners.
fn secured_settings() -> Vec<(String, String)> {
    common::process::stack_settings("tls-env")
}

/// The same settings with this test's application name on the Postgres URL,
/// so its connections can be told apart in pg_stat_ssl.
fn secured_settings_named(application: &str) -> Vec<(String, String)> {
    secured_settings()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "GAVEL_POSTGRES_URL" => (k, format!("{v}&application_name={application}")),
            _ => (k, v),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_runs_over_sasl_ssl_and_postgres_tls() {
    let application = common::unique("tls");
    let env = TestEnv::new_with(2, &secured_settings_named(&application)).await;
    assert_eq!(env.config.kafka_security.protocol.as_str(), "SASL_SSL");
    assert!(env.config.postgres_tls.required);
    // Real processes, configured through the environment as in a container.
    let workers: Vec<Worker> = ["aggregate", "project", "sink"]
        .into_iter()
        .map(|role| Worker::spawn(&env, role, &format!("tls-{role}")))
        .collect();
    let lines = r#"{"type":"CreateAuction","auction_id":"lot-s","seller_id":"sam","title":"Sealed","currency":"EUR","starting_price":1000,"min_increment":100,"ends_in_secs":600}
{"type":"StartAuction","auction_id":"lot-s","actor_id":"sam"}
{"type":"PlaceBid","auction_id":"lot-s","bidder_id":"ann","amount":1500,"currency":"EUR"}
"#;
    let report =
        gavel_producers::produce::run(&env.config, lines.as_bytes(), "t", &Shutdown::new())
            .await
            .expect("produce over SASL_SSL");
    assert_eq!(report.sent, 3);

    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let price = eventually(Duration::from_secs(60), || async {
        let sql = format!(
            "SELECT current_price_minor FROM {schema}.auction_details WHERE auction_id = 'lot-s' AND version = 3"
        );
        client.query_opt(&sql, &[]).await.ok().flatten().map(|r| r.get::<_, i64>(0))
    })
    .await
    .expect("the bid reaches the read model through SASL_SSL and TLS");
    assert_eq!(price, 1500);

    // Every connection of this test (the sink process's and ours) is TLS.
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
            &[&application],
        )
        .await
        .expect("pg_stat_ssl");
    let (connections, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        connections >= 2,
        "the sink and the test are connected: {connections}"
    );
    assert_eq!(encrypted, connections, "a connection without TLS");
    for worker in workers {
        worker.stop();
    }
    env.stop().await;
}

/// Runs `gavel aggregate` with the secured settings changed by `change`;
/// returns its exit status and output once it exits, or fails after 30 s.
fn aggregate_with(change: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gavel"));
    command
        .arg("aggregate")
        .env("GAVEL_METRICS_ADDR", "127.0.0.1:0");
    for (key, value) in secured_settings() {
        command.env(key, value);
    }
    command.envs(change.iter().copied());
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn gavel");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let output = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&output.stderr).into_owned()
                + &String::from_utf8_lossy(&output.stdout);
            return (output.status.success(), text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("gavel aggregate with {change:?} still running after 30 s");
}

#[test]
fn a_rejected_password_or_an_unverified_broker_stops_a_worker_with_the_reason() {
    let (ok, output) = aggregate_with(&[("GAVEL_KAFKA_SASL_PASSWORD", "not-the-password")]);
    assert!(
        !ok,
        "a worker with a wrong password must not start: {output}"
    );
    assert!(
        output.contains("refused the connection") && output.contains("Authentication failed"),
        "{output}"
    );
    assert!(
        !output.contains("not-the-password"),
        "the password leaked: {output}"
    );

    // No CA: the system trust store does not know the stack's CA.
    let (ok, output) = aggregate_with(&[("GAVEL_KAFKA_SSL_CA_LOCATION", "")]);
    assert!(
        !ok,
        "a worker that cannot verify the broker must not start: {output}"
    );
    assert!(output.contains("certificate verify failed"), "{output}");
}

#[tokio::test]
async fn postgres_tls_verifies_the_servers_certificate() {
    let settings = secured_settings();
    let secured = gavel_runtime::Config::defaults()
        .expect("defaults")
        .with_overrides(settings.iter().map(|(k, v)| (k, v.as_str())))
        .expect("secured settings");
    let client = gavel_runtime::postgres::connect(&secured)
        .await
        .expect("TLS connection with the stack's CA");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "sslmode=require connected without TLS");

    // Without the CA, the certificate is not trusted and nothing connects.
    let untrusted = secured
        .with_overrides([("GAVEL_POSTGRES_SSL_ROOT_CERT", "")])
        .expect("config");
    let Err(error) = gavel_runtime::postgres::connect(&untrusted).await else {
        panic!("an unverified server was trusted");
    };
    // The reason sits in the error's source chain (which `anyhow` prints).
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("certificate verify failed"), "{chain}");
}
