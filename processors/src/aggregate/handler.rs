//! One command against one aggregate: dedupe, tenant check, version check,
//! `decide`, `evolve`. No Kafka here, so it is tested without a broker.

use super::stored::StoredAggregate;
use gavel_domain::auction::{decide_versioned, evolve, AuctionCommand, AuctionEvent};
use gavel_domain::Timestamp;
use gavel_runtime::auction_codec::CommandOutcome;
use gavel_runtime::envelope::{CommandMeta, EventEnvelope};

/// What the processor must write for one command.
#[derive(Debug)]
pub enum Decision {
    /// A command id seen before: answer again, write nothing else.
    Duplicate(CommandOutcome),
    /// New events (possibly none, for a rejection) and the outcome; the stored
    /// aggregate was updated in place.
    Decided {
        events: Vec<(AuctionEvent, EventEnvelope)>,
        outcome: CommandOutcome,
    },
}

/// Decides `command` against `stored` and applies the result to it in place
/// (the caller owns the state for the transaction, so nothing is cloned).
pub fn handle(
    stored: &mut StoredAggregate,
    command: &AuctionCommand,
    meta: &CommandMeta,
    now: Timestamp,
) -> Decision {
    let aggregate_id = command.auction_id().as_str();
    if let Some(previous) =
        stored.outcome_of(&meta.command_id, aggregate_id, meta.tenant_id.as_str())
    {
        return Decision::Duplicate(previous);
    }
    let tenant_ok = stored
        .tenant_id
        .as_deref()
        .is_none_or(|t| t == meta.tenant_id.as_str());
    let decided = if tenant_ok {
        decide_versioned(stored.auction.as_ref(), command, meta.expected_version, now)
            .map_err(|r| (r.code().to_owned(), r.to_string()))
    } else {
        Err((
            "TENANT_MISMATCH".to_owned(),
            "the auction belongs to another tenant".to_owned(),
        ))
    };
    let state = stored;
    let mut outcome = CommandOutcome {
        command_id: meta.command_id.clone(),
        correlation_id: meta.correlation_id.clone(),
        tenant_id: meta.tenant_id.as_str().to_owned(),
        aggregate_id: command.auction_id().as_str().to_owned(),
        command_type: command.type_name().to_owned(),
        accepted: false,
        new_version: None,
        event_count: 0,
        rejection_code: None,
        reason: None,
        decided_at: now,
    };
    let mut events = Vec::new();
    match decided {
        Ok(new_events) => {
            for event in new_events {
                state.auction = evolve(state.auction.take(), command.auction_id(), &event);
                let envelope =
                    EventEnvelope::caused_by(meta, command.auction_id(), state.version(), now);
                events.push((event, envelope));
            }
            if state.tenant_id.is_none() && state.auction.is_some() {
                state.tenant_id = Some(meta.tenant_id.as_str().to_owned());
            }
            outcome.accepted = true;
            outcome.new_version = Some(state.version());
            outcome.event_count = events.len() as i32;
        }
        Err((code, reason)) => {
            outcome.rejection_code = Some(code);
            outcome.reason = Some(reason);
        }
    }
    state.remember(&outcome);
    Decision::Decided { events, outcome }
}

/// A command whose record could not be read still gets an answer when its
/// headers name it, so the caller is not left waiting.
pub fn malformed_outcome(
    meta: &CommandMeta,
    aggregate_id: &str,
    reason: String,
    now: Timestamp,
) -> CommandOutcome {
    CommandOutcome {
        command_id: meta.command_id.clone(),
        correlation_id: meta.correlation_id.clone(),
        tenant_id: meta.tenant_id.as_str().to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        command_type: "unknown".to_owned(),
        accepted: false,
        new_version: None,
        event_count: 0,
        rejection_code: Some("MALFORMED_COMMAND".to_owned()),
        reason: Some(reason),
        decided_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::auction::{CreateAuction, PlaceBid, StartAuction};
    use gavel_domain::{AuctionId, Currency, Money, TenantId, UserId};

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn meta(id: &str, tenant: &str) -> CommandMeta {
        CommandMeta {
            command_id: id.into(),
            correlation_id: id.into(),
            tenant_id: TenantId::new(tenant),
            expected_version: None,
        }
    }

    fn create() -> AuctionCommand {
        AuctionCommand::Create(CreateAuction {
            auction_id: AuctionId::new("a1"),
            seller_id: UserId::new("s"),
            title: "t".into(),
            starting_price: eur(100),
            reserve_price: None,
            min_increment: eur(10),
            end_time: Timestamp::from_millis(10_000),
        })
    }

    fn apply(
        stored: &StoredAggregate,
        command: &AuctionCommand,
        meta: &CommandMeta,
    ) -> (StoredAggregate, CommandOutcome, usize) {
        let mut state = stored.clone();
        match handle(&mut state, command, meta, Timestamp::from_millis(1)) {
            Decision::Decided { events, outcome } => (state, outcome, events.len()),
            Decision::Duplicate(_) => panic!("unexpected duplicate"),
        }
    }

    #[test]
    fn accepted_commands_get_gapless_versions_in_their_envelopes() {
        let stored = StoredAggregate::default();
        let (mut stored, outcome, n) = apply(&stored, &create(), &meta("c1", "t1"));
        assert!(outcome.accepted);
        assert_eq!((outcome.new_version, n), (Some(1), 1));
        let start = AuctionCommand::Start(StartAuction {
            auction_id: AuctionId::new("a1"),
        });
        let Decision::Decided { events, .. } = handle(
            &mut stored,
            &start,
            &meta("c2", "t1"),
            Timestamp::from_millis(2),
        ) else {
            panic!("expected a decision")
        };
        assert_eq!(events[0].1.aggregate_version, 2);
        assert_eq!(events[0].1.causation_id, "c2");
    }

    #[test]
    fn a_repeated_command_id_returns_the_original_outcome() {
        let (mut stored, first, _) =
            apply(&StoredAggregate::default(), &create(), &meta("c1", "t1"));
        match handle(
            &mut stored,
            &create(),
            &meta("c1", "t1"),
            Timestamp::from_millis(5),
        ) {
            Decision::Duplicate(again) => assert_eq!(again, first),
            other => panic!("expected duplicate, got {other:?}"),
        }
    }

    #[test]
    fn rejections_are_remembered_too() {
        let bid = AuctionCommand::PlaceBid(PlaceBid {
            auction_id: AuctionId::new("a1"),
            bidder_id: UserId::new("b"),
            amount: eur(100),
        });
        let (stored, outcome, n) = apply(&StoredAggregate::default(), &bid, &meta("c9", "t1"));
        assert_eq!((outcome.accepted, n), (false, 0));
        assert_eq!(outcome.rejection_code.as_deref(), Some("AUCTION_NOT_FOUND"));
        assert!(stored.outcome_of("c9", "a1", "t1").is_some());
    }

    #[test]
    fn another_tenant_cannot_touch_the_auction() {
        let (stored, _, _) = apply(&StoredAggregate::default(), &create(), &meta("c1", "t1"));
        let start = AuctionCommand::Start(StartAuction {
            auction_id: AuctionId::new("a1"),
        });
        let (_, outcome, n) = apply(&stored, &start, &meta("c2", "intruder"));
        assert_eq!((outcome.accepted, n), (false, 0));
        assert_eq!(outcome.rejection_code.as_deref(), Some("TENANT_MISMATCH"));
    }

    #[test]
    fn the_dedupe_window_is_bounded() {
        let mut stored = StoredAggregate::default();
        for i in 0..(super::super::stored::REMEMBERED_COMMANDS + 5) {
            let (next, _, _) = apply(&stored, &create(), &meta(&format!("c{i}"), "t1"));
            stored = next;
        }
        assert_eq!(
            stored.recent.len(),
            super::super::stored::REMEMBERED_COMMANDS
        );
        assert!(stored.outcome_of("c0", "a1", "t1").is_none());
    }
}
