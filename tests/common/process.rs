//! Workers as real processes (the `gavel` binary), for tests that kill -9,
//! SIGSTOP and restart them; and full reads of a topic with record metadata.

use super::TestEnv;
use gavel_runtime::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Worker {
    pub child: Child,
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: std::path::PathBuf,
}

impl Worker {
    /// `gavel <role>` (words split on spaces) with this test's topics, groups and schema.
    pub fn spawn(env: &TestEnv, role: &str, instance: &str) -> Self {
        Self::spawn_with_env(env, role, instance, &[])
    }

    /// `spawn` with extra environment variables (fault injection).
    pub fn spawn_with_env(
        env: &TestEnv,
        role: &str,
        instance: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::spawn_binary(
            env,
            Path::new(env!("CARGO_BIN_EXE_gavel")),
            role,
            instance,
            extra,
        )
    }

    /// `spawn_with_env` of another `gavel` binary (an older release).
    pub fn spawn_binary(
        env: &TestEnv,
        binary: &Path,
        role: &str,
        instance: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let c = &env.config;
        let log_dir = std::env::temp_dir().join("gavel-test-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        // One file per spawn, so a restarted worker does not erase its predecessor's log.
        let name = format!(
            "{}-{}-{instance}-{}.log",
            c.instance_id,
            role.replace(' ', "-"),
            super::unique("")
        );
        let log_path = log_dir.join(name);
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(binary)
            .args(role.split_whitespace())
            // The whole configuration (security settings included), then
            // what this spawn overrides.
            .envs(c.to_env())
            .env("GAVEL_INSTANCE_ID", instance)
            .env("GAVEL_BATCH_LINGER_MS", "5")
            .env("GAVEL_LOG", "info")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn gavel");
        Self {
            child,
            name: format!("{role}/{instance}"),
            log: log_path,
        }
    }

    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "kill -{signal} {}",
            self.name
        );
    }

    /// Waits until the process has exited on its own (true) or `timeout` passed.
    pub fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits until the process exits on its own; its exit status and log.
    /// Panics if it is still running after `timeout`.
    pub fn exit_within(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return (status, log);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} still running after {timeout:?}", self.name);
    }

    /// The last lines of its log, for an assertion message: a failure on a
    /// machine we cannot log into must say what the worker said.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn stop(mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "{} exited with {status}; {}",
                    self.name,
                    self.log_tail()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not stop within 30 s of SIGTERM; {}",
            self.name,
            self.log_tail()
        );
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl RawRecord {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn headers_of(message: &impl Message) -> Vec<(String, String)> {
    use rdkafka::message::Headers;
    let Some(headers) = message.headers() else {
        return Vec::new();
    };
    headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default());
            (h.key.to_owned(), value.into_owned())
        })
        .collect()
}

/// Every committed record of `topic`, in partition order, read to the end.
pub fn read_all(env: &TestEnv, topic: &str) -> Vec<RawRecord> {
    read_all_as(env, &env.config, &super::unique("reader"), topic)
}

/// Every command outcome on the outcome topic, decoded, in partition order.
pub async fn outcomes_on_topic(
    env: &TestEnv,
    codec: &gavel_runtime::avro::AvroCodec,
) -> Vec<gavel_runtime::auction_codec::CommandOutcome> {
    let mut outcomes = Vec::new();
    for record in read_all(env, &env.config.topics.outcomes) {
        let decoded = codec
            .decode(&record.payload)
            .await
            .expect("outcome decodes");
        outcomes.push(
            gavel_runtime::auction_codec::outcome_from_avro(decoded.value).expect("outcome maps"),
        );
    }
    outcomes
}

/// `read_all` as `config`'s principal, in consumer group `group`.
pub fn read_all_as(
    env: &TestEnv,
    config: &gavel_runtime::Config,
    group: &str,
    topic: &str,
) -> Vec<RawRecord> {
    let mut client = kafka::client_config(config);
    client
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<kafka::EofAware> = client
        .create_with_context(kafka::EofAware)
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..env.config.partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < env.config.partitions as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => records.push(RawRecord {
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: headers_of(&m),
            }),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// Runs `deploy/local/stack.sh <command>`, its output captured; panics if it fails.
pub fn stack_sh(command: &str) -> std::process::Output {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/stack.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(command)
        .output()
        .expect("run stack.sh");
    assert!(
        output.status.success(),
        "stack.sh {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `stack.sh <command>`'s output, trimmed (e.g. `credentials-dir`).
pub fn stack_text(command: &str) -> String {
    String::from_utf8(stack_sh(command).stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// `stack.sh <command>`'s KEY=VALUE lines (e.g. `tls-env`: the settings that
/// point a worker at the stack's secured listeners).
pub fn stack_settings(command: &str) -> Vec<(String, String)> {
    stack_text(command)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Stops and starts the local stack's Postgres (data kept), for outage tests.
pub fn restart_postgres() {
    stack_sh("restart-postgres");
}
