//! Sagas on the real stack: the orchestrator and the participants as real
//! processes, sold auctions and orders as their triggers.

mod common;

use common::process::{read_all, Worker};
use common::{eventually, TestEnv, TriggerOnDrop};
use gavel_domain::auction::AuctionStatus;
use gavel_domain::saga::order::{OrderCreated, OrderLine};
use gavel_domain::saga::payment::split_charge;
use gavel_domain::saga::OrderId;
use gavel_domain::views::{AuctionDetails, BidderSummary};
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_processors::saga::kind::{Order, Payment};
use gavel_processors::saga::{self, SagaTopics};
use gavel_runtime::avro::{json, AvroCodec};
use gavel_runtime::observe::Readiness;
use gavel_runtime::saga_wire::{
    ReplyOutcome, SagaFailed, StepCommand, StepReply, ORDER_CREATED_RECORD, SAGA_FAILED_RECORD,
    STEP_COMMAND_RECORD, STEP_REPLY_RECORD,
};
use gavel_runtime::view_wire::AUCTION_DETAILS_RECORD;
use gavel_runtime::Shutdown;
use rdkafka::message::OwnedHeaders;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("money")
}

/// The AuctionDetails record the projector writes when an auction is sold.
fn sold(id: &str, price: i64) -> AuctionDetails {
    let at = Timestamp::from_millis(1_700_000_000_000);
    let bidder = |user: &str, amount| BidderSummary {
        user_id: UserId::new(user),
        highest_bid: eur(amount),
        bid_count: 1,
        last_bid_at: at,
    };
    AuctionDetails {
        auction_id: AuctionId::new(id),
        tenant_id: TenantId::new("t"),
        seller_id: UserId::new(format!("seller-{id}")),
        title: "Lot".into(),
        status: AuctionStatus::Ended,
        starting_price: eur(100),
        reserve_price: None,
        min_increment: eur(10),
        current_price: eur(price),
        bid_count: 2,
        leading_bidder: Some(UserId::new("winner")),
        winner_id: Some(UserId::new("winner")),
        end_time: at,
        created_at: at,
        updated_at: at,
        version: 5,
        bidder_count: 2,
        bidders: vec![bidder("winner", price), bidder("outbid", price - 10)],
        last_bid_automatic: false,
    }
}

/// Closing details records, Avro as the projector writes them.
async fn send_sales(env: &TestEnv, sales: &[(String, i64)]) {
    let topic = &env.config.topics.view_details;
    for (id, price) in sales {
        let payload = common::wire::encode(
            &env.config,
            topic,
            AUCTION_DETAILS_RECORD,
            &sold(id, *price),
        )
        .await;
        env.produce_raw(
            &env.config.topics.view_details,
            id,
            &payload,
            OwnedHeaders::new(),
        );
    }
}

async fn payment_census(env: &TestEnv) -> BTreeMap<String, i64> {
    let config = env.config.clone();
    tokio::task::spawn_blocking(move || saga::census(&config, &Payment))
        .await
        .expect("join")
        .expect("census")
}

async fn order_census(env: &TestEnv) -> BTreeMap<String, i64> {
    let config = env.config.clone();
    tokio::task::spawn_blocking(move || saga::census(&config, &Order))
        .await
        .expect("join")
        .expect("census")
}

/// Waits until `count` sagas exist and none is still running or compensating.
async fn all_terminal(env: &TestEnv, count: i64, order: bool) -> BTreeMap<String, i64> {
    eventually(WAIT, || async {
        let census = if order {
            order_census(env).await
        } else {
            payment_census(env).await
        };
        let open = ["RUNNING", "COMPENSATING"]
            .iter()
            .filter_map(|s| census.get(*s))
            .sum::<i64>();
        (census.values().sum::<i64>() == count && open == 0).then_some(census)
    })
    .await
    .unwrap_or_else(|| panic!("{count} sagas terminal"))
}

/// The step commands on a participant's topic (committed records only).
async fn commands(env: &TestEnv, participant: &str) -> Vec<StepCommand> {
    let topic = env.config.topics.participant_commands(participant);
    let records = read_all(env, &topic);
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    common::wire::decode_all(&env.config, &payloads, STEP_COMMAND_RECORD).await
}

/// No step or compensation was sent twice: every command id once on the
/// participants' topics (committed records).
async fn assert_each_command_sent_once(env: &TestEnv) {
    for participant in ["payment", "payout", "auction", "ownership", "notifications"] {
        let mut seen = HashMap::new();
        for command in commands(env, participant).await {
            *seen.entry(command.command_id).or_insert(0) += 1;
        }
        let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "{participant}: {repeated:?}");
    }
}

/// Per saga: charges = payouts + commissions + refunds; a sale went through
/// whole or was undone whole; no money movement applied twice; the ownership
/// ledger's hash chain is intact.
async fn assert_money_conserved(
    env: &TestEnv,
    sales: &[(String, i64)],
    census: &BTreeMap<String, i64>,
) {
    let client = env.pg().await;
    let s = &env.config.postgres_schema;
    // No effect applied twice.
    let doubled: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM (SELECT effect_key, kind FROM {s}.money_movements
                 GROUP BY 1, 2 HAVING count(*) > 1) d"
            ),
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(doubled, 0, "a money movement applied twice");

    // Money is conserved for every saga: charges = payouts + commissions + refunds,
    // and a sale either went through whole or was undone whole.
    let rows = client
        .query(
            &format!(
                "SELECT saga_id,
                  (sum(amount_minor) FILTER (WHERE kind = 'charge'))::int8,
                  (sum(amount_minor) FILTER (WHERE kind = 'refund'))::int8,
                  (sum(amount_minor) FILTER (WHERE kind = 'payout'))::int8,
                  (sum(amount_minor) FILTER (WHERE kind = 'payout_reversal'))::int8,
                  (sum(amount_minor) FILTER (WHERE kind = 'commission'))::int8,
                  (sum(amount_minor) FILTER (WHERE kind = 'commission_reversal'))::int8
                 FROM {s}.money_movements GROUP BY saga_id"
            ),
            &[],
        )
        .await
        .expect("money");
    let paid: HashMap<String, bool> = client
        .query(
            &format!("SELECT auction_id, paid FROM {s}.auction_payments"),
            &[],
        )
        .await
        .expect("paid")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let prices: HashMap<&str, i64> = sales.iter().map(|(id, p)| (id.as_str(), *p)).collect();
    let mut sold_through = 0;
    for row in &rows {
        let saga: String = row.get(0);
        let amount = |i: usize| row.get::<_, Option<i64>>(i).unwrap_or(0);
        let (charge, refund) = (amount(1), amount(2));
        let payout = amount(3) - amount(4);
        let commission = amount(5) - amount(6);
        assert_eq!(
            charge,
            payout + commission + refund,
            "{saga}: money not conserved"
        );
        let price = prices[saga.as_str()];
        if charge - refund == price {
            sold_through += 1;
            let split = split_charge(eur(price));
            assert_eq!(
                (payout, commission),
                (split.payout.minor(), split.commission.minor()),
                "{saga}"
            );
            assert_eq!(paid.get(&saga), Some(&true), "{saga} paid");
        } else {
            assert_eq!(
                (charge - refund, payout, commission),
                (0, 0, 0),
                "{saga}: undone whole"
            );
            assert_ne!(paid.get(&saga), Some(&true), "{saga} not paid");
        }
    }
    // Completed sagas sold; a saga FAILED after the point of no return (the
    // notices never got through) sold too and waits for a person, with a
    // record on the failed topic.
    let completed = census.get("COMPLETED").copied().unwrap_or(0);
    let failed = census.get("FAILED").copied().unwrap_or(0);
    assert!(
        (completed..=completed + failed).contains(&sold_through),
        "{sold_through} sold through, {census:?}"
    );
    let failed_records = read_all(env, &env.config.topics.saga("payment", "failed"));
    assert_eq!(
        failed_records.len() as i64,
        failed,
        "one record per failed saga"
    );
    let payloads: Vec<&[u8]> = failed_records
        .iter()
        .map(|r| r.payload.as_slice())
        .collect();
    let failures: Vec<SagaFailed> =
        common::wire::decode_all(&env.config, &payloads, SAGA_FAILED_RECORD).await;
    for failure in &failures {
        let state: serde_json::Value =
            serde_json::from_str(&failure.state_json).expect("the saga's state as JSON");
        assert_eq!(state["id"], failure.saga_id.as_str(), "{failure:?}");
        assert!(!failure.reason.is_empty(), "{failure:?}");
    }

    // The ownership ledger's hash chain is intact.
    let ledger = client
        .query(
            &format!(
                "SELECT auction_id, from_user, to_user, effect_key, direction, prev_hash, hash
                 FROM {s}.ownership_ledger ORDER BY seq"
            ),
            &[],
        )
        .await
        .expect("ledger");
    let mut prev = "genesis".to_owned();
    for row in &ledger {
        let fields: Vec<String> = (0..5).map(|i| row.get(i)).collect();
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        assert_eq!(row.get::<_, String>(5), prev, "chain link");
        let hash = gavel_sinks::participants::ledger_hash(&prev, &refs);
        assert_eq!(row.get::<_, String>(6), hash, "entry hash");
        prev = hash;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_sagas_survive_orchestrator_kills_and_conserve_money() {
    let env = TestEnv::new(3).await;
    let participants = Worker::spawn(
        &env,
        "participant all --failure-rate 0.3 --transient-share 0.5 --latency-ms 20",
        "p0",
    );
    let mut orchestrator = Worker::spawn(&env, "saga run payment", "s0");
    let sales: Vec<(String, i64)> = (0..40)
        .map(|i| (format!("lot-{i}"), 1_001 + 37 * i))
        .collect();
    send_sales(&env, &sales[..20]).await;
    // Killed mid-flight three times; the same instance id fences the dead
    // one's open transaction at once.
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        orchestrator.kill_9();
        if round == 1 {
            send_sales(&env, &sales[20..]).await;
        }
        orchestrator = Worker::spawn(&env, "saga run payment", "s0");
    }
    let census = all_terminal(&env, 40, false).await;
    assert!(
        census.get("COMPLETED").copied().unwrap_or(0) > 0,
        "{census:?}"
    );

    assert_each_command_sent_once(&env).await;
    assert_money_conserved(&env, &sales, &census).await;
    orchestrator.stop();
    participants.stop();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadline_that_expires_while_the_orchestrator_is_down_fires_once_after_restart() {
    let env = TestEnv::new(2).await;
    let orchestrator = Worker::spawn(&env, "saga run payment", "s0");
    send_sales(&env, &[("late-1".to_owned(), 5_000)]).await;
    let first = "late-1/charge-winner/do/1";
    let sent = eventually(WAIT, || async {
        commands(&env, "payment")
            .await
            .iter()
            .any(|c| c.command_id == first)
            .then_some(())
    })
    .await;
    assert!(sent.is_some(), "first charge attempt sent");
    orchestrator.stop();
    // The reply deadline (5 s) passes while nothing runs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let orchestrator = Worker::spawn(&env, "saga run payment", "s0");
    let second = "late-1/charge-winner/do/2";
    let ids = eventually(WAIT, || async {
        let ids: Vec<String> = commands(&env, "payment")
            .await
            .into_iter()
            .map(|c| c.command_id)
            .collect();
        ids.iter().any(|id| id == second).then_some(ids)
    })
    .await
    .expect("the missed deadline fired after the restart");
    assert_eq!(
        ids,
        vec![first.to_owned(), second.to_owned()],
        "each attempt once"
    );
    // With the participants up the saga now completes.
    let participants = Worker::spawn(&env, "participant all", "p0");
    let census = all_terminal(&env, 1, false).await;
    assert_eq!(census.get("COMPLETED"), Some(&1), "{census:?}");
    orchestrator.stop();
    participants.stop();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_duplicate_and_unreadable_replies_change_nothing() {
    let env = TestEnv::new(2).await;
    let shutdown = Shutdown::new();
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let orchestrator = {
        let (config, shutdown) = (env.config.clone(), shutdown.clone());
        tokio::spawn(saga::run(
            config,
            Payment,
            shutdown,
            Readiness::new("saga-payment"),
        ))
    };
    let participants = Worker::spawn(&env, "participant all", "p0");
    let topics = SagaTopics::of(&env.config, &Payment);
    env.produce_raw(&topics.replies, "x", b"{not json", OwnedHeaders::new());
    let unknown = StepReply {
        saga_kind: "payment".into(),
        saga_id: "never-started".into(),
        step: "charge-winner".into(),
        command_id: "never-started/charge-winner/do/1".into(),
        participant: "payment".into(),
        outcome: ReplyOutcome::Succeeded {
            reference: "r".into(),
        },
    };
    let payload =
        common::wire::encode(&env.config, &topics.replies, STEP_REPLY_RECORD, &unknown).await;
    env.produce_raw(
        &topics.replies,
        "never-started",
        &payload,
        OwnedHeaders::new(),
    );
    send_sales(&env, &[("dup-1".to_owned(), 2_000)]).await;
    let census = all_terminal(&env, 1, false).await;
    assert_eq!(census.get("COMPLETED"), Some(&1), "{census:?}");
    // A participant's reply delivered again.
    let replies = read_all(&env, &topics.replies);
    let real = replies
        .iter()
        .find(|r| r.key.as_deref() == Some("dup-1"))
        .expect("a reply of dup-1");
    env.produce_raw(&topics.replies, "dup-1", &real.payload, OwnedHeaders::new());
    let dlq = gavel_runtime::dlq::topic_for(&topics.replies);
    let letters = eventually(WAIT, || async {
        let letters = read_all(&env, &dlq);
        (!letters.is_empty()).then_some(letters)
    })
    .await
    .expect("the unreadable reply dead-lettered");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].payload, b"{not json");
    tokio::time::sleep(Duration::from_secs(2)).await;
    shutdown.trigger();
    let stats = orchestrator.await.expect("join").expect("orchestrator");
    assert_eq!(stats.dead_letters, 1, "{stats:?}");
    assert!(
        stats.rejected >= 2,
        "unknown and duplicate replies counted: {stats:?}"
    );
    assert_eq!(
        (stats.completed, stats.compensated, stats.failed),
        (1, 0, 0),
        "{stats:?}"
    );
    assert_eq!(payment_census(&env).await.get("COMPLETED"), Some(&1));
    participants.stop();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_beyond_the_stock_compensate_and_the_stock_adds_up() {
    let env = TestEnv::new(2).await;
    let participants = Worker::spawn(&env, "participant all --initial-stock 100", "p0");
    let orchestrator = Worker::spawn(&env, "saga run order", "s0");
    for i in 0..12 {
        let order = OrderCreated {
            order_id: OrderId::new(format!("order-{i}")),
            customer_id: UserId::new(format!("customer-{i}")),
            lines: vec![OrderLine {
                sku: "print-a".into(),
                quantity: 10,
            }],
            total: eur(4_000),
            shipping_address: "1 Gallery Road".into(),
        };
        let orders = &env.config.topics.orders;
        let payload = common::wire::encode(&env.config, orders, ORDER_CREATED_RECORD, &order).await;
        env.produce_raw(
            orders,
            order.order_id.as_str(),
            &payload,
            OwnedHeaders::new(),
        );
    }
    let census = all_terminal(&env, 12, true).await;
    assert_eq!(census.get("COMPLETED"), Some(&10), "{census:?}");
    assert_eq!(census.get("COMPENSATED"), Some(&2), "{census:?}");
    let client = env.pg().await;
    let s = &env.config.postgres_schema;
    let available: i32 = client
        .query_one(
            &format!("SELECT available FROM {s}.inventory_stock WHERE sku = 'print-a'"),
            &[],
        )
        .await
        .expect("stock")
        .get(0);
    assert_eq!(available, 0, "ten orders of ten took the whole stock");
    let shipped: i64 = client
        .query_one(&format!("SELECT count(*) FROM {s}.shipments"), &[])
        .await
        .expect("shipments")
        .get(0);
    assert_eq!(shipped, 10);
    let milestones = read_all(&env, &env.config.topics.saga("order", "milestones"));
    let codec = AvroCodec::new(&env.config.registry);
    let mut shipped_events = 0;
    for milestone in &milestones {
        let decoded = codec.decode(&milestone.payload).await.expect("a milestone");
        if decoded.schema.name == "dev.gavel.order.milestones.OrderShipped" {
            let shipped: serde_json::Value =
                json::decode(decoded, "dev.gavel.order.milestones.OrderShipped").expect("fields");
            assert!(shipped["tracking_number"].is_string(), "{shipped}");
            shipped_events += 1;
        }
    }
    assert_eq!(shipped_events, 10, "one order.shipped per shipped order");
    orchestrator.stop();
    participants.stop();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orchestrator_crashing_at_every_step_boundary_sends_each_command_once() {
    let env = TestEnv::new(2).await;
    let participants = Worker::spawn(
        &env,
        "participant all --failure-rate 0.2 --transient-share 0.5 --latency-ms 10",
        "p0",
    );
    let sales: Vec<(String, i64)> = (0..24)
        .map(|i| (format!("crash-{i}"), 2_003 + 41 * i))
        .collect();
    send_sales(&env, &sales).await;
    for point in [
        "after-state-write",
        "after-command-send",
        "before-commit",
        "after-commit",
    ] {
        let crash_at = format!("{point}:3");
        let mut crashing = Worker::spawn_with_env(
            &env,
            "saga run payment",
            "s0",
            &[("GAVEL_SAGA_CRASH_AT", crash_at.as_str())],
        );
        assert!(
            crashing.exited_within(Duration::from_secs(60)),
            "the orchestrator reached {point} three times and aborted"
        );
    }
    let orchestrator = Worker::spawn(&env, "saga run payment", "s0");
    let census = all_terminal(&env, 24, false).await;
    assert_each_command_sent_once(&env).await;
    assert_money_conserved(&env, &sales, &census).await;
    orchestrator.stop();
    participants.stop();
    env.stop().await;
}
