//! A rolling upgrade on the real stack, from the previous release (the commit
//! named in deploy/local/previous-release, built by
//! deploy/local/previous-release.sh, which `make test` runs) to this build.
//!
//! 1. The previous release sets up (its migrations, its schemas) and runs:
//!    two aggregates, the projector, the view sink and the event store, with
//!    its own producer sending plain bids throughout the test.
//! 2. This build's schemas are checked and registered and its migrations run;
//!    a producer of this build sends proxy bids (PlaceBid v2) while only
//!    previous-release workers run. They ignore the maximum: a proxy bid is
//!    taken as a plain bid, as the README's upgrade guide states.
//! 3. This build's workers replace the old ones one at a time, under load:
//!    the aggregates first (each takes over the other's changelog), then the
//!    event store, the view sink, and last the projector (the old sink reads
//!    only JSON view rows; the new one reads both).
//! 4. Every command has its outcome, nothing is dead-lettered, the read model
//!    equals the pure replay of the mixed v1/v2 event history, the event
//!    store's chains verify, and a rebuild from the event store gives the
//!    same rows.
//!
//! The sagas are not part of it: their contract changed from JSON to Avro in
//! this release, and the README says to drain the saga topics before it.

mod common;

use common::process::{read_all, Worker};
use common::{api, eventually, gavel, TestEnv};
use gavel_domain::auction::{replay, Auction, AuctionEvent};
use gavel_domain::AuctionId;
use gavel_runtime::auction_codec::{event_from_avro, outcome_from_avro};
use gavel_runtime::avro::AvroCodec;
use gavel_sinks::views::rebuild::{self, Source};
use gavel_sinks::views::View;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TENANT: &str = "t-upgrade";
const AUCTIONS: u64 = 12;
const PARTITIONS: i32 = 4;
const BID_PLACED: &str = "dev.gavel.auction.events.BidPlaced";
/// Between two rounds of bids of one producer (a round bids on every auction).
const ROUND_PAUSE: Duration = Duration::from_millis(250);

/// The previous release's `gavel` and its `schemas/` folder.
struct Previous {
    binary: PathBuf,
    schemas: PathBuf,
}

impl Previous {
    fn locate() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let named = std::fs::read_to_string(root.join("deploy/local/previous-release"))
            .expect("deploy/local/previous-release");
        let commit = named
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .expect("a commit in deploy/local/previous-release");
        // target/release/gavel -> target/
        let target = Path::new(env!("CARGO_BIN_EXE_gavel"))
            .parent()
            .and_then(Path::parent)
            .expect("the target directory");
        let dir = target.join("previous").join(&commit[..12]);
        let previous = Self {
            binary: dir.join("gavel"),
            schemas: dir.join("schemas"),
        };
        assert!(
            previous.binary.is_file() && previous.schemas.is_dir(),
            "the previous release is not built in {}: run `bash deploy/local/previous-release.sh` (make test does)",
            dir.display()
        );
        previous
    }

    /// `gavel <args>` of the previous release with the test's settings.
    fn run(&self, env: &TestEnv, args: &[&str]) {
        let output = Command::new(&self.binary)
            .args(args)
            .envs(env.config.to_env())
            .output()
            .expect("run the previous gavel");
        assert!(
            output.status.success(),
            "previous gavel {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The previous release's `gavel produce` of `lines`, to its end.
    fn produce(&self, env: &TestEnv, lines: &str) -> std::process::Output {
        let mut child = self.producer(env);
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(lines.as_bytes()).expect("lines");
        drop(stdin);
        child.wait_with_output().expect("produce exits")
    }

    /// The previous release's `gavel produce`, reading JSON lines from its stdin.
    fn producer(&self, env: &TestEnv) -> Child {
        Command::new(&self.binary)
            .args(["produce", "--tenant", TENANT])
            .envs(env.config.to_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the previous gavel produce")
    }
}

fn auction(i: u64) -> String {
    format!("lot-{i}")
}

/// The previous release's `gavel produce`, one long-running process fed
/// JSON lines, as a producer that is not restarted during the upgrade.
struct OldProducer {
    child: Child,
    sent: Arc<AtomicU64>,
    /// The last round sent: its bids were of `old_bid(round)`.
    round: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    feeder: std::thread::JoinHandle<()>,
}

impl OldProducer {
    fn start(env: &TestEnv, previous: &Previous, end_time: i64) -> Self {
        let mut child = previous.producer(env);
        let mut stdin = child.stdin.take().expect("stdin");
        let (sent, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let round = Arc::new(AtomicU64::new(0));
        let (counter, stopped, rounds) = (sent.clone(), stop.clone(), round.clone());
        let feeder = std::thread::spawn(move || {
            let mut setup = String::new();
            for i in 0..AUCTIONS {
                setup.push_str(&api::create_and_start(&auction(i), end_time, 10_000, true));
            }
            stdin.write_all(setup.as_bytes()).expect("setup lines");
            counter.fetch_add(AUCTIONS * 2, Ordering::SeqCst);
            while !stopped.load(Ordering::SeqCst) {
                let round = rounds.load(Ordering::SeqCst) + 1;
                let bidder = ["ann", "ben", "cat"][round as usize % 3];
                let mut lines = String::new();
                for i in 0..AUCTIONS {
                    lines.push_str(&api::bid(&auction(i), bidder, old_bid(round)));
                    lines.push('\n');
                }
                stdin.write_all(lines.as_bytes()).expect("bid lines");
                counter.fetch_add(AUCTIONS, Ordering::SeqCst);
                rounds.store(round, Ordering::SeqCst);
                std::thread::sleep(ROUND_PAUSE);
            }
            // Dropping stdin ends the producer's input: it flushes and exits.
        });
        Self {
            child,
            sent,
            round,
            stop,
            feeder,
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn round(&self) -> u64 {
        self.round.load(Ordering::SeqCst)
    }

    /// Stops feeding, waits for the producer to flush and exit; lines sent.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.feeder.join().expect("feeder");
        let sent = self.sent.load(Ordering::SeqCst);
        let output = self.child.wait_with_output().expect("producer exits");
        assert!(
            output.status.success(),
            "the previous release's producer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        sent
    }
}

/// The old producer's plain bid in `round`: 200 above the round before.
fn old_bid(round: u64) -> i64 {
    10_000 + 200 * round as i64
}

/// Proxy bids (PlaceBid v2) by this build's producer, `rounds` rounds, each
/// at the old producer's bid 10 rounds ahead (this producer connects anew
/// each round, while the old one goes on), with a maximum that covers 25
/// rounds more: a new aggregate answers those bids for the proxy bidder.
async fn proxy_rounds(env: &TestEnv, old: &OldProducer, rounds: u64) -> u64 {
    for round in 0..rounds {
        let bidder = ["pat", "quinn"][round as usize % 2];
        let amount = old_bid(old.round() + 10);
        let mut lines = String::new();
        for i in 0..AUCTIONS {
            lines.push_str(&format!(
                r#"{{"type":"PlaceBid","auction_id":"{}","bidder_id":"{bidder}","amount":{amount},"currency":"EUR","max_amount":{}}}"#,
                auction(i),
                amount + 5_000
            ));
            lines.push('\n');
        }
        api::produce(env, TENANT, &lines).await;
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    rounds * AUCTIONS
}

/// Distinct command ids answered on the outcome topic.
async fn answered(env: &TestEnv, codec: &AvroCodec) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for record in read_all(env, &env.config.topics.outcomes) {
        let decoded = codec
            .decode(&record.payload)
            .await
            .expect("outcome decodes");
        ids.insert(
            outcome_from_avro(decoded.value)
                .expect("outcome maps")
                .command_id,
        );
    }
    ids
}

/// Waits until at least `sent` commands have their outcome; the answered ids.
async fn wait_answered(env: &TestEnv, codec: &AvroCodec, sent: u64) -> BTreeSet<String> {
    let reached = eventually(Duration::from_secs(120), || async {
        let ids = answered(env, codec).await;
        (ids.len() as u64 >= sent).then_some(ids)
    })
    .await;
    reached.unwrap_or_else(|| panic!("fewer than {sent} commands answered within 120 s"))
}

/// One event as read from the topic: its writer schema id, auction and event.
struct StoredEvent {
    schema_id: u32,
    record: String,
    auction: AuctionId,
    event: AuctionEvent,
}

async fn events(env: &TestEnv, codec: &AvroCodec) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    for record in read_all(env, &env.config.topics.events) {
        let id = u32::from_be_bytes(record.payload[1..5].try_into().expect("wire format"));
        let decoded = codec.decode(&record.payload).await.expect("event decodes");
        let name = decoded.schema.name.clone();
        let (event, envelope) = event_from_avro(&name, decoded.value).expect("event maps");
        events.push(StoredEvent {
            schema_id: id,
            record: name,
            auction: envelope.aggregate_id,
            event,
        });
    }
    events
}

/// What the read model must hold: the pure replay of `events`, per auction
/// in topic order (one auction lives on one partition).
fn replayed(events: &[StoredEvent]) -> BTreeMap<AuctionId, Auction> {
    let mut histories: BTreeMap<AuctionId, Vec<&AuctionEvent>> = BTreeMap::new();
    for stored in events {
        histories
            .entry(stored.auction.clone())
            .or_default()
            .push(&stored.event);
    }
    histories
        .into_iter()
        .filter_map(|(id, history)| replay(&id, history).map(|state| (id, state)))
        .collect()
}

fn automatic(event: &AuctionEvent) -> bool {
    matches!(
        event,
        AuctionEvent::BidPlaced {
            automatic: true,
            ..
        }
    )
}

/// Replaces `old` with this build's `role`, started once the old one has
/// finished its work in hand and left its group (SIGTERM).
fn replace(env: &TestEnv, old: Worker, role: &str, instance: &str) -> Worker {
    old.stop();
    Worker::spawn(env, role, instance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_previous_release_upgrades_worker_by_worker_under_load_and_the_mixed_history_replays() {
    let previous = Previous::locate();
    let mut env = TestEnv::bare(PARTITIONS, &[]).await;
    let codec = AvroCodec::new(&env.config.registry);

    // 1. The previous release as deployed: its migrations, schemas, workers.
    previous.run(&env, &["migrate"]);
    let old_schemas = previous.schemas.display().to_string();
    previous.run(&env, &["schemas", "register", "--dir", &old_schemas]);
    env.remove_subjects_of(&common::schema_dir());
    let old = |role: &str, instance: &str| {
        Worker::spawn_binary(&env, &previous.binary, role, instance, &[])
    };
    let (aggregate_a, aggregate_b) = (old("aggregate", "agg-a"), old("aggregate", "agg-b"));
    let (projector, sink, store) = (
        old("project", "project"),
        old("sink", "sink"),
        old("event-store", "store"),
    );
    let end_time = gavel_producers::produce::now().millis() + 900_000;
    let old_producer = OldProducer::start(&env, &previous, end_time);
    wait_answered(&env, &codec, AUCTIONS * 5).await;
    let v1_bid_placed = events(&env, &codec)
        .await
        .iter()
        .find(|e| e.record == BID_PLACED)
        .map(|e| e.schema_id)
        .expect("the old aggregates placed bids");

    // 2. This build's schemas and migrations, then its proxy bids reach the
    //    old aggregates: taken as plain bids, nothing refused or dead-lettered.
    gavel(&env.config, &["schemas", "check"]);
    gavel(&env.config, &["schemas", "register"]);
    common::migrate(&env.config);
    let mut v2_sent = proxy_rounds(&env, &old_producer, 3).await;
    // An old producer started now takes the subject's latest PlaceBid (v2)
    // as its writer, cannot fill the new field and exits with the reason,
    // having sent nothing.
    let late = previous.produce(&env, &api::bid(&auction(0), "late", 90_000));
    assert!(
        !late.status.success()
            && String::from_utf8_lossy(&late.stderr).contains("max_amount_minor"),
        "{late:?}"
    );
    // An old aggregate (re)started now takes the subject's latest schema (v2)
    // as its writer, which its events do not match: each of its transactions
    // aborts, it writes nothing and tries again, and the partitions it holds
    // wait until it is replaced (the README's upgrade guide says so).
    let late = old("aggregate", "agg-late");
    let refused = eventually(Duration::from_secs(60), || async {
        let log = std::fs::read_to_string(&late.log).ok()?;
        log.contains("Value does not match schema").then_some(())
    })
    .await;
    assert!(refused.is_some(), "{}", late.log_tail());
    late.stop();
    wait_answered(&env, &codec, old_producer.sent() + v2_sent).await;
    let before = events(&env, &codec).await;
    assert!(
        before
            .iter()
            .filter(|e| e.record == BID_PLACED)
            .all(|e| e.schema_id == v1_bid_placed),
        "the old aggregates write BidPlaced under the schema they started with"
    );
    assert!(
        !before.iter().any(|e| automatic(&e.event)),
        "the old aggregates ignore a proxy bid's maximum"
    );

    // 3. This build's workers replace the old ones one at a time, while both
    //    producers keep sending.
    let mut upgraded = Vec::new();
    for (old, role, instance) in [
        (aggregate_a, "aggregate", "agg-a"),
        (aggregate_b, "aggregate", "agg-b"),
        (store, "event-store", "store"),
        (sink, "sink", "sink"),
        (projector, "project", "project"),
    ] {
        upgraded.push(replace(&env, old, role, instance));
        v2_sent += proxy_rounds(&env, &old_producer, 2).await;
    }

    // 4. Everything answered, replayed and stored as it happened.
    let sent = old_producer.finish() + v2_sent;
    let ids = wait_answered(&env, &codec, sent).await;
    assert_eq!(ids.len() as u64, sent, "one outcome per command");
    let history = events(&env, &codec).await;
    let bid_schemas: BTreeSet<u32> = history
        .iter()
        .filter(|e| e.record == BID_PLACED)
        .map(|e| e.schema_id)
        .collect();
    assert!(
        bid_schemas.len() >= 2,
        "the history mixes BidPlaced versions: {bid_schemas:?}"
    );
    assert!(
        history.iter().any(|e| automatic(&e.event)),
        "the new aggregates answer for proxy bidders"
    );
    let expected = replayed(&history);
    assert_eq!(expected.len() as u64, AUCTIONS);
    let pg = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    common::assert_read_model(&pg, &schema, &expected).await;
    common::assert_views_agree(&pg, &schema).await;
    env.wait_for_event_rows(None, history.len() as i64).await;
    gavel(&env.config, &["audit", "verify"]);

    let topics = &env.config.topics;
    for topic in [
        &topics.commands,
        &topics.events,
        &topics.view_details,
        &topics.view_list,
        &topics.view_user_bids,
    ] {
        let letters = read_all(&env, &gavel_runtime::dlq::topic_for(topic));
        assert!(
            letters.is_empty(),
            "{} letters on {topic}'s DLQ",
            letters.len()
        );
    }

    // The view topics hold the old projector's JSON rows and the new one's
    // Avro rows; rebuilds from them and from the event store (the mixed
    // event history) make the same rows.
    let details = read_all(&env, &topics.view_details);
    assert!(
        details.iter().any(|r| r.payload.first() == Some(&b'{'))
            && details.iter().any(|r| r.payload.first() == Some(&0)),
        "auction_details rows of both releases on the view topic"
    );
    for source in [Source::ViewTopic, Source::EventStore] {
        let report = rebuild::rebuild(&env.config, &View::ALL, source)
            .await
            .expect("rebuild");
        assert_eq!(report.skipped, 0, "{report:?}");
        common::assert_read_model(&pg, &schema, &expected).await;
        common::assert_views_agree(&pg, &schema).await;
    }

    for worker in upgraded {
        worker.stop();
    }
    env.stop().await;
}
