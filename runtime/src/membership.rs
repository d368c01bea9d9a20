//! How a worker's consumer belongs to its group, and how it leaves.
//!
//! A restarted worker must not cost its partitions a session timeout. With
//! static membership (`group.instance.id`, KIP-345) on the classic protocol a
//! replacement with the same `GAVEL_INSTANCE_ID` takes over the dead member's
//! assignment the moment it joins: no rebalance, no wait. The next-generation
//! protocol (KIP-848, `group.protocol=consumer`) is selectable for comparison,
//! but there a killed static member's replacement is refused
//! (UNRELEASED_INSTANCE_ID) until the broker's session timeout (45 s by
//! default) has passed, and a dynamic member's partitions wait for the same
//! timeout: bench/README.md has the measurements behind the default.
//!
//! A static member that stops on purpose must say so: librdkafka sends no
//! LeaveGroup for a static member on close, so a scaled-in replica's
//! partitions would wait out the session timeout. [`leave_group`]
//! unsubscribes first, which does send it.

use crate::{Result, RuntimeError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Classic protocol, `group.instance.id` from `GAVEL_INSTANCE_ID` (default).
    Static,
    /// Classic protocol, a new member id per start (a restart waits for the
    /// dead member's session timeout).
    Dynamic,
    /// KIP-848 consumer protocol, dynamic members.
    Consumer,
    /// KIP-848 consumer protocol with `group.instance.id`.
    ConsumerStatic,
}

/// The classic protocol's session timeout: how long a member that vanished
/// without leaving (kill -9, a lost host) keeps its partitions.
const SESSION_TIMEOUT_MS: &str = "10000";

/// How long [`leave_group`] waits for the revocation to be served.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

impl Membership {
    pub const SETTING: &'static str = "GAVEL_GROUP_MEMBERSHIP";

    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "static" => Ok(Self::Static),
            "dynamic" => Ok(Self::Dynamic),
            "consumer" => Ok(Self::Consumer),
            "consumer-static" => Ok(Self::ConsumerStatic),
            other => Err(RuntimeError::Config(format!(
                "{} must be static, dynamic, consumer or consumer-static, got {other:?}",
                Self::SETTING
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dynamic => "dynamic",
            Self::Consumer => "consumer",
            Self::ConsumerStatic => "consumer-static",
        }
    }

    fn is_static(self) -> bool {
        matches!(self, Self::Static | Self::ConsumerStatic)
    }

    fn is_classic(self) -> bool {
        matches!(self, Self::Static | Self::Dynamic)
    }

    /// Sets the group protocol, assignor, session timeout and instance id.
    /// `co_partitioned`: partition p of every subscribed topic must land on
    /// the same member (the saga's trigger and replies), i.e. range assignment.
    pub fn apply(self, client: &mut ClientConfig, instance_id: &str, co_partitioned: bool) {
        if self.is_classic() {
            let strategy = if co_partitioned {
                "range"
            } else {
                "cooperative-sticky"
            };
            client
                .set("group.protocol", "classic")
                .set("partition.assignment.strategy", strategy)
                .set("session.timeout.ms", SESSION_TIMEOUT_MS)
                .set("heartbeat.interval.ms", "1000");
        } else {
            // The broker owns session and heartbeat timing under KIP-848 (the
            // client refuses these keys), its assignors are all sticky, and
            // `range` co-partitions.
            client
                .remove("partition.assignment.strategy")
                .remove("session.timeout.ms")
                .remove("heartbeat.interval.ms")
                .set("group.protocol", "consumer");
            if co_partitioned {
                client.set("group.remote.assignor", "range");
            }
        }
        if self.is_static() {
            client.set("group.instance.id", instance_id);
        }
    }
}

/// Leaves the group on purpose (SIGTERM, scale-in): unsubscribes and serves
/// the revocation, so the LeaveGroup goes out even for a static member and
/// the partitions move to the remaining members at once. Records polled
/// meanwhile are dropped: they were not committed and will be read again.
pub fn leave_group<C: ConsumerContext>(consumer: &BaseConsumer<C>) {
    consumer.unsubscribe();
    let deadline = Instant::now() + LEAVE_WAIT;
    while Instant::now() < deadline && !assignment_empty(consumer) {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    // The LeaveGroup follows the unassignment from the consumer's own thread.
    let _ = consumer.poll(Duration::from_millis(100));
    tracing::info!("left the consumer group");
}

/// [`leave_group`] for a stream consumer, whose rebalances are served by `recv`.
pub async fn leave_group_stream<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>) {
    consumer.unsubscribe();
    let deadline = Instant::now() + LEAVE_WAIT;
    while Instant::now() < deadline && !assignment_empty(consumer) {
        let _ = tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    tracing::info!("left the consumer group");
}

fn assignment_empty<C: ConsumerContext, T: Consumer<C>>(consumer: &T) -> bool {
    consumer.assignment().map_or(true, |list| list.count() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_parses_back_from_its_name() {
        for mode in [
            Membership::Static,
            Membership::Dynamic,
            Membership::Consumer,
            Membership::ConsumerStatic,
        ] {
            assert_eq!(Membership::parse(mode.as_str()).unwrap(), mode);
        }
        let error = Membership::parse("sticky").unwrap_err().to_string();
        assert!(error.contains("GAVEL_GROUP_MEMBERSHIP"), "{error}");
    }

    #[test]
    fn static_modes_name_the_instance_and_consumer_modes_leave_timing_to_the_broker() {
        let mut client = ClientConfig::new();
        Membership::Static.apply(&mut client, "agg-0", false);
        assert_eq!(client.get("group.instance.id"), Some("agg-0"));
        assert_eq!(client.get("session.timeout.ms"), Some(SESSION_TIMEOUT_MS));
        let mut client = ClientConfig::new();
        Membership::Consumer.apply(&mut client, "agg-0", true);
        assert_eq!(client.get("group.instance.id"), None);
        assert_eq!(client.get("session.timeout.ms"), None);
        assert_eq!(client.get("group.remote.assignor"), Some("range"));
    }
}
