//! Compares the auction_details table with the state the pure domain predicts:
//! the demo's "caught up" check and the end-to-end tests' assertion.

use super::{details_sql, View};
use crate::SinkError;
use gavel_domain::auction::{Auction, AuctionStatus};
use gavel_domain::views::{AuctionDetails, AuctionListItem, UserBid, UserBidStatus};
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
    let mut user_rows = user_rows_by_auction(client, schema).await?;
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
        let rows = user_rows.remove(&id).unwrap_or_default();
        problems.extend(user_rows_disagreements(row, rows));
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
            .map(|id| format!("user_bids of auction {id}: rows for an auction without details")),
    );
    Ok(problems)
}

/// A user_bids row's highest bid, bid count and status, by user.
type UserRows = BTreeMap<String, (i64, i32, String)>;

async fn user_rows_by_auction(
    client: &impl GenericClient,
    schema: &str,
) -> Result<BTreeMap<String, UserRows>, SinkError> {
    let mut by_auction: BTreeMap<String, UserRows> = BTreeMap::new();
    let sql = format!(
        "SELECT user_id, auction_id, highest_bid_minor, bid_count, status FROM {schema}.user_bids"
    );
    for r in client.query(&sql, &[]).await? {
        by_auction
            .entry(r.get(1))
            .or_default()
            .insert(r.get(0), (r.get(2), r.get(3), r.get(4)));
    }
    Ok(by_auction)
}

/// The user rows of one auction against its details row: one row per bidder;
/// the bidders the row lists (the top ones while it runs, all once closed) with
/// exactly the figures and standing derived from it; any other bidder outbid.
fn user_rows_disagreements(row: &AuctionDetails, mut rows: UserRows) -> Vec<String> {
    let id = row.auction_id.as_str();
    let mut problems = Vec::new();
    let bidders = (row.bidder_count as usize).max(row.bidders.len());
    if rows.len() != bidders {
        problems.push(format!(
            "user_bids of {id}: {} rows, expected one per bidder ({bidders})",
            rows.len()
        ));
    }
    // Every accepted bid is some bidder's: a bidder's lost or doubled state
    // shows here even when the bidder is not among those the row lists.
    let counted: i64 = rows.values().map(|(_, count, _)| i64::from(*count)).sum();
    if counted != i64::from(row.bid_count) {
        problems.push(format!(
            "user_bids of {id}: bid counts add up to {counted}, the auction has {} bids",
            row.bid_count
        ));
    }
    for bidder in &row.bidders {
        let want = UserBid::of(row, bidder);
        let want = Some((
            want.highest_bid.minor(),
            want.bid_count as i32,
            want.status.as_str().to_owned(),
        ));
        let got = rows.remove(bidder.user_id.as_str());
        if got != want {
            problems.push(format!(
                "user_bids {}/{id}: {got:?}, expected {want:?}",
                bidder.user_id
            ));
        }
    }
    // A bidder below the listed ones neither leads nor won.
    let below_top = match row.status {
        AuctionStatus::Ended => UserBidStatus::Lost,
        AuctionStatus::Cancelled => UserBidStatus::Cancelled,
        AuctionStatus::Draft | AuctionStatus::Active => UserBidStatus::Outbid,
    }
    .as_str();
    problems.extend(
        rows.iter()
            .filter(|(_, (_, _, status))| status != below_top)
            .map(|(user, got)| {
                format!(
                    "user_bids {user}/{id}: {got:?}, expected {below_top} below the listed bidders"
                )
            }),
    );
    problems
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
