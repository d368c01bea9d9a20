//! Compares the auction_details table with the state the pure domain predicts:
//! the demo's "caught up" check and the end-to-end tests' assertion.

use super::sql;
use crate::SinkError;
use gavel_domain::auction::Auction;
use gavel_domain::views::AuctionDetails;
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
        for row in sql::load(client, &sql::live_table(schema), chunk).await? {
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
