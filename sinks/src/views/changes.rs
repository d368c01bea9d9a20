//! View records decoded and folded into the latest change per view id, then
//! written with one statement per table. Records of one key live in one
//! partition and arrive in offset order, so the last one read is the newest.

use super::{details_sql, list_sql, user_bids_sql, View};
use crate::{narrow, SinkError};
use gavel_domain::views::{AuctionDetails, AuctionListItem, ListChange, UserBid, ViewChanges};
use gavel_runtime::avro::{json, AvroCodec};
use gavel_runtime::dlq::ErrorClass;
use gavel_runtime::envelope::{header, header_str};
use gavel_runtime::view_wire::{
    legacy_json, AUCTION_DETAILS_RECORD, AUCTION_LIST_RECORD, USER_BID_RECORD,
};
use rdkafka::message::{Message, OwnedMessage};
use std::collections::HashMap;
use tokio_postgres::{GenericClient, Transaction};

/// One view record's value, decoded (see the sink's `read_row`).
pub enum Row {
    Details(AuctionDetails),
    Listed(AuctionListItem),
    UserBid(UserBid),
}

/// The row a view record holds (`None` for a tombstone), or why it never
/// will be one. A registry outage is an error (the caller retries).
pub async fn read_row(
    codec: &AvroCodec,
    view: View,
    message: &OwnedMessage,
) -> Result<Result<Option<Row>, String>, SinkError> {
    let Some(payload) = message.payload() else {
        return Ok(Ok(None));
    };
    if let Some(row) = legacy_row(view, payload) {
        return Ok(Ok(Some(row)));
    }
    let decoded = match codec.decode(payload).await {
        Ok(decoded) => decoded,
        Err(error) if ErrorClass::of(&error).is_some() => return Ok(Err(error.to_string())),
        Err(error) => return Err(error.into()),
    };
    let row = match view {
        View::AuctionDetails => json::decode(decoded, AUCTION_DETAILS_RECORD).map(Row::Details),
        View::AuctionList => json::decode(decoded, AUCTION_LIST_RECORD).map(Row::Listed),
        View::UserBids => json::decode(decoded, USER_BID_RECORD).map(Row::UserBid),
    };
    Ok(row.map(Some).map_err(|e| format!("not a view row: {e}")))
}

/// A row of `view` as the JSON releases before the Avro contract wrote.
fn legacy_row(view: View, payload: &[u8]) -> Option<Row> {
    match view {
        View::AuctionDetails => legacy_json(payload).map(Row::Details),
        View::AuctionList => legacy_json(payload).map(Row::Listed),
        View::UserBids => legacy_json(payload).map(Row::UserBid),
    }
}

enum Listing {
    Listed(AuctionListItem),
    Delisted { version: u64 },
}

/// The newest change per view id of one batch, per view.
#[derive(Default)]
pub struct Changes {
    details: HashMap<String, AuctionDetails>,
    list: HashMap<String, Listing>,
    user_bids: HashMap<String, UserBid>,
}

impl Changes {
    /// Adds one record of `view`'s topic (`row` decoded from it, `None` for a
    /// tombstone) and returns its view id; an error says why it cannot be used.
    pub fn add(
        &mut self,
        view: View,
        message: &OwnedMessage,
        row: Option<Row>,
    ) -> Result<String, String> {
        let key = message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or("record has no UTF-8 key")?
            .to_owned();
        match (view, row) {
            (View::AuctionDetails, Some(Row::Details(details))) => {
                self.details.insert(key.clone(), details);
            }
            (View::AuctionList, Some(Row::Listed(item))) => {
                self.list.insert(key.clone(), Listing::Listed(item));
            }
            (View::AuctionList, None) => {
                let version = tombstone_version(message)?;
                self.list.insert(key.clone(), Listing::Delisted { version });
            }
            (View::UserBids, Some(Row::UserBid(row))) => {
                self.user_bids.insert(key.clone(), row);
            }
            (View::AuctionDetails | View::UserBids, None) => {
                return Err("unexpected tombstone: this view never deletes".into())
            }
            (_, Some(_)) => return Err("a row of another view".into()),
        }
        Ok(key)
    }

    /// Adds what one event changed in the views `include` selects, as the
    /// projector's records for it would (same keys, same tombstone version).
    /// The rows are moved in: a closing event carries every bidder's row.
    pub fn add_projected(&mut self, changes: ViewChanges, include: impl Fn(View) -> bool) {
        let auction_key = changes.details.auction_id.to_string();
        if include(View::AuctionList) {
            match changes.list {
                ListChange::Unchanged => {}
                ListChange::Upsert(item) => {
                    self.list.insert(auction_key.clone(), Listing::Listed(item));
                }
                ListChange::Delete { version } => {
                    self.list
                        .insert(auction_key.clone(), Listing::Delisted { version });
                }
            }
        }
        if include(View::UserBids) {
            for row in changes.user_bids {
                self.user_bids.insert(row.key(), row);
            }
        }
        if include(View::AuctionDetails) {
            self.details.insert(auction_key, changes.details);
        }
    }

    /// How many rows the changes hold (each written once by `write`).
    pub fn len(&self) -> usize {
        self.details.len() + self.list.len() + self.user_bids.len()
    }

    /// Writes the changes of `view` into `table`; returns the rows changed.
    pub async fn write(
        &self,
        client: &impl GenericClient,
        view: View,
        table: &str,
    ) -> Result<u64, SinkError> {
        match view {
            View::AuctionDetails => {
                let rows: Vec<&AuctionDetails> = self.details.values().collect();
                details_sql::upsert(client, table, &rows).await
            }
            View::UserBids => {
                let rows: Vec<&UserBid> = self.user_bids.values().collect();
                user_bids_sql::upsert(client, table, &rows).await
            }
            View::AuctionList => {
                let (listed, delisted) = self.listing();
                let listed: Vec<&AuctionListItem> = listed.into_iter().map(|(_, r)| r).collect();
                let delisted: Vec<(&str, u64)> = delisted.into_iter().map(|(_, d)| d).collect();
                Ok(list_sql::upsert(client, table, &listed).await?
                    + list_sql::delete(client, table, &delisted).await?)
            }
        }
    }

    /// `write` inside `tx`, narrowed to the rows Postgres refuses (see
    /// `narrow`): the others are written, the refused ones named by view id.
    pub async fn write_narrowing(
        &self,
        tx: &mut Transaction<'_>,
        view: View,
        table: &str,
    ) -> Result<Written, SinkError> {
        match view {
            View::AuctionDetails => {
                let rows = self.details.iter().map(|(k, r)| (k.as_str(), r)).collect();
                keyed(tx, table, rows, |tx, table, rows| {
                    Box::pin(details_sql::upsert(tx, table, rows))
                })
                .await
            }
            View::UserBids => {
                let rows = self
                    .user_bids
                    .iter()
                    .map(|(k, r)| (k.as_str(), r))
                    .collect();
                keyed(tx, table, rows, |tx, table, rows| {
                    Box::pin(user_bids_sql::upsert(tx, table, rows))
                })
                .await
            }
            View::AuctionList => {
                let (listed, delisted) = self.listing();
                let mut written = keyed(tx, table, listed, |tx, table, rows| {
                    Box::pin(list_sql::upsert(tx, table, rows))
                })
                .await?;
                let deleted = keyed(tx, table, delisted, |tx, table, rows| {
                    Box::pin(list_sql::delete(tx, table, rows))
                })
                .await?;
                written.rows += deleted.rows;
                written.refused.extend(deleted.refused);
                Ok(written)
            }
        }
    }

    /// The list changes by key: rows to upsert, and (id, version) tombstones.
    #[allow(clippy::type_complexity)]
    fn listing(&self) -> (Vec<(&str, &AuctionListItem)>, Vec<(&str, (&str, u64))>) {
        let mut listed = Vec::new();
        let mut delisted = Vec::new();
        for (key, change) in &self.list {
            match change {
                Listing::Listed(item) => listed.push((key.as_str(), item)),
                Listing::Delisted { version } => {
                    delisted.push((key.as_str(), (key.as_str(), *version)))
                }
            }
        }
        (listed, delisted)
    }
}

/// What `write_narrowing` did to one view.
#[derive(Debug, Default)]
pub struct Written {
    pub rows: u64,
    /// (view id, why Postgres or its column refused the row).
    pub refused: Vec<(String, String)>,
}

/// Writes keyed rows into `table` through `write`, narrowed; refusals named by key.
async fn keyed<T: Sync>(
    tx: &mut Transaction<'_>,
    table: &str,
    rows: Vec<(&str, T)>,
    write: narrow::Write<str, T>,
) -> Result<Written, SinkError> {
    let (keys, rows): (Vec<&str>, Vec<T>) = rows.into_iter().unzip();
    let narrowed = narrow::write_narrowing(tx, table, &rows, write).await?;
    let refused = narrowed
        .refused
        .into_iter()
        .map(|r| (keys[r.index].to_owned(), r.reason))
        .collect();
    Ok(Written {
        rows: narrowed.written,
        refused,
    })
}

fn tombstone_version(message: &OwnedMessage) -> Result<u64, String> {
    message
        .headers()
        .and_then(|h| header_str(h, header::AGGREGATE_VERSION))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "tombstone without a version header".to_owned())
}
