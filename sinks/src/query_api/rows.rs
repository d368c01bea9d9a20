//! Reads of the `auction_details` read model, always filtered by tenant, and
//! the JSON shape of a row. Money is integer minor units plus currency.

use super::cursor::Cursors;
use super::error::ApiError;
use super::params::{Cursor, ListParams, Order, SortKey};
use serde::Serialize;
use std::time::Duration;
use tokio_postgres::{GenericClient, Row};

/// Every read is bounded: a stuck database is a 503, not a hung client.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MoneyJson {
    pub amount_minor: i64,
    pub currency: String,
}

/// One auction as clients see it. The reserve amount stays private: clients
/// learn whether there is one and whether the current price meets it.
#[derive(Debug, Clone, Serialize)]
pub struct AuctionView {
    pub auction_id: String,
    pub seller_id: String,
    pub title: String,
    pub status: String,
    pub current_price: MoneyJson,
    pub starting_price: MoneyJson,
    pub min_increment: MoneyJson,
    /// The lowest bid the auction accepts now.
    pub next_minimum_bid: MoneyJson,
    pub bid_count: i32,
    pub leading_bidder: Option<String>,
    pub winner_id: Option<String>,
    pub has_reserve: bool,
    pub reserve_met: bool,
    pub end_time_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
    /// How many distinct users bid.
    pub bidder_count: i32,
    /// The highest bidders, highest first (user, highest bid, bid count, last
    /// bid time): the bid history summary, at most ten.
    pub top_bidders: serde_json::Value,
    /// True when the current price was bid by the leader's proxy (their
    /// maximum stays private).
    pub last_bid_automatic: bool,
}

impl AuctionView {
    /// The value this row has for `sort`, as stored in a cursor.
    pub fn sort_key(&self, sort: SortKey) -> i64 {
        match sort {
            SortKey::EndTime => self.end_time_ms,
            SortKey::CurrentPrice => self.current_price.amount_minor,
            SortKey::BidCount => i64::from(self.bid_count),
        }
    }
}

fn ms(column: &str) -> String {
    format!("(extract(epoch from {column}) * 1000)::int8")
}

fn columns() -> String {
    format!(
        "auction_id, seller_id, title, status, currency, starting_price_minor, reserve_price_minor,
         min_increment_minor, current_price_minor, bid_count, leading_bidder, winner_id, {}, {}, {}, version,
         bidder_count, jsonb_path_query_array(bidders, '$[0 to 9]')::text, last_bid_automatic",
        ms("end_time"),
        ms("created_at"),
        ms("updated_at")
    )
}

fn view(row: &Row) -> Result<AuctionView, ApiError> {
    let auction_id: String = row.try_get(0).map_err(ApiError::internal)?;
    let currency: &str = row.try_get(4).map_err(ApiError::internal)?;
    let money = |minor: i64| MoneyJson {
        amount_minor: minor,
        currency: currency.trim().to_owned(),
    };
    let starting: i64 = row.try_get(5).map_err(ApiError::internal)?;
    let reserve: Option<i64> = row.try_get(6).map_err(ApiError::internal)?;
    let increment: i64 = row.try_get(7).map_err(ApiError::internal)?;
    let current: i64 = row.try_get(8).map_err(ApiError::internal)?;
    let bid_count: i32 = row.try_get(9).map_err(ApiError::internal)?;
    let next_minimum = if bid_count == 0 {
        starting
    } else {
        current.saturating_add(increment)
    };
    Ok(AuctionView {
        auction_id,
        seller_id: row.try_get(1).map_err(ApiError::internal)?,
        title: row.try_get(2).map_err(ApiError::internal)?,
        status: row.try_get(3).map_err(ApiError::internal)?,
        current_price: money(current),
        starting_price: money(starting),
        min_increment: money(increment),
        next_minimum_bid: money(next_minimum),
        bid_count,
        leading_bidder: row.try_get(10).map_err(ApiError::internal)?,
        winner_id: row.try_get(11).map_err(ApiError::internal)?,
        has_reserve: reserve.is_some(),
        reserve_met: bid_count > 0 && reserve.is_none_or(|r| current >= r),
        end_time_ms: row.try_get(12).map_err(ApiError::internal)?,
        created_at_ms: row.try_get(13).map_err(ApiError::internal)?,
        updated_at_ms: row.try_get(14).map_err(ApiError::internal)?,
        version: row.try_get(15).map_err(ApiError::internal)?,
        bidder_count: row.try_get(16).map_err(ApiError::internal)?,
        top_bidders: serde_json::from_str(row.try_get(17).map_err(ApiError::internal)?)
            .map_err(ApiError::internal)?,
        last_bid_automatic: row.try_get(18).map_err(ApiError::internal)?,
    })
}

pub(super) async fn bounded<T>(
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(QUERY_TIMEOUT, query).await {
        Ok(result) => result.map_err(super::error::from_postgres),
        Err(_) => Err(ApiError::unavailable("database query timed out")),
    }
}

/// One auction of `tenant`; another tenant's auction is simply not found.
pub async fn details(
    client: &impl GenericClient,
    schema: &str,
    tenant: &str,
    auction_id: &str,
) -> Result<Option<AuctionView>, ApiError> {
    let sql = format!(
        "SELECT {} FROM {schema}.auction_details WHERE auction_id = $1 AND tenant_id = $2",
        columns()
    );
    let row = bounded(client.query_opt(&sql, &[&auction_id, &tenant])).await?;
    row.as_ref().map(view).transpose()
}

/// One page: keyset pagination on (sort key, auction_id), so a page is stable
/// however many rows change elsewhere and costs the same at any depth.
pub async fn list(
    client: &impl GenericClient,
    schema: &str,
    tenant: &str,
    params: &ListParams,
    cursors: &Cursors,
) -> Result<(Vec<AuctionView>, Option<String>), ApiError> {
    let (expr, key_expr) = match params.sort {
        SortKey::EndTime => (
            "end_time",
            "('epoch'::timestamptz + ($4::int8 * interval '1 millisecond'))",
        ),
        SortKey::CurrentPrice => ("current_price_minor", "$4::int8"),
        SortKey::BidCount => ("bid_count::int8", "$4::int8"),
    };
    let (op, dir) = match params.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    let fetch = params.limit + 1;
    // Active auctions page through the narrow auction_list view (its indexes
    // are made for this); the rows of a page are then read by primary key.
    let (base, active) = if params.status == "ACTIVE" {
        (
            format!("SELECT auction_id FROM {schema}.auction_list WHERE tenant_id = $1 AND $2::text = 'ACTIVE'"),
            true,
        )
    } else {
        (
            format!(
                "SELECT {} FROM {schema}.auction_details WHERE tenant_id = $1 AND status = $2",
                columns()
            ),
            false,
        )
    };
    let order_by = format!("ORDER BY {expr} {dir}, auction_id {dir} LIMIT $3");
    let rows = match &params.after {
        None => {
            let sql = format!("{base} {order_by}");
            bounded(client.query(&sql, &[&tenant, &params.status, &fetch])).await?
        }
        Some(Cursor { key, auction_id }) => {
            let sql = format!("{base} AND ({expr}, auction_id) {op} ({key_expr}, $5) {order_by}");
            let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&tenant, &params.status, &fetch, key, auction_id];
            bounded(client.query(&sql, &args)).await?
        }
    };
    let rows = if active {
        let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        by_ids_in_order(client, schema, tenant, &ids).await?
    } else {
        rows
    };
    let mut items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() as i64 > params.limit;
    items.truncate(params.limit as usize);
    let next = match items.last() {
        Some(last) if more => Some(params.encode_cursor(
            cursors,
            &Cursor {
                key: last.sort_key(params.sort),
                auction_id: last.auction_id.clone(),
            },
        )),
        _ => None,
    };
    Ok((items, next))
}

/// The details rows of `ids`, in the order of `ids`.
async fn by_ids_in_order(
    client: &impl GenericClient,
    schema: &str,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<Row>, ApiError> {
    let sql = format!(
        "SELECT {} FROM {schema}.auction_details d
         JOIN UNNEST($1::text[]) WITH ORDINALITY AS page(id, n) ON d.auction_id = page.id
         WHERE d.tenant_id = $2 ORDER BY page.n",
        columns()
    );
    bounded(client.query(&sql, &[&ids, &tenant])).await
}

/// Liveness of the database for `/readyz`.
pub async fn ping(client: &impl GenericClient) -> Result<(), ApiError> {
    bounded(client.query_one("SELECT 1", &[])).await.map(drop)
}
