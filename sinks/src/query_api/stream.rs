//! One SSE subscription: a `snapshot` of the row, then every later event of the
//! auction in version order, `lagged` when the client fell behind, and the end
//! of the stream on shutdown (so graceful shutdown never waits on it) or when
//! the token it was opened with expires (the client reconnects with a fresh one).

use super::live::LiveEvent;
use super::rows::AuctionView;
use axum::response::sse::Event;
use futures::Stream;
use gavel_http::StreamPermit;
use gavel_runtime::Shutdown;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// Who watches and until when.
pub struct Watch {
    pub tenant: String,
    pub shutdown: Shutdown,
    /// When the caller's token expires.
    pub until: Instant,
    /// Slots under the open-stream caps, given back when the stream ends.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "held, never read: dropping it frees the slots")
    )]
    pub permits: Vec<StreamPermit>,
}

struct Subscription {
    pending: VecDeque<Event>,
    receiver: broadcast::Receiver<Arc<LiveEvent>>,
    auction_id: String,
    /// The newest version sent: older or repeated events are not sent again.
    last_version: u64,
    watch: Watch,
}

pub fn events(
    snapshot: &AuctionView,
    backlog: Vec<Arc<LiveEvent>>,
    receiver: broadcast::Receiver<Arc<LiveEvent>>,
    watch: Watch,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let version = u64::try_from(snapshot.version).unwrap_or(0);
    let mut pending = VecDeque::new();
    pending.push_back(
        Event::default()
            .event("snapshot")
            .id(version.to_string())
            .json_data(snapshot)
            .unwrap_or_else(|_| Event::default().event("snapshot")),
    );
    let mut subscription = Subscription {
        pending,
        receiver,
        auction_id: snapshot.auction_id.clone(),
        last_version: version,
        watch,
    };
    // Events the read model did not have yet when the snapshot was read.
    for event in backlog {
        subscription.offer(&event);
    }
    futures::stream::unfold(subscription, |mut s| async move {
        s.next().await.map(|event| (Ok(event), s))
    })
}

impl Subscription {
    fn offer(&mut self, event: &LiveEvent) {
        if event.auction_id == self.auction_id
            && event.tenant_id == self.watch.tenant
            && event.version > self.last_version
        {
            self.last_version = event.version;
            self.pending.push_back(
                Event::default()
                    .event(event.kind)
                    .id(event.version.to_string())
                    .data(&event.data),
            );
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let received = tokio::select! {
                _ = self.watch.shutdown.triggered() => return None,
                _ = tokio::time::sleep_until(self.watch.until) => return None,
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(event) => self.offer(&event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(auction_id = %self.auction_id, missed, "live subscriber lagged");
                    let data = serde_json::json!({
                        "type": "lagged",
                        "missed_events": missed,
                        "auction_id": self.auction_id,
                        "refetch": true,
                    });
                    return Some(Event::default().event("lagged").data(data.to_string()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::live::{Hub, LiveEvent, CHANNEL_CAPACITY};
    use super::super::rows::MoneyJson;
    use super::*;
    use axum::response::sse::Sse;
    use axum::response::IntoResponse;
    use futures::StreamExt;
    use std::time::Duration;

    fn watch(tenant: &str, shutdown: &Shutdown) -> Watch {
        Watch {
            tenant: tenant.into(),
            shutdown: shutdown.clone(),
            until: Instant::now() + Duration::from_secs(3600),
            permits: Vec::new(),
        }
    }

    fn snapshot(version: i64) -> AuctionView {
        let eur = |amount_minor| MoneyJson {
            amount_minor,
            currency: "EUR".into(),
        };
        AuctionView {
            auction_id: "a".into(),
            seller_id: "s".into(),
            title: "t".into(),
            status: "ACTIVE".into(),
            current_price: eur(100),
            starting_price: eur(100),
            min_increment: eur(10),
            next_minimum_bid: eur(100),
            bid_count: 0,
            leading_bidder: None,
            winner_id: None,
            has_reserve: false,
            reserve_met: false,
            end_time_ms: 0,
            created_at_ms: 0,
            updated_at_ms: 0,
            version,
            bidder_count: 0,
            top_bidders: serde_json::Value::Array(Vec::new()),
            last_bid_automatic: false,
        }
    }

    fn event(tenant: &str, auction: &str, version: u64) -> LiveEvent {
        LiveEvent {
            tenant_id: tenant.into(),
            auction_id: auction.into(),
            version,
            kind: "BidPlaced",
            data: format!(r#"{{"version":{version}}}"#),
        }
    }

    async fn frames(
        events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
        count: usize,
    ) -> Vec<String> {
        let body = Sse::new(events).into_response().into_body();
        body.into_data_stream()
            .take(count)
            .map(|frame| String::from_utf8(frame.unwrap().to_vec()).unwrap())
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_snapshot_then_only_newer_events_of_this_auction_and_tenant() {
        let hub = Hub::new();
        hub.publish(event("t", "a", 3)); // already in the snapshot
        hub.publish(event("t", "a", 5)); // newer than the snapshot
        let receiver = hub.subscribe();
        hub.publish(event("t", "a", 5)); // seen in the backlog already
        hub.publish(event("u", "a", 6)); // another tenant
        hub.publish(event("t", "b", 6)); // another auction
        hub.publish(event("t", "a", 6));
        let backlog = hub.recent("t", "a");
        let stream = events(
            &snapshot(4),
            backlog,
            receiver,
            watch("t", &Shutdown::new()),
        );
        let got = frames(stream, 3).await;
        assert!(
            got[0].contains("event: snapshot") && got[0].contains("id: 4"),
            "{got:?}"
        );
        assert!(
            got[1].contains("event: BidPlaced") && got[1].contains("id: 5"),
            "{got:?}"
        );
        assert!(
            got[2].contains("event: BidPlaced") && got[2].contains("id: 6"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_told_to_refetch_and_goes_on() {
        let hub = Hub::new();
        let receiver = hub.subscribe();
        let extra = 10;
        for version in 1..=(CHANNEL_CAPACITY as u64 + extra) {
            hub.publish(event("t", "a", version));
        }
        let stream = events(
            &snapshot(0),
            Vec::new(),
            receiver,
            watch("t", &Shutdown::new()),
        );
        let got = frames(stream, 3).await;
        assert!(got[1].contains("event: lagged"), "{got:?}");
        assert!(got[1].contains("\"refetch\":true"), "{got:?}");
        assert!(got[2].contains(&format!("id: {}", extra + 1)), "{got:?}");
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream() {
        let hub = Hub::new();
        let shutdown = Shutdown::new();
        let stream = events(
            &snapshot(1),
            Vec::new(),
            hub.subscribe(),
            watch("t", &shutdown),
        );
        shutdown.trigger();
        assert_eq!(frames(stream, 5).await.len(), 1, "only the snapshot");
    }

    #[tokio::test]
    async fn the_stream_ends_when_its_token_expires_and_frees_its_slot() {
        let hub = Hub::new();
        let limiter = gavel_http::StreamLimiter::new(1);
        let mut watch = watch("t", &Shutdown::new());
        watch.until = Instant::now() + Duration::from_millis(200);
        watch.permits.push(limiter.try_open("ann".into()).unwrap());
        let stream = events(&snapshot(1), Vec::new(), hub.subscribe(), watch);
        let ended = tokio::time::timeout(Duration::from_secs(5), frames(stream, 5)).await;
        assert_eq!(ended.expect("ends at expiry").len(), 1, "only the snapshot");
        assert_eq!(limiter.open("ann"), 0);
    }
}
