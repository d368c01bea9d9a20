//! `GET /users/{id}/bids?status=&limit=&cursor=`: the auctions a user bid on,
//! newest bid first, with their highest bid and standing (LEADING, OUTBID, WON,
//! LOST, CANCELLED), from the `user_bids` read model.

use super::cursor::{self, Cursors};
use super::error::ApiError;
use super::params::parse_limit;
use super::rows::{bounded, MoneyJson};
use gavel_domain::views::UserBidStatus;
use serde::Serialize;
use std::collections::HashSet;
use tokio_postgres::{GenericClient, Row};

const DEFAULT_LIMIT: i64 = 20;

#[derive(Debug, Clone, Serialize)]
pub struct UserBidView {
    pub auction_id: String,
    pub title: String,
    pub status: String,
    pub highest_bid: MoneyJson,
    pub bid_count: i32,
    pub end_time_ms: i64,
    pub last_bid_at_ms: i64,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBidsParams {
    pub status: Option<UserBidStatus>,
    pub limit: i64,
    /// (last_bid_at ms, auction id) of the previous page's last row.
    pub after: Option<(i64, String)>,
}

impl UserBidsParams {
    pub fn parse(
        user: &str,
        pairs: &[(String, String)],
        cursors: &Cursors,
    ) -> Result<Self, String> {
        let mut seen = HashSet::new();
        let mut params = Self {
            status: None,
            limit: DEFAULT_LIMIT,
            after: None,
        };
        let mut cursor = None;
        for (name, value) in pairs {
            if !seen.insert(name.as_str()) {
                return Err(format!("parameter {name} is given more than once"));
            }
            match name.as_str() {
                "status" => {
                    params.status = Some(UserBidStatus::parse(value).ok_or_else(|| {
                        format!("status must be one of LEADING, OUTBID, WON, LOST, CANCELLED, got {value:?}")
                    })?)
                }
                "limit" => params.limit = parse_limit(value)?,
                "cursor" => cursor = Some(value.as_str()),
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}; expected status, limit or cursor"
                    ))
                }
            }
        }
        if let Some(raw) = cursor {
            params.after = Some(params.decode_cursor(cursors, user, raw)?);
        }
        Ok(params)
    }

    fn scope(&self, user: &str) -> String {
        format!(
            "v1|bids|{}|{user}",
            self.status.map_or("ANY", UserBidStatus::as_str)
        )
    }

    /// Opaque to clients: `scope|key|auction_id`, signed, so a cursor only
    /// continues the listing it came from.
    pub fn encode_cursor(
        &self,
        cursors: &Cursors,
        user: &str,
        key: i64,
        auction_id: &str,
    ) -> String {
        cursors.seal(&format!("{}|{key}|{auction_id}", self.scope(user)))
    }

    fn decode_cursor(
        &self,
        cursors: &Cursors,
        user: &str,
        raw: &str,
    ) -> Result<(i64, String), String> {
        let invalid =
            || "cursor is not valid: pass next_cursor of a previous page as is".to_owned();
        let plain = cursors.open(raw)?;
        let rest = plain
            .strip_prefix(&format!("{}|", self.scope(user)))
            .ok_or_else(|| "cursor belongs to another listing".to_owned())?;
        let (key, auction_id) = rest.split_once('|').ok_or_else(invalid)?;
        let key = cursor::timestamp_ms(key)?;
        if auction_id.is_empty() {
            return Err(invalid());
        }
        Ok((key, auction_id.to_owned()))
    }
}

/// One page of `user`'s bids in `tenant`, and the cursor of the next page.
pub async fn page(
    client: &impl GenericClient,
    schema: &str,
    tenant: &str,
    user: &str,
    params: &UserBidsParams,
    cursors: &Cursors,
) -> Result<(Vec<UserBidView>, Option<String>), ApiError> {
    let status = params.status.map(UserBidStatus::as_str);
    let fetch = params.limit + 1;
    let select = format!(
        "SELECT auction_id, title, status, currency, highest_bid_minor, bid_count,
                (extract(epoch from end_time) * 1000)::int8,
                (extract(epoch from last_bid_at) * 1000)::int8, version
         FROM {schema}.user_bids
         WHERE tenant_id = $1 AND user_id = $2 AND ($3::text IS NULL OR status = $3)"
    );
    let order = "ORDER BY last_bid_at DESC, auction_id DESC LIMIT $4";
    let rows = match &params.after {
        None => {
            bounded(client.query(
                &format!("{select} {order}"),
                &[&tenant, &user, &status, &fetch],
            ))
            .await?
        }
        Some((key, after_id)) => {
            let sql = format!(
                "{select} AND (last_bid_at, auction_id)
                   < ('epoch'::timestamptz + ($5::int8 * interval '1 millisecond'), $6) {order}"
            );
            bounded(client.query(&sql, &[&tenant, &user, &status, &fetch, key, after_id])).await?
        }
    };
    let mut items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let more = items.len() as i64 > params.limit;
    items.truncate(params.limit as usize);
    let next = match items.last() {
        Some(last) if more => {
            Some(params.encode_cursor(cursors, user, last.last_bid_at_ms, &last.auction_id))
        }
        _ => None,
    };
    Ok((items, next))
}

fn view(row: &Row) -> Result<UserBidView, ApiError> {
    let get = |i: usize| -> Result<i64, ApiError> { row.try_get(i).map_err(ApiError::internal) };
    Ok(UserBidView {
        auction_id: row.try_get(0).map_err(ApiError::internal)?,
        title: row.try_get(1).map_err(ApiError::internal)?,
        status: row.try_get(2).map_err(ApiError::internal)?,
        highest_bid: MoneyJson {
            amount_minor: get(4)?,
            currency: row.try_get(3).map_err(ApiError::internal)?,
        },
        bid_count: row.try_get(5).map_err(ApiError::internal)?,
        end_time_ms: get(6)?,
        last_bid_at_ms: get(7)?,
        version: get(8)?,
    })
}
