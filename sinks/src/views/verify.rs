//! Compares the auction_details table with the state the pure domain predicts:
//! the demo's "caught up" check and the end-to-end tests' assertion.

use super::{details_sql, View};
use crate::SinkError;
use gavel_domain::auction::Auction;
use gavel_domain::views::{AuctionDetails, AuctionListItem, UserBid};
use gavel_domain::AuctionId;
use std::collections::BTreeMap;
use tokio_postgres::GenericClient;

#[derive(Debug, Default)]
pub struct Comparison {
    pub matching: usize,
    pub missing: usize,
    /// One line per row that differs, saying how.
    pub differences: Vec<String>,
    /// The rows read, for printing examples.
    pub rows: Vec<AuctionDetails>,
}

impl Comparison {
    pub fn all_match(&self) -> bool {
        self.missing == 0 && self.differences.is_empty()
    }
}

pub async fn compare(
    client: &impl GenericClient,
    schema: &str,
    expected: &BTreeMap<AuctionId, Auction>,
) -> Result<Comparison, SinkError> {
    let ids: Vec<&str> = expected.keys().map(AuctionId::as_str).collect();
    let mut comparison = Comparison::default();
    let mut rows: BTreeMap<String, AuctionDetails> = BTreeMap::new();
    for chunk in ids.chunks(5_000) {
        for row in details_sql::load(client, &View::AuctionDetails.table(schema), chunk).await? {
            rows.insert(row.auction_id.to_string(), row);
        }
    }
    for (id, auction) in expected {
        match rows.get(id.as_str()) {
            None => comparison.missing += 1,
            Some(row) => match difference(row, auction) {
                None => comparison.matching += 1,
                Some(diff) => comparison.differences.push(format!("{id}: {diff}")),
            },
        }
    }
    comparison.rows = rows.into_values().collect();
    Ok(comparison)
}

fn difference(row: &AuctionDetails, auction: &Auction) -> Option<String> {
    let checks = [
        (
            "status",
            row.status.as_str().to_owned(),
            auction.status.as_str().to_owned(),
        ),
        (
            "price",
            row.current_price.to_string(),
            auction.current_price.to_string(),
        ),
        (
            "bids",
            row.bid_count.to_string(),
            auction.bid_count.to_string(),
        ),
        (
            "leader",
            format!("{:?}", row.leading_bidder),
            format!("{:?}", auction.leading_bidder),
        ),
        (
            "winner",
            format!("{:?}", row.winner_id),
            format!("{:?}", auction.winner_id),
        ),
        (
            "version",
            row.version.to_string(),
            auction.version.to_string(),
        ),
    ];
    let diffs: Vec<String> = checks
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what} is {got}, expected {want}"))
        .collect();
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

/// Checks that auction_list and user_bids agree with auction_details: every
/// active auction listed with its price and bid count, nothing else listed,
/// and one user_bids row per bidder with the bid, count and standing the pure
/// views derive from the details row. Returns one line per disagreement.
pub async fn derived_views_disagreements(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Vec<String>, SinkError> {
    let details = all_details(client, schema).await?;
    let mut problems = Vec::new();
    let listed: BTreeMap<String, (i64, i32)> = client
        .query(
            &format!(
                "SELECT auction_id, current_price_minor, bid_count FROM {schema}.auction_list"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let mut user_rows: BTreeMap<(String, String), (i64, i32, String)> = client
        .query(
            &format!(
                "SELECT user_id, auction_id, highest_bid_minor, bid_count, status FROM {schema}.user_bids"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3), r.get(4))))
        .collect();
    for row in &details {
        let id = row.auction_id.to_string();
        let want_listed = AuctionListItem::of(row)
            .map(|item| (item.current_price.minor(), item.bid_count as i32));
        if listed.get(&id).copied() != want_listed {
            problems.push(format!(
                "auction_list {id}: {:?}, expected {want_listed:?}",
                listed.get(&id)
            ));
        }
        for bidder in &row.bidders {
            let want = UserBid::of(row, &bidder.user_id).map(|b| {
                (
                    b.highest_bid.minor(),
                    b.bid_count as i32,
                    b.status.as_str().to_owned(),
                )
            });
            let got = user_rows.remove(&(bidder.user_id.to_string(), id.clone()));
            if got != want {
                problems.push(format!(
                    "user_bids {}/{id}: {got:?}, expected {want:?}",
                    bidder.user_id
                ));
            }
        }
    }
    let known: std::collections::BTreeSet<String> =
        details.iter().map(|d| d.auction_id.to_string()).collect();
    problems.extend(
        listed
            .keys()
            .filter(|id| !known.contains(*id))
            .map(|id| format!("auction_list {id}: listed but has no details row")),
    );
    problems.extend(
        user_rows
            .keys()
            .map(|(user, id)| format!("user_bids {user}/{id}: row for a bid the details lack")),
    );
    Ok(problems)
}

async fn all_details(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Vec<AuctionDetails>, SinkError> {
    let ids: Vec<String> = client
        .query(
            &format!("SELECT auction_id FROM {schema}.auction_details"),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(5_000) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        rows.extend(details_sql::load(client, &View::AuctionDetails.table(schema), &chunk).await?);
    }
    Ok(rows)
}
