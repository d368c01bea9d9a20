//! One command against one aggregate: dedupe, tenant check, version check,
//! `decide`, `evolve`. No Kafka here, so it is tested without a broker.

use super::stored::StoredAggregate;
use gavel_domain::auction::upcast::current_version;
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
        // The same id from someone else is not a retry: it must neither read
        // the original answer nor be executed under an id already used.
        if previous.actor_id.is_empty() || previous.actor_id == meta.actor_id.as_str() {
            return Decision::Duplicate(previous);
        }
        let reason = "this command id was already used by another user";
        return refused(meta, command, "COMMAND_ID_REUSED", reason, now);
    }
    let tenant_ok = stored
        .tenant_id
        .as_deref()
        .is_none_or(|t| t == meta.tenant_id.as_str());
    if !tenant_ok {
        // Not remembered: a stranger's refused requests must not push the
        // owner's commands out of the auction's dedupe window.
        return refused(
            meta,
            command,
            "TENANT_MISMATCH",
            "the auction belongs to another tenant",
            now,
        );
    }
    let decided = decide_versioned(
        stored.auction.as_ref(),
        command,
        &meta.actor_id,
        meta.expected_version,
        now,
    );
    let mut outcome = outcome_of(meta, command, now);
    let mut events = Vec::new();
    match decided {
        Ok(new_events) => {
            for event in new_events {
                stored.auction = evolve(stored.auction.take(), command.auction_id(), &event);
                let mut envelope =
                    EventEnvelope::caused_by(meta, command.auction_id(), stored.version(), now);
                envelope.schema_version = current_version(event.type_name());
                events.push((event, envelope));
            }
            if stored.tenant_id.is_none() && stored.auction.is_some() {
                stored.tenant_id = Some(meta.tenant_id.as_str().to_owned());
            }
            outcome.accepted = true;
            outcome.new_version = Some(stored.version());
            outcome.event_count = events.len() as i32;
        }
        Err(rejection) => {
            outcome.rejection_code = Some(rejection.code().to_owned());
            outcome.reason = Some(rejection.to_string());
            if rejection.is_about_the_sender() {
                return Decision::Decided { events, outcome };
            }
        }
    }
    // An auction that does not exist keeps no state (the caller drops it), so
    // remembering there would only be thrown away.
    if stored.auction.is_some() {
        stored.remember(&outcome);
    }
    Decision::Decided { events, outcome }
}

/// A refusal decided before the rules ran: nothing changes, nothing is remembered.
fn refused(
    meta: &CommandMeta,
    command: &AuctionCommand,
    code: &str,
    reason: &str,
    now: Timestamp,
) -> Decision {
    let mut outcome = outcome_of(meta, command, now);
    outcome.rejection_code = Some(code.to_owned());
    outcome.reason = Some(reason.to_owned());
    Decision::Decided {
        events: Vec::new(),
        outcome,
    }
}

/// The outcome of `command` before it is decided: not accepted, no version.
fn outcome_of(meta: &CommandMeta, command: &AuctionCommand, now: Timestamp) -> CommandOutcome {
    CommandOutcome {
        command_id: meta.command_id.clone(),
        correlation_id: meta.correlation_id.clone(),
        tenant_id: meta.tenant_id.as_str().to_owned(),
        actor_id: meta.actor_id.as_str().to_owned(),
        aggregate_id: command.auction_id().as_str().to_owned(),
        command_type: command.type_name().to_owned(),
        accepted: false,
        new_version: None,
        event_count: 0,
        rejection_code: None,
        reason: None,
        decided_at: now,
    }
}

/// A command refused before decoding into a domain command (its record key or
/// partition is wrong, its values cannot be read): an answer for the caller.
pub fn refused_outcome(
    meta: &CommandMeta,
    aggregate_id: &str,
    command_type: &str,
    code: &str,
    reason: String,
    now: Timestamp,
) -> CommandOutcome {
    CommandOutcome {
        command_id: meta.command_id.clone(),
        correlation_id: meta.correlation_id.clone(),
        tenant_id: meta.tenant_id.as_str().to_owned(),
        actor_id: meta.actor_id.as_str().to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        command_type: command_type.to_owned(),
        accepted: false,
        new_version: None,
        event_count: 0,
        rejection_code: Some(code.to_owned()),
        reason: Some(reason),
        decided_at: now,
    }
}

/// A command whose record could not be read still gets an answer when its
/// headers or its decoded body name it, so the caller is not left waiting.
pub fn malformed_outcome(
    meta: &CommandMeta,
    aggregate_id: &str,
    reason: String,
    now: Timestamp,
) -> CommandOutcome {
    refused_outcome(
        meta,
        aggregate_id,
        "unknown",
        "MALFORMED_COMMAND",
        reason,
        now,
    )
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
        meta_by(id, tenant, "s")
    }

    fn meta_by(id: &str, tenant: &str, actor: &str) -> CommandMeta {
        CommandMeta {
            command_id: id.into(),
            correlation_id: id.into(),
            tenant_id: TenantId::new(tenant),
            actor_id: UserId::new(actor),
            expected_version: None,
        }
    }

    fn start() -> AuctionCommand {
        AuctionCommand::Start(StartAuction {
            auction_id: AuctionId::new("a1"),
        })
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
    fn a_rejection_on_an_unknown_auction_leaves_no_state() {
        let bid = AuctionCommand::PlaceBid(PlaceBid {
            auction_id: AuctionId::new("a1"),
            bidder_id: UserId::new("b"),
            amount: eur(100),
            max_amount: None,
        });
        let (stored, outcome, n) =
            apply(&StoredAggregate::default(), &bid, &meta_by("c9", "t1", "b"));
        assert_eq!((outcome.accepted, n), (false, 0));
        assert_eq!(outcome.rejection_code.as_deref(), Some("AUCTION_NOT_FOUND"));
        assert_eq!(
            stored,
            StoredAggregate::default(),
            "nothing to keep or write"
        );
    }

    #[test]
    fn rejections_on_an_existing_auction_are_remembered() {
        let (stored, _, _) = apply(&StoredAggregate::default(), &create(), &meta("c1", "t1"));
        let too_early = AuctionCommand::PlaceBid(PlaceBid {
            auction_id: AuctionId::new("a1"),
            bidder_id: UserId::new("b"),
            amount: eur(100),
            max_amount: None,
        });
        let (stored, outcome, _) = apply(&stored, &too_early, &meta_by("c2", "t1", "b"));
        assert_eq!(outcome.rejection_code.as_deref(), Some("INVALID_STATUS"));
        let again = stored.outcome_of("c2", "a1", "t1").unwrap();
        assert_eq!(again.actor_id, "b");
    }

    #[test]
    fn refusals_about_the_sender_stay_out_of_the_dedupe_window() {
        let (mut stored, _, _) = apply(&StoredAggregate::default(), &create(), &meta("c1", "t1"));
        for i in 0..(super::super::stored::REMEMBERED_COMMANDS + 5) {
            let (next, outcome, _) = apply(
                &stored,
                &start(),
                &meta_by(&format!("x{i}"), "intruder", "eve"),
            );
            assert_eq!(outcome.rejection_code.as_deref(), Some("TENANT_MISMATCH"));
            let (next, outcome, _) =
                apply(&next, &start(), &meta_by(&format!("y{i}"), "t1", "eve"));
            assert_eq!(outcome.rejection_code.as_deref(), Some("NOT_SELLER"));
            stored = next;
        }
        assert!(
            stored.outcome_of("c1", "a1", "t1").is_some(),
            "the owner's retry still dedupes"
        );
        assert_eq!(stored.recent.len(), 1);
    }

    #[test]
    fn a_command_id_reused_by_another_user_is_refused_without_the_original_answer() {
        let (mut stored, _, _) = apply(&StoredAggregate::default(), &create(), &meta("c1", "t1"));
        let Decision::Decided { events, outcome } = handle(
            &mut stored,
            &start(),
            &meta_by("c1", "t1", "eve"),
            Timestamp::from_millis(2),
        ) else {
            panic!("a reused id from someone else is not a duplicate")
        };
        assert!(events.is_empty());
        assert_eq!(outcome.rejection_code.as_deref(), Some("COMMAND_ID_REUSED"));
        assert_eq!(outcome.new_version, None);
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
