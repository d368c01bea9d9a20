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

use common::process::{outcomes_on_topic, read_all, Worker};
use common::{api, eventually, gavel, TestEnv};
use gavel_domain::auction::{replay, Auction, AuctionEvent};
use gavel_domain::AuctionId;
use gavel_runtime::auction_codec::event_from_avro;
use gavel_runtime::avro::AvroCodec;
use gavel_sinks::views::rebuild::{self, Source};
use gavel_sinks::views::View;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TENANT: &str = "t-upgrade";
const AUCTIONS: u64 = 12;
const PARTITIONS: i32 = 4;
const BID_PLACED: &str = "dev.gavel.auction.events.BidPlaced";
/// Who bids through this build's producer, with a maximum.
const PROXY_BIDDERS: [&str; 2] = ["pat", "quinn"];
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
        common::run_binary(&self.binary, &env.config, args);
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
    feed: Arc<Mutex<Feed>>,
    stop: Arc<AtomicBool>,
    feeder: std::thread::JoinHandle<()>,
}

/// The old producer's rounds: a round is written whole, under the lock.
#[derive(Default)]
struct Feed {
    /// The last round written: its bids were of `old_bid(round)`.
    round: u64,
    /// No round is written while another producer bids above the last one.
    paused: bool,
}

impl OldProducer {
    fn start(env: &TestEnv, previous: &Previous, end_time: i64) -> Self {
        let mut child = previous.producer(env);
        let mut stdin = child.stdin.take().expect("stdin");
        let (sent, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let feed = Arc::new(Mutex::new(Feed::default()));
        let (counter, stopped, rounds) = (sent.clone(), stop.clone(), feed.clone());
        let feeder = std::thread::spawn(move || {
            let mut setup = String::new();
            for i in 0..AUCTIONS {
                setup.push_str(&api::create_and_start(&auction(i), end_time, 10_000, true));
            }
            stdin.write_all(setup.as_bytes()).expect("setup lines");
            counter.fetch_add(AUCTIONS * 2, Ordering::SeqCst);
            while !stopped.load(Ordering::SeqCst) {
                {
                    let mut feed = rounds.lock().expect("feed");
                    if !feed.paused {
                        let round = feed.round + 1;
                        let bidder = ["ann", "ben", "cat"][round as usize % 3];
                        let mut lines = String::new();
                        for i in 0..AUCTIONS {
                            lines.push_str(&api::bid(&auction(i), bidder, old_bid(round)));
                            lines.push('\n');
                        }
                        stdin.write_all(lines.as_bytes()).expect("bid lines");
                        counter.fetch_add(AUCTIONS, Ordering::SeqCst);
                        feed.round = round;
                    }
                }
                std::thread::sleep(ROUND_PAUSE);
            }
            // Dropping stdin ends the producer's input: it flushes and exits.
        });
        Self {
            child,
            sent,
            feed,
            stop,
            feeder,
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Pauses the rounds; the last round written.
    fn pause(&self) -> u64 {
        let mut feed = self.feed.lock().expect("feed");
        feed.paused = true;
        feed.round
    }

    fn resume(&self) {
        self.feed.lock().expect("feed").paused = false;
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

/// Proxy bids (PlaceBid v2) by this build's producer, `rounds` rounds. Each
/// is sent while the old producer pauses, at 300 above its last round (so
/// above its next one too, which may still be on its way), with a maximum
/// that covers 25 of its rounds more: a new aggregate answers those bids for
/// the proxy bidder, an old one takes the bid as a plain one.
async fn proxy_rounds(env: &TestEnv, old: &OldProducer, rounds: u64) -> u64 {
    for round in 0..rounds {
        let bidder = PROXY_BIDDERS[round as usize % 2];
        let amount = old_bid(old.pause()) + 300;
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
        old.resume();
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    rounds * AUCTIONS
}

/// Each answered command id, and whether it was accepted.
async fn answered(env: &TestEnv, codec: &AvroCodec) -> BTreeMap<String, bool> {
    outcomes_on_topic(env, codec)
        .await
        .into_iter()
        .map(|outcome| (outcome.command_id, outcome.accepted))
        .collect()
}

/// Waits until at least `sent` commands have their outcome; the answers.
async fn wait_answered(env: &TestEnv, codec: &AvroCodec, sent: u64) -> BTreeMap<String, bool> {
    let reached = eventually(Duration::from_secs(120), || async {
        let answers = answered(env, codec).await;
        (answers.len() as u64 >= sent).then_some(answers)
    })
    .await;
    reached.unwrap_or_else(|| panic!("fewer than {sent} commands answered within 120 s"))
}

/// One event as read from the topic: its writer schema id, auction, version,
/// the command that caused it, and the event.
struct StoredEvent {
    schema_id: u32,
    record: String,
    auction: AuctionId,
    version: u64,
    cause: String,
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
            version: envelope.aggregate_version,
            cause: envelope.causation_id.clone(),
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

/// A plain bid a proxy bidder placed: no maximum, not automatic.
fn plain_proxy_bid(event: &AuctionEvent) -> bool {
    matches!(
        event,
        AuctionEvent::BidPlaced { bidder_id, max_amount: None, automatic: false, .. }
            if PROXY_BIDDERS.contains(&bidder_id.as_str())
    )
}

/// The highest version of each auction in `events`.
fn latest_versions(events: &[StoredEvent]) -> BTreeMap<String, u64> {
    let mut latest = BTreeMap::new();
    for stored in events {
        let version = latest.entry(stored.auction.to_string()).or_default();
        *version = stored.version.max(*version);
    }
    latest
}

/// Waits until the event store holds at least `events` rows and every
/// auction's details row is at least at its `versions`: the old consumers
/// have read that far.
async fn wait_consumed(env: &TestEnv, events: usize, versions: &BTreeMap<String, u64>) {
    let pg = env.pg().await;
    let sql = format!(
        "SELECT auction_id, version FROM {}.auction_details",
        env.config.postgres_schema
    );
    let reached = eventually(Duration::from_secs(90), || async {
        let stored = env.event_rows(None).await;
        let rows = pg.query(&sql, &[]).await.ok()?;
        let at: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let caught_up = versions
            .iter()
            .all(|(id, v)| at.get(id).is_some_and(|at| *at >= *v as i64));
        (stored >= events as i64 && caught_up).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "the old consumers did not reach the new aggregates' events"
    );
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
    // The old release's subjects are among this build's: removed at the end.
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
    //    old aggregates: each taken as a plain bid, nothing dead-lettered.
    gavel(&env.config, &["schemas", "check"]);
    gavel(&env.config, &["schemas", "register"]);
    common::migrate(&env.config);
    let mut v2_sent = proxy_rounds(&env, &old_producer, 3).await;
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
    assert_eq!(
        before.iter().filter(|e| plain_proxy_bid(&e.event)).count() as u64,
        v2_sent,
        "every proxy bid was placed by an old aggregate as a plain bid"
    );

    // An old producer started now takes the subject's latest PlaceBid (v2)
    // as its writer, cannot fill the new field and exits with the reason,
    // having sent nothing.
    let late = previous.produce(&env, &api::bid(&auction(0), "late", 90_000));
    assert!(
        !late.status.success()
            && String::from_utf8_lossy(&late.stderr).contains("max_amount_minor"),
        "{late:?}"
    );
    // An old aggregate (re)started now has the same writer problem for its
    // events: each transaction that holds one aborts, and it starts over
    // from its committed offsets (the README's upgrade guide says so).
    let late_aggregate = old("aggregate", "agg-late");
    let refused = eventually(Duration::from_secs(60), || async {
        let log = std::fs::read_to_string(&late_aggregate.log).ok()?;
        (log.matches("Value does not match schema").count() >= 2).then_some(())
    })
    .await;
    assert!(refused.is_some(), "{}", late_aggregate.log_tail());
    late_aggregate.stop();

    // 3. This build's aggregates replace the old ones one at a time while
    //    both producers keep sending; the old event store, projector and
    //    view sink then read their events, and are replaced in turn.
    let mut upgraded = Vec::new();
    for (old, instance) in [(aggregate_a, "agg-a"), (aggregate_b, "agg-b")] {
        upgraded.push(replace(&env, old, "aggregate", instance));
        v2_sent += proxy_rounds(&env, &old_producer, 2).await;
    }
    let mixed = events(&env, &codec).await;
    assert!(
        mixed
            .iter()
            .any(|e| e.record == BID_PLACED && e.schema_id != v1_bid_placed),
        "the new aggregates write BidPlaced v2"
    );
    wait_consumed(&env, mixed.len(), &latest_versions(&mixed)).await;
    for (old, role, instance) in [
        (store, "event-store", "store"),
        (sink, "sink", "sink"),
        (projector, "project", "project"),
    ] {
        upgraded.push(replace(&env, old, role, instance));
        v2_sent += proxy_rounds(&env, &old_producer, 2).await;
    }

    // The new projector publishes (Avro rows) while both producers go on.
    let published = eventually(Duration::from_secs(60), || async {
        let details = read_all(&env, &env.config.topics.view_details);
        details
            .iter()
            .any(|r| r.payload.first() == Some(&0))
            .then_some(())
    })
    .await;
    assert!(published.is_some(), "the new projector published no row");

    // 4. Everything answered, replayed and stored as it happened.
    let sent = old_producer.finish() + v2_sent;
    let answers = wait_answered(&env, &codec, sent).await;
    assert_eq!(answers.len() as u64, sent, "one outcome per command");
    let history = events(&env, &codec).await;
    let accepted: BTreeSet<&str> = answers
        .iter()
        .filter(|(_, accepted)| **accepted)
        .map(|(id, _)| id.as_str())
        .collect();
    let caused: BTreeSet<&str> = history.iter().map(|e| e.cause.as_str()).collect();
    assert!(
        accepted == caused,
        "the accepted commands are exactly those that caused events: {} accepted, {} causing",
        accepted.len(),
        caused.len()
    );
    assert!(
        history.iter().any(|e| automatic(&e.event)),
        "the new aggregates answer for proxy bidders"
    );
    assert!(
        !history.iter().any(|e| matches!(&e.event,
            AuctionEvent::BidPlaced { bidder_id, .. } if bidder_id.as_str() == "late")),
        "the late old producer sent nothing"
    );
    assert_prices_never_fall(&history);
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
        "auction_details rows of both releases on the view topic: first bytes {:?}",
        details
            .iter()
            .map(|r| r.payload.first().copied())
            .collect::<BTreeSet<_>>()
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

/// Each auction's bids, in the order placed, never lower its price: a new
/// aggregate restored the old one's state before it decided.
fn assert_prices_never_fall(history: &[StoredEvent]) {
    let mut prices: BTreeMap<&AuctionId, i64> = BTreeMap::new();
    for stored in history {
        if let AuctionEvent::BidPlaced { amount, .. } = &stored.event {
            let price = prices.entry(&stored.auction).or_default();
            assert!(
                amount.minor() >= *price,
                "{} fell from {price} to {} at version {}",
                stored.auction,
                amount.minor(),
                stored.version
            );
            *price = amount.minor();
        }
    }
}
