//! Hostile input against real `gavel` worker processes on the local stack:
//! every attack of the hostile-input issue is refused or dead-lettered, the
//! next valid command is answered within a second, memory stays bounded.

#[path = "../common/mod.rs"]
mod common;

mod support;

use common::process::{read_all, Worker};
use common::TestEnv;
use gavel_runtime::dlq::header as dlq_header;
use gavel_runtime::registry::RegistryClient;
use rdkafka::message::{Header, OwnedHeaders};
use std::time::{Duration, Instant};
use support::{bid, create, meta, now_ms, rss_mib, start, Attacker, Outcomes};

const SELLER: &str = "sam";
const LIVE: &str = "live-lot";
/// The issue's bound: an attack may cost at most this much resident memory.
const RSS_SLACK_MIB: f64 = 50.0;

/// A pipeline whose aggregate runs as a process, with one auction open for bids.
struct Target {
    env: TestEnv,
    aggregate: Worker,
    attacker: Attacker,
    outcomes: Outcomes,
    last_bid: i64,
}

impl Target {
    async fn new() -> Self {
        let env = TestEnv::new(3).await;
        let aggregate = Worker::spawn(&env, "aggregate", "hostile-0");
        let attacker = Attacker::new(&env);
        let mut outcomes = Outcomes::watch(&env);
        let end = now_ms() + 3_600_000;
        attacker
            .send(
                &create(LIVE, SELLER, "Harbour", end),
                &meta("setup-1", SELLER),
            )
            .await;
        attacker.send(&start(LIVE), &meta("setup-2", SELLER)).await;
        assert_eq!(
            outcomes.code("setup-2").await,
            "ACCEPTED",
            "the live auction starts"
        );
        Self {
            env,
            aggregate,
            attacker,
            outcomes,
            last_bid: 1_000,
        }
    }

    /// An amount above every bid accepted so far.
    fn outbid(&mut self) -> i64 {
        self.last_bid += 1_000;
        self.last_bid
    }

    /// A valid bid right after an attack is answered within a second.
    async fn still_answers(&mut self, after: &str) {
        let id = common::unique("valid-");
        let amount = self.outbid();
        let command = bid(LIVE, "ann", amount);
        let sent = Instant::now();
        self.attacker.send(&command, &meta(&id, "ann")).await;
        let outcome = self.outcomes.of(&id, Duration::from_secs(30)).await;
        let took = sent.elapsed();
        let outcome = outcome.unwrap_or_else(|| panic!("after {after}: no answer to a valid bid"));
        assert!(outcome.accepted, "after {after}: {outcome:?}");
        assert!(
            took <= Duration::from_secs(1),
            "after {after}: the next valid command took {took:?}"
        );
    }

    fn rss(&self) -> f64 {
        rss_mib(self.aggregate.child.id())
    }

    /// Changelog records of the aggregate (all partitions, read to the end).
    fn changelog_records(&self) -> usize {
        read_all(&self.env, &self.env.config.topics.changelog).len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_commands_on_the_topic_are_refused_or_dead_lettered_and_cost_nothing() {
    let mut target = Target::new().await;
    target.still_answers("setup").await;
    let baseline = target.rss();

    out_of_range_values_are_rejected_with_the_field(&mut target).await;
    target.still_answers("out-of-range values").await;
    acting_users_are_checked(&mut target).await;
    target.still_answers("forged actors").await;
    misrouted_commands_are_refused_with_their_own_code(&mut target).await;
    target.still_answers("misrouted commands").await;
    a_malformed_command_is_answered_from_its_body(&mut target).await;
    target.still_answers("a malformed command").await;
    an_oversized_record_is_dead_lettered_without_its_payload(&mut target).await;
    target.still_answers("an oversized record").await;
    a_schema_bomb_is_dead_lettered_without_decoding(&mut target).await;
    target.still_answers("a schema bomb").await;
    assert!(
        target.rss() <= baseline + RSS_SLACK_MIB,
        "schema bomb: RSS {:.1} MiB against a baseline of {baseline:.1}",
        target.rss()
    );
    strangers_do_not_push_out_the_owners_retry_protection(&mut target).await;
    target.still_answers("a cross-tenant flood").await;
    unknown_auctions_leave_no_state(&mut target).await;
    target.still_answers("bids on unknown auctions").await;
    assert!(
        target.rss() <= baseline + RSS_SLACK_MIB,
        "unknown auctions: RSS {:.1} MiB against a baseline of {baseline:.1}",
        target.rss()
    );
    huge_headers_are_not_logged_whole(&mut target).await;
    target.still_answers("huge headers").await;
    target.aggregate.stop();
    target.env.stop().await;
}

async fn out_of_range_values_are_rejected_with_the_field(t: &mut Target) {
    let far = create("far", SELLER, "Far", 10_i64.pow(16));
    t.attacker.send(&far, &meta("far-1", SELLER)).await;
    let nul = create("nul", SELLER, "Nul \u{0} title", now_ms() + 60_000);
    t.attacker.send(&nul, &meta("nul-1", SELLER)).await;
    let max = bid(LIVE, "max", i64::MAX);
    t.attacker.send(&max, &meta("max-1", "max")).await;
    for id in ["far-1", "nul-1", "max-1"] {
        assert_eq!(t.outcomes.code(id).await, "INVALID_FIELD", "{id}");
    }
}

async fn acting_users_are_checked(t: &mut Target) {
    t.attacker.send(&start(LIVE), &meta("anon-1", "")).await;
    let cancel =
        gavel_domain::auction::AuctionCommand::Cancel(gavel_domain::auction::CancelAuction {
            auction_id: gavel_domain::AuctionId::new(LIVE),
            reason: "mine now".into(),
        });
    t.attacker.send(&cancel, &meta("eve-1", "eve")).await;
    t.attacker
        .send(&bid(LIVE, "ann", 1), &meta("forged-1", "eve"))
        .await;
    assert_eq!(t.outcomes.code("anon-1").await, "MISSING_ACTOR");
    assert_eq!(t.outcomes.code("eve-1").await, "NOT_SELLER");
    assert_eq!(t.outcomes.code("forged-1").await, "ACTOR_MISMATCH");
}

async fn misrouted_commands_are_refused_with_their_own_code(t: &mut Target) {
    let command = bid(LIVE, "ann", 950_000);
    let payload = t
        .attacker
        .encode(&command, &meta("key-1", "ann"), |_| {})
        .await;
    let right = t.attacker.partition_of(LIVE);
    t.attacker
        .raw("another-key", right, &payload, OwnedHeaders::new());
    let payload = t
        .attacker
        .encode(&command, &meta("part-1", "ann"), |_| {})
        .await;
    let wrong = (right + 1) % t.attacker.partitions();
    t.attacker.raw(LIVE, wrong, &payload, OwnedHeaders::new());
    assert_eq!(t.outcomes.code("key-1").await, "KEY_MISMATCH");
    assert_eq!(t.outcomes.code("part-1").await, "WRONG_PARTITION");
}

async fn a_malformed_command_is_answered_from_its_body(t: &mut Target) {
    use apache_avro::types::Value;
    let command = bid(LIVE, "ann", 960_000);
    let payload = t
        .attacker
        .encode(&command, &meta("bad-currency-1", "ann"), |fields| {
            for (name, value) in fields.iter_mut() {
                if name == "currency" {
                    *value = Value::String("euro".into());
                }
            }
        })
        .await;
    // No headers: only the body says which command this is.
    t.attacker.raw(
        LIVE,
        t.attacker.partition_of(LIVE),
        &payload,
        OwnedHeaders::new(),
    );
    assert_eq!(t.outcomes.code("bad-currency-1").await, "MALFORMED_COMMAND");
    assert!(
        !support::letters(&t.env, "invalid").is_empty(),
        "and it is dead-lettered"
    );
}

async fn an_oversized_record_is_dead_lettered_without_its_payload(t: &mut Target) {
    // Just under the broker's 1 MB: the record fits, a letter copying it with
    // its dead-letter headers would not.
    let junk = vec![0x42u8; 999_000];
    let headers = OwnedHeaders::new().insert(Header {
        key: "command_id",
        value: Some("big-1".as_bytes()),
    });
    t.attacker
        .raw(LIVE, t.attacker.partition_of(LIVE), &junk, headers);
    assert_eq!(t.outcomes.code("big-1").await, "MALFORMED_COMMAND");
    let letters = support::letters(&t.env, "undecodable");
    let letter = letters
        .iter()
        .find(|l| l.header("command_id") == Some("big-1"))
        .expect("the oversized record is dead-lettered");
    assert_eq!(letter.header(dlq_header::PAYLOAD_OMITTED), Some("999000"));
    assert!(letter.payload.is_empty());
}

async fn a_schema_bomb_is_dead_lettered_without_decoding(t: &mut Target) {
    // Anyone who reaches the registry can register a schema under any subject.
    let registry = RegistryClient::new(&t.env.config.registry);
    let subject = common::unique("bomb-");
    let schema = r#"{"type":"array","items":{"type":"array","items":"null"}}"#;
    let id = registry
        .register_raw(&subject, schema)
        .await
        .expect("the bomb registers");
    // Two blocks of 2^40 arrays of 2^40 nulls each, in 22 bytes.
    let mut payload = vec![0u8];
    payload.extend_from_slice(&(id as u32).to_be_bytes());
    let huge = zigzag_varint(1 << 40);
    for _ in 0..2 {
        payload.extend_from_slice(&huge);
    }
    let headers = OwnedHeaders::new().insert(Header {
        key: "command_id",
        value: Some("bomb-1".as_bytes()),
    });
    t.attacker
        .raw(LIVE, t.attacker.partition_of(LIVE), &payload, headers);
    // And a stream of forged ids, none of which may cost a decode.
    for forged in 0..200u32 {
        let mut record = vec![0u8];
        record.extend_from_slice(&(1_000_000 + forged).to_be_bytes());
        record.extend_from_slice(&huge);
        t.attacker.raw(
            LIVE,
            t.attacker.partition_of(LIVE),
            &record,
            OwnedHeaders::new(),
        );
    }
    assert_eq!(t.outcomes.code("bomb-1").await, "MALFORMED_COMMAND");
    let refused = support::letters(&t.env, "unknown-schema");
    assert!(
        refused
            .iter()
            .any(|l| l.header("command_id") == Some("bomb-1")),
        "refused for its schema, not decoded"
    );
    let _ = registry.delete_subject(&subject).await;
}

async fn strangers_do_not_push_out_the_owners_retry_protection(t: &mut Target) {
    let owner = meta("owner-bid-1", "ann");
    let command = bid(LIVE, "ann", t.outbid());
    t.attacker.send(&command, &owner).await;
    let first = t
        .outcomes
        .of("owner-bid-1", Duration::from_secs(30))
        .await
        .expect("answered");
    assert!(first.accepted, "{first:?}");
    for i in 0..40 {
        let mut stranger = meta(&format!("stranger-{i}"), "mallory");
        stranger.tenant_id = gavel_domain::TenantId::new("another-tenant");
        t.attacker
            .send(&bid(LIVE, "mallory", 1_000_000 + i), &stranger)
            .await;
    }
    assert_eq!(t.outcomes.code("stranger-39").await, "TENANT_MISMATCH");
    // The owner's retry: the same answer, no second bid.
    let mut retry = Outcomes::watch(&t.env);
    t.attacker.send(&command, &owner).await;
    let again = retry
        .of("owner-bid-1", Duration::from_secs(30))
        .await
        .expect("answered");
    assert_eq!(
        again.new_version, first.new_version,
        "a duplicate, not a new bid"
    );
}

async fn unknown_auctions_leave_no_state(t: &mut Target) {
    let before = t.changelog_records();
    for i in 0..10_000 {
        let id = format!("ghost-{i}");
        let command = bid(&id, "ann", 1_000);
        t.attacker
            .enqueue(&command, &meta(&format!("ghost-bid-{i}"), "ann"))
            .await;
    }
    t.attacker.flush();
    assert_eq!(t.outcomes.code("ghost-bid-9999").await, "AUCTION_NOT_FOUND");
    let after = t.changelog_records();
    assert_eq!(
        after, before,
        "rejections on unknown auctions write no state"
    );
}

async fn huge_headers_are_not_logged_whole(t: &mut Target) {
    let big = "h".repeat(100_000);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "command_id",
            value: Some("hdr-1".as_bytes()),
        })
        .insert(Header {
            key: "correlation_id",
            value: Some(big.as_bytes()),
        });
    t.attacker
        .raw(LIVE, t.attacker.partition_of(LIVE), b"not avro", headers);
    assert_eq!(t.outcomes.code("hdr-1").await, "MALFORMED_COMMAND");
    let log = std::fs::read_to_string(&t.aggregate.log).expect("worker log");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 8_192, "a log line of {longest} bytes");
}

/// Avro's zig-zag varint of a long.
fn zigzag_varint(value: i64) -> Vec<u8> {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closed_auction_leaves_state_and_changelog_after_its_retention() {
    let env = TestEnv::new(1).await;
    let retention = [("GAVEL_CLOSED_RETENTION_SECS", "2")];
    let aggregate = Worker::spawn_with_env(&env, "aggregate", "retention-0", &retention);
    let attacker = Attacker::new(&env);
    let mut outcomes = Outcomes::watch(&env);
    let end = now_ms() + 2_000;
    attacker
        .send(&create("short", SELLER, "Short", end), &meta("r-1", SELLER))
        .await;
    attacker.send(&start("short"), &meta("r-2", SELLER)).await;
    assert_eq!(outcomes.code("r-2").await, "ACCEPTED");
    // Ended by the clock at its end time; within the retention a late bid
    // still gets the exact answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut code = String::new();
    while code != "INVALID_STATUS" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = common::unique("late-");
        attacker
            .send(&bid("short", "ann", 5_000), &meta(&id, "ann"))
            .await;
        code = outcomes.code(&id).await;
    }
    assert_eq!(
        code, "INVALID_STATUS",
        "the auction ended and refuses bids as ENDED"
    );
    // After it, the auction is forgotten: a tombstone on the changelog, and
    // a command for it is answered as for any unknown auction.
    let retired = common::eventually(Duration::from_secs(30), || async {
        let records = read_all(&env, &env.config.topics.changelog);
        records
            .iter()
            .any(|r| r.key.as_deref() == Some("short") && r.payload.is_empty())
            .then_some(())
    })
    .await;
    assert!(retired.is_some(), "a tombstone retires the closed auction");
    attacker
        .send(&bid("short", "ann", 6_000), &meta("after-retention", "ann"))
        .await;
    assert_eq!(outcomes.code("after-retention").await, "AUCTION_NOT_FOUND");
    aggregate.stop();
    env.stop().await;
}
