//! The key and partition contract of the command topic: a command is keyed by
//! its auction id and sits on that key's murmur2 partition, because the state
//! of an auction lives with exactly one partition. A record that breaks it
//! (another key, or a producer on another partitioner such as librdkafka's
//! default `consistent_random`) is refused with a code of its own instead of
//! being decided against state that does not hold its auction, which would
//! answer AUCTION_NOT_FOUND (or create a second copy) with no hint why.
//!
//! Refused rather than re-routed inside the transaction: a re-routed command
//! would overtake or trail the commands already on the right partition, so
//! per-auction order would depend on the producer's mistake; a refusal keeps
//! order total and tells the producer what to fix.

use super::handler::refused_outcome;
use super::record::BorrowedMessageOwned;
use super::session::Session;
use crate::ProcessorError;
use gavel_domain::auction::AuctionCommand;
use gavel_domain::Timestamp;
use gavel_runtime::envelope::{loggable, CommandMeta};
use gavel_runtime::observe::metrics;
use gavel_runtime::partitioner::partition_for;

impl Session<'_> {
    /// Why `command` does not belong where it arrived, if it does not.
    pub(super) fn misrouted(
        &self,
        message: &BorrowedMessageOwned,
        command: &AuctionCommand,
    ) -> Option<(&'static str, String)> {
        let auction_id = command.auction_id().as_str();
        if message.key() != Some(auction_id) {
            return Some((
                "KEY_MISMATCH",
                "the record key must be the command's auction_id".to_owned(),
            ));
        }
        let expected = partition_for(auction_id.as_bytes(), self.command_partitions);
        (expected != message.partition).then(|| {
            (
                "WRONG_PARTITION",
                format!(
                    "auction {} belongs on partition {expected} (murmur2 of the key), \
                     the record arrived on {}: produce with the murmur2 partitioner",
                    loggable(auction_id),
                    message.partition
                ),
            )
        })
    }

    /// Answers a misrouted command; no state is read or written for it.
    pub(super) fn refuse_misrouted(
        &mut self,
        message: &BorrowedMessageOwned,
        command: &AuctionCommand,
        meta: &CommandMeta,
        code: &str,
        reason: String,
        now: Timestamp,
    ) -> Result<(), ProcessorError> {
        self.stats.rejections += 1;
        metrics::aggregate().errors.with_label_values(&[code]).inc();
        tracing::warn!(
            partition = message.partition,
            offset = message.offset,
            key = loggable(message.key().unwrap_or("")),
            code,
            "misrouted command refused"
        );
        let aggregate_id = command.auction_id().as_str();
        let outcome = refused_outcome(meta, aggregate_id, command.type_name(), code, reason, now);
        // Answered on the partition it arrived on: the outcome reader keys
        // nothing on the partition, and this one is the record's own.
        self.send_outcome(message.partition, &outcome)
    }
}
