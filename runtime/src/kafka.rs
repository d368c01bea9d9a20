//! Kafka client settings in one place, plus topic administration.

use crate::{Config, Result, RuntimeError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use std::time::Duration;

/// Settings every client shares.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("client.id", format!("gavel-{}", config.instance_id))
        .set("socket.nagle.disable", "true");
    config.kafka_security.apply(&mut client);
    client
}

/// The group of a reader that never commits (it assigns partitions itself):
/// `<GAVEL_READER_GROUP>.<name>`. librdkafka needs a group for any assigned
/// consumer, and the broker checks it: one prefix keeps their ACLs to one line.
pub fn reader_group(config: &Config, name: &str) -> String {
    format!("{}.{name}", config.reader_group)
}

/// A group consumer that commits explicitly and reads only committed transactions.
pub fn consumer_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut client = client_config(config);
    client
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "10")
        // Bound what librdkafka pre-fetches (100,000 records and 64 MiB by
        // default, on top of 50 MiB fetch responses): two batches queued
        // keep a worker fed. 16 MiB (GAVEL_PREFETCH_KBYTES) is where the view
        // sink, far behind, stops gaining (8 MiB cost it a fifth). A fetch
        // response is half the queue, and at least the 1 MiB partition
        // fetch, so any record fits.
        .set("queued.min.messages", (2 * config.batch_max).to_string())
        .set(
            "queued.max.messages.kbytes",
            config.prefetch_kbytes.to_string(),
        )
        .set(
            "fetch.max.bytes",
            (config.prefetch_kbytes * 512).max(1 << 20).to_string(),
        );
    client
}

/// A worker's group consumer: [`consumer_config`] with the group protocol and
/// membership of `GAVEL_GROUP_MEMBERSHIP` (static by default, so a restarted
/// replica takes its partitions back at once: see `membership`).
/// `co_partitioned`: partition p of every subscribed topic goes to one member.
pub fn member_config(config: &Config, group_id: &str, co_partitioned: bool) -> ClientConfig {
    let mut client = consumer_config(config, group_id);
    config
        .membership
        .apply(&mut client, &config.instance_id, co_partitioned);
    client
}

/// An idempotent producer for commands (no transactions: each send is acked by all ISR).
pub fn producer_config(config: &Config) -> ClientConfig {
    let mut client = client_config(config);
    client
        // Java clients' partitioner, so every producer in any language agrees
        // on which partition an aggregate id lives in.
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "500000");
    client
}

/// The outbox relay's idempotent producer. Deliveries never time out:
/// librdkafka retries in order through an outage, because an expired record
/// leaves a gap in the partition that a later re-send would fill out of order.
/// Topics are never auto-created, so a row naming a missing topic fails (after
/// the metadata propagation grace) instead of inventing the topic.
pub fn relay_producer_config(config: &Config) -> ClientConfig {
    let mut client = producer_config(config);
    client
        .set("message.timeout.ms", "0")
        .set("allow.auto.create.topics", "false")
        .set("topic.metadata.propagation.max.ms", "10000");
    client
}

/// A transactional producer. The transaction timeout is short on purpose: a
/// crashed writer's open transaction holds back read_committed consumers (the
/// LSO) until the broker aborts it, so we bound that stall.
pub fn transactional_producer_config(config: &Config, transactional_id: &str) -> ClientConfig {
    let mut client = producer_config(config);
    client
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "10000")
        // The commit waits for the last record's acknowledgement, so the
        // last record's linger is paid by every transaction.
        .set("linger.ms", "1")
        // Right after a commit the coordinator answers CONCURRENT_TRANSACTIONS
        // until its markers are written; the default 100 ms backoff would stall
        // every transaction by that much (Java clients retry this after 20 ms).
        .set("retry.backoff.ms", "5")
        .set("retry.backoff.max.ms", "100");
    client
}

/// A consumer that replays assigned partitions from the start to their end
/// (end-of-partition events on, committed data only, large fetches, no
/// commits): state restore and read-model rebuild.
pub fn replay_config(config: &Config, group_id: &str) -> ClientConfig {
    let mut client = client_config(config);
    client
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        // Pre-fetch bounded like a worker's consumer (GAVEL_PREFETCH_KBYTES,
        // not librdkafka's 64 MiB): a restore then leaves no larger
        // high-water mark in the C heap.
        .set(
            "queued.max.messages.kbytes",
            config.prefetch_kbytes.to_string(),
        )
        .set("fetch.wait.max.ms", "10");
    client
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub configs: Vec<(&'static str, &'static str)>,
}

/// The broker stamps commands on append: the aggregate decides with that time,
/// which a client cannot forge and which a replay of the log reproduces exactly.
const BROKER_TIME: [(&str, &str); 1] = [("message.timestamp.type", "LogAppendTime")];
const COMPACTED: [(&str, &str); 2] = [
    ("cleanup.policy", "compact"),
    ("min.compaction.lag.ms", "0"),
];

/// The topics of the auction pipeline, all with the same partition count so a
/// command's partition, its events', its state's and its views' are the same
/// number (the projector restores its state from its own view topic); plus the
/// dead-letter topics of the consumed ones.
pub fn auction_topics(config: &Config) -> Vec<TopicSpec> {
    let t = &config.topics;
    let spec = |name: &str, configs: &[(&'static str, &'static str)]| TopicSpec {
        name: name.to_owned(),
        partitions: config.partitions,
        configs: configs.to_vec(),
    };
    let mut topics = vec![
        spec(&t.commands, &BROKER_TIME),
        spec(&t.events, &[]),
        spec(&t.outcomes, &[]),
        spec(&t.changelog, &COMPACTED),
        spec(&t.view_details, &COMPACTED),
        spec(&t.view_list, &COMPACTED),
        spec(&t.view_user_bids, &COMPACTED),
    ];
    let mut consumed = vec![
        t.commands.clone(),
        t.events.clone(),
        t.view_details.clone(),
        t.view_list.clone(),
        t.view_user_bids.clone(),
        t.orders.clone(),
    ];
    topics.push(spec(&t.orders, &[]));
    for kind in SAGA_KINDS {
        topics.push(spec(&t.saga(kind, "changelog"), &COMPACTED));
        topics.push(spec(&t.saga(kind, "milestones"), &[]));
        topics.push(spec(&t.saga(kind, "failed"), &[]));
        consumed.push(t.saga(kind, "replies"));
    }
    for participant in gavel_domain::saga::Participant::ALL {
        consumed.push(t.participant_commands(participant.as_str()));
    }
    for topic in &consumed[6..] {
        topics.push(spec(topic, &[]));
    }
    let dead_letters = consumed
        .iter()
        .map(|topic| spec(&crate::dlq::topic_for(topic), &[]));
    topics.extend(dead_letters);
    // The outbox relay's letters name topics that may not exist, so they
    // share one dead-letter topic instead of a `.dlq` each.
    topics.push(spec(&config.outbox_dlq_topic, &[]));
    topics
}

/// The saga definitions the orchestrator runs (`gavel saga <kind>`).
pub const SAGA_KINDS: [&str; 2] = ["payment", "order"];

/// The names of every topic `auction_topics` creates.
pub fn auction_topic_names(config: &Config) -> Vec<String> {
    auction_topics(config).into_iter().map(|s| s.name).collect()
}

/// The topics of `auction_topics` that exist on the cluster now (blocking).
pub fn existing_auction_topics(config: &Config) -> Result<Vec<String>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client_config(config).create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    let on_cluster: std::collections::HashSet<&str> =
        metadata.topics().iter().map(|t| t.name()).collect();
    Ok(auction_topic_names(config)
        .into_iter()
        .filter(|name| on_cluster.contains(name.as_str()))
        .collect())
}

/// Deletes every topic `auction_topics` creates (tests and benchmarks).
pub async fn delete_auction_topics(config: &Config) -> Result<()> {
    let names = auction_topic_names(config);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    delete_topics(config, &names).await
}

/// How many partitions `topic` has (an error when it does not exist). A topic
/// created a moment ago may not be in every broker's metadata yet, so a missing
/// one is looked up again for a few seconds before that counts as absent.
/// How long a metadata call is tried again while a partition has no leader.
const LEADERLESS_FOR_AT_MOST: Duration = Duration::from_secs(10);

/// Runs a metadata call (watermarks, metadata) again, for up to 10 s, while it
/// fails only because a partition has no leader yet: right after its topic was
/// created, or while the broker moves leadership, the broker answers
/// NotLeaderForPartition / LeaderNotAvailable for a moment. A worker starting
/// then must wait, not exit (the command API did, in the benchmark).
pub fn retry_leaderless<T>(mut call: impl FnMut() -> rdkafka::error::KafkaResult<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + LEADERLESS_FOR_AT_MOST;
    loop {
        match call() {
            Err(error) if is_leaderless(&error) && std::time::Instant::now() < deadline => {
                tracing::debug!(%error, "partition without a leader yet; asking again");
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return Ok(other?),
        }
    }
}

fn is_leaderless(error: &rdkafka::error::KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
        )
    )
}

pub fn partition_count(config: &Config, topic: &str) -> Result<i32> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client_config(config).create()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metadata =
            retry_leaderless(|| consumer.fetch_metadata(Some(topic), Duration::from_secs(10)))?;
        let refused = metadata.topics().iter().any(|t| {
            t.name() == topic
                && t.error() == Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        });
        if refused {
            return Err(RuntimeError::Admin(format!(
                "topic {topic}: not authorized ({}; rights: deploy/access.txt)",
                config.kafka_security.describe()
            )));
        }
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if count > 0 {
            return Ok(count);
        }
        if std::time::Instant::now() > deadline {
            return Err(RuntimeError::Admin(format!(
                "topic {topic} does not exist (run `gavel topics create`)"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn admin(config: &Config) -> Result<AdminClient<DefaultClientContext>> {
    Ok(client_config(config).create()?)
}

/// Creates the topics; ones that already exist are left alone. Returns the names created.
pub async fn create_topics(config: &Config, specs: &[TopicSpec]) -> Result<Vec<String>> {
    let admin = admin(config)?;
    let topics: Vec<NewTopic> = specs
        .iter()
        .map(|s| {
            let topic = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(config.replication_factor),
            );
            s.configs.iter().fold(topic, |t, (k, v)| t.set(k, v))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut created = Vec::new();
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(RuntimeError::Admin(format!("creating {name}: {code}")))
            }
        }
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let config = config.clone();
    tokio::task::spawn_blocking(move || wait_until_visible(&config, &names))
        .await
        .map_err(|e| RuntimeError::Admin(format!("waiting for topic metadata: {e}")))??;
    Ok(created)
}

/// Waits until every topic is in the cluster metadata with a leader for each
/// partition: a worker started right after `create_topics` (an init job, a
/// test) must find them, and a freshly created topic takes a moment to appear.
fn wait_until_visible(config: &Config, names: &[String]) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client_config(config).create()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        let ready = |name: &String| {
            metadata.topics().iter().any(|t| {
                t.name() == name.as_str()
                    && t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        };
        let missing: Vec<&String> = names.iter().filter(|n| !ready(n)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(RuntimeError::Admin(format!(
                "topics not visible in the cluster metadata after 30 s: {missing:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub async fn delete_topics(config: &Config, names: &[&str]) -> Result<()> {
    let admin = admin(config)?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.delete_topics(names, &options).await? {
        if let Err((name, code)) = result {
            if code != RDKafkaErrorCode::UnknownTopicOrPartition {
                return Err(RuntimeError::Admin(format!("deleting {name}: {code}")));
            }
        }
    }
    Ok(())
}

/// A consumer context that notes revoked partitions, so a worker can release
/// their state (or cached offsets) after `poll` returns, and counts
/// revocations, so a worker can tell that one happened in the middle of a
/// transaction: its new owner may already be reading the committed offsets,
/// so that transaction must abort, not commit records of a partition it lost.
#[derive(Default, Clone)]
pub struct RevocationLog {
    revoked: std::sync::Arc<std::sync::Mutex<Vec<i32>>>,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl rdkafka::ClientContext for RevocationLog {}

impl rdkafka::consumer::ConsumerContext for RevocationLog {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(list) = rebalance {
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(list.elements().iter().map(|e| e.partition()));
            }
            self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl RevocationLog {
    /// The partitions revoked since the last call.
    pub fn take(&self) -> Vec<i32> {
        self.revoked
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// How many revocations this consumer has seen: compare two readings to
    /// learn whether one happened in between.
    pub fn revocations(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A client context for readers that ask for end-of-partition events: those
/// are expected, so they are not logged as errors like other client errors.
#[derive(Default, Clone, Copy)]
pub struct EofAware;

impl rdkafka::ClientContext for EofAware {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::KafkaError;
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(%error, reason, "kafka client error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofAware {}
