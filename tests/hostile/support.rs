//! What the hostile-input attacks need: commands encoded exactly as a
//! third-party producer could write them (any values, any key, any
//! partition, any schema id), a watch on the outcome topic that says how fast
//! an answer came, a process's resident memory, and the dead letters.

use crate::common::process::{read_all, RawRecord};
use crate::common::{unique, TestEnv};
use apache_avro::types::Value;
use gavel_domain::auction::{AuctionCommand, CreateAuction, PlaceBid, StartAuction};
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_runtime::auction_codec::{
    command_record_name, command_to_avro, outcome_from_avro, CommandOutcome,
};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::CommandMeta;
use gavel_runtime::kafka;
use gavel_runtime::partitioner::partition_for;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const TENANT: &str = "t-hostile";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("non-negative")
}

pub fn meta(command_id: &str, actor: &str) -> CommandMeta {
    let mut meta = CommandMeta::new(TenantId::new(TENANT), UserId::new(actor));
    meta.command_id = command_id.to_owned();
    meta.correlation_id = command_id.to_owned();
    meta
}

pub fn create(id: &str, seller: &str, title: &str, end_time: i64) -> AuctionCommand {
    AuctionCommand::Create(CreateAuction {
        auction_id: AuctionId::new(id),
        seller_id: UserId::new(seller),
        title: title.to_owned(),
        starting_price: eur(1_000),
        reserve_price: None,
        min_increment: eur(100),
        end_time: Timestamp::from_millis(end_time),
    })
}

pub fn start(id: &str) -> AuctionCommand {
    AuctionCommand::Start(StartAuction {
        auction_id: AuctionId::new(id),
    })
}

pub fn bid(id: &str, bidder: &str, minor: i64) -> AuctionCommand {
    AuctionCommand::PlaceBid(PlaceBid {
        auction_id: AuctionId::new(id),
        bidder_id: UserId::new(bidder),
        amount: eur(minor),
        max_amount: None,
    })
}

/// Writes command records the way any producer with the topic's rights could.
pub struct Attacker {
    producer: ThreadedProducer<DefaultProducerContext>,
    codec: AvroCodec,
    topic: String,
    partitions: i32,
}

impl Attacker {
    pub fn new(env: &TestEnv) -> Self {
        Self {
            producer: kafka::producer_config(&env.config)
                .create()
                .expect("producer"),
            codec: AvroCodec::new(&env.config.registry),
            topic: env.config.topics.commands.clone(),
            partitions: env.config.partitions,
        }
    }

    /// The command's Avro bytes under its registered schema, then `edit`ed.
    pub async fn encode(
        &self,
        command: &AuctionCommand,
        meta: &CommandMeta,
        edit: impl FnOnce(&mut Vec<(String, Value)>),
    ) -> Vec<u8> {
        let writer = self
            .codec
            .writer_for(&self.topic, &command_record_name(command))
            .await
            .expect("command schema");
        let Value::Record(mut fields) = command_to_avro(command, meta) else {
            unreachable!("commands are records")
        };
        edit(&mut fields);
        writer.encode(&Value::Record(fields)).expect("encodes")
    }

    /// A well-formed command on its own key and murmur2 partition.
    pub async fn send(&self, command: &AuctionCommand, meta: &CommandMeta) {
        self.enqueue(command, meta).await;
        self.flush();
    }

    /// `send` without waiting for the broker (then `flush`).
    pub async fn enqueue(&self, command: &AuctionCommand, meta: &CommandMeta) {
        let payload = self.encode(command, meta, |_| {}).await;
        let key = command.auction_id().as_str();
        let record = BaseRecord::to(&self.topic)
            .key(key)
            .partition(self.partition_of(key))
            .payload(&payload)
            .headers(meta.headers(command.type_name()));
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    pub fn flush(&self) {
        self.producer.flush(Duration::from_secs(30)).expect("flush");
    }

    pub fn partition_of(&self, key: &str) -> i32 {
        partition_for(key.as_bytes(), self.partitions)
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Any bytes, any key, any partition.
    pub fn raw(&self, key: &str, partition: i32, payload: &[u8], headers: OwnedHeaders) {
        self.producer
            .send(
                BaseRecord::to(&self.topic)
                    .key(key)
                    .partition(partition)
                    .payload(payload)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("send");
        self.producer.flush(Duration::from_secs(10)).expect("flush");
    }
}

/// Reads the outcome topic from its end as of creation.
pub struct Outcomes {
    consumer: BaseConsumer,
    codec: AvroCodec,
    seen: Vec<CommandOutcome>,
}

impl Outcomes {
    pub fn watch(env: &TestEnv) -> Self {
        let topic = &env.config.topics.outcomes;
        let mut client = kafka::client_config(&env.config);
        client
            .set("group.id", unique("outcomes"))
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer = client.create().expect("consumer");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..env.config.partitions {
            let (_, high) = kafka::retry_leaderless(|| {
                consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))
            })
            .expect("watermarks");
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(high))
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        Self {
            consumer,
            codec: AvroCodec::new(&env.config.registry),
            seen: Vec::new(),
        }
    }

    /// The outcome of `command_id`, waiting at most `timeout`.
    pub async fn of(&mut self, command_id: &str, timeout: Duration) -> Option<CommandOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.seen.iter().find(|o| o.command_id == command_id) {
                return Some(found.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            if let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(20)) {
                let payload = message.payload().unwrap_or_default().to_vec();
                let decoded = self.codec.decode(&payload).await.expect("outcome decodes");
                self.seen
                    .push(outcome_from_avro(decoded.value).expect("outcome maps"));
            }
        }
    }

    /// The rejection code of `command_id`'s outcome (panics without one in 30 s).
    pub async fn code(&mut self, command_id: &str) -> String {
        let outcome = self
            .of(command_id, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no outcome for {command_id}"));
        outcome
            .rejection_code
            .unwrap_or_else(|| "ACCEPTED".to_owned())
    }
}

/// Resident memory of a process, in MiB (from /proc).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// Dead letters of the command topic whose class is `class`.
pub fn letters(env: &TestEnv, class: &str) -> Vec<RawRecord> {
    let dlq = gavel_runtime::dlq::topic_for(&env.config.topics.commands);
    read_all(env, &dlq)
        .into_iter()
        .filter(|r| r.header(gavel_runtime::dlq::header::ERROR_CLASS) == Some(class))
        .collect()
}
