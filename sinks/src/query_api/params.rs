//! Request inputs, validated: the list query and its cursor. Every refusal
//! names the parameter and what would have been accepted.

use super::cursor::{self, Cursors};
use std::collections::HashSet;

pub const MAX_LIMIT: i64 = 100;
const DEFAULT_LIMIT: i64 = 20;
const STATUSES: [&str; 4] = ["DRAFT", "ACTIVE", "ENDED", "CANCELLED"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    EndTime,
    CurrentPrice,
    BidCount,
}

impl SortKey {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "end_time" => Some(Self::EndTime),
            "current_price" => Some(Self::CurrentPrice),
            "bid_count" => Some(Self::BidCount),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndTime => "end_time",
            Self::CurrentPrice => "current_price",
            Self::BidCount => "bid_count",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

/// Where the previous page stopped: its last row's sort key and auction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub auction_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub status: &'static str,
    pub sort: SortKey,
    pub order: Order,
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl ListParams {
    /// From the raw query pairs: unknown or repeated parameters are refused too,
    /// so a typo (`sort_by=`) is a 400, not a silently different page.
    pub fn parse(pairs: &[(String, String)], cursors: &Cursors) -> Result<Self, String> {
        let mut seen = HashSet::new();
        let mut params = Self {
            status: "ACTIVE",
            sort: SortKey::EndTime,
            order: Order::Asc,
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
                    params.status = STATUSES.into_iter().find(|s| *s == value).ok_or_else(|| {
                        format!(
                            "status must be one of {}, got {value:?}",
                            STATUSES.join(", ")
                        )
                    })?
                }
                "sort" => {
                    params.sort = SortKey::parse(value).ok_or_else(|| {
                        format!("sort must be end_time, current_price or bid_count, got {value:?}")
                    })?
                }
                "order" => {
                    params.order = match value.as_str() {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => return Err(format!("order must be asc or desc, got {value:?}")),
                    }
                }
                "limit" => params.limit = parse_limit(value)?,
                "cursor" => cursor = Some(value.as_str()),
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}; expected status, sort, order, limit or cursor"
                    ))
                }
            }
        }
        if let Some(raw) = cursor {
            params.after = Some(params.decode_cursor(cursors, raw)?);
        }
        Ok(params)
    }

    /// Opaque to clients: `v1|status|sort|order|key|auction_id`, signed. The
    /// listing it came from is inside, so it cannot be replayed on another one.
    pub fn encode_cursor(&self, cursors: &Cursors, cursor: &Cursor) -> String {
        cursors.seal(&format!(
            "v1|{}|{}|{}|{}|{}",
            self.status,
            self.sort.as_str(),
            self.order.as_str(),
            cursor.key,
            cursor.auction_id
        ))
    }

    fn decode_cursor(&self, cursors: &Cursors, raw: &str) -> Result<Cursor, String> {
        let invalid =
            || "cursor is not valid: pass next_cursor of a previous page as is".to_owned();
        let plain = cursors.open(raw)?;
        let mut parts = plain.splitn(6, '|');
        let mut next = || parts.next().ok_or_else(invalid);
        let (version, status, sort, order) = (next()?, next()?, next()?, next()?);
        let key = match self.sort {
            SortKey::EndTime => cursor::timestamp_ms(next()?)?,
            _ => next()?.parse::<i64>().map_err(|_| invalid())?,
        };
        let auction_id = next()?;
        if version != "v1" || auction_id.is_empty() {
            return Err(invalid());
        }
        if status != self.status || sort != self.sort.as_str() || order != self.order.as_str() {
            return Err(format!(
                "cursor belongs to status={status}&sort={sort}&order={order}, not to this listing"
            ));
        }
        Ok(Cursor {
            key,
            auction_id: auction_id.to_owned(),
        })
    }
}

/// A page size: 1 to `MAX_LIMIT`.
pub(super) fn parse_limit(value: &str) -> Result<i64, String> {
    value
        .parse::<i64>()
        .ok()
        .filter(|l| (1..=MAX_LIMIT).contains(l))
        .ok_or_else(|| format!("limit must be an integer from 1 to {MAX_LIMIT}, got {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors() -> Cursors {
        Cursors::new(gavel_http::signing::Signer::derived("test", "key"))
    }

    fn parse(query: &[(&str, &str)]) -> Result<ListParams, String> {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ListParams::parse(&pairs, &cursors())
    }

    #[test]
    fn defaults_are_active_by_end_time_ascending_twenty() {
        let params = parse(&[]).unwrap();
        assert_eq!(params.status, "ACTIVE");
        assert_eq!(params.sort, SortKey::EndTime);
        assert_eq!(params.order, Order::Asc);
        assert_eq!(params.limit, 20);
        assert_eq!(params.after, None);
    }

    #[test]
    fn bad_values_are_refused_with_the_parameter_named() {
        for (query, word) in [
            (vec![("status", "OPEN")], "status"),
            (vec![("sort", "price")], "sort"),
            (vec![("order", "up")], "order"),
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "101")], "limit"),
            (vec![("limit", "ten")], "limit"),
            (vec![("cursor", "zz")], "cursor"),
            (vec![("page", "2")], "unknown parameter"),
            (vec![("limit", "5"), ("limit", "6")], "more than once"),
        ] {
            let error = parse(&query).unwrap_err();
            assert!(error.contains(word), "{query:?}: {error}");
        }
    }

    #[test]
    fn a_cursor_round_trips_and_only_fits_its_own_listing() {
        let params = parse(&[("sort", "bid_count"), ("order", "desc")]).unwrap();
        let cursor = Cursor {
            key: 7,
            auction_id: "lot|7".into(),
        };
        let encoded = params.encode_cursor(&cursors(), &cursor);
        let again = parse(&[
            ("sort", "bid_count"),
            ("order", "desc"),
            ("cursor", &encoded),
        ])
        .unwrap();
        assert_eq!(again.after, Some(cursor));
        let error = parse(&[("sort", "end_time"), ("cursor", &encoded)]).unwrap_err();
        assert!(error.contains("not to this listing"), "{error}");
    }
}
