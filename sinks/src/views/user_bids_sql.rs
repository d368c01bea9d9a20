//! The user_bids table: one row per (user, auction), version-guarded upserts.

use super::columns::{column, int4, int8, to_ts, try_column};
use crate::SinkError;
use gavel_domain::views::UserBid;
use tokio_postgres::GenericClient;

pub const MIGRATION_SQL: &str = "
CREATE TABLE {schema}.user_bids (
    user_id text NOT NULL,
    auction_id text NOT NULL,
    tenant_id text NOT NULL,
    title text NOT NULL,
    currency char(3) NOT NULL,
    highest_bid_minor bigint NOT NULL,
    bid_count integer NOT NULL,
    status text NOT NULL,
    end_time timestamptz NOT NULL,
    last_bid_at timestamptz NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (user_id, auction_id)
);
CREATE INDEX user_bids_by_user ON {schema}.user_bids (tenant_id, user_id, last_bid_at DESC, auction_id);";

pub async fn upsert(
    client: &impl GenericClient,
    table: &str,
    rows: &[&UserBid],
) -> Result<u64, SinkError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let bid_counts = try_column(rows, |r| int4("bid_count", r.bid_count))?;
    let versions = try_column(rows, |r| int8("version", r.version))?;
    let sql = format!(
        "INSERT INTO {table} AS t (user_id, auction_id, tenant_id, title, currency,
             highest_bid_minor, bid_count, status, end_time, last_bid_at, version)
         SELECT u, a, tenant, title, cur, hb, bc, st, {}, {}, v
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
                     $7::int4[], $8::text[], $9::int8[], $10::int8[], $11::int8[])
              AS r(u, a, tenant, title, cur, hb, bc, st, et, lb, v)
         ON CONFLICT (user_id, auction_id) DO UPDATE SET
             highest_bid_minor = excluded.highest_bid_minor, bid_count = excluded.bid_count,
             status = excluded.status, last_bid_at = excluded.last_bid_at, version = excluded.version
         WHERE excluded.version > t.version",
        to_ts("et"),
        to_ts("lb")
    );
    let written = client
        .execute(
            &sql,
            &[
                &column(rows, |r| r.user_id.to_string()),
                &column(rows, |r| r.auction_id.to_string()),
                &column(rows, |r| r.tenant_id.to_string()),
                &column(rows, |r| r.title.clone()),
                &column(rows, |r| r.highest_bid.currency().to_string()),
                &column(rows, |r| r.highest_bid.minor()),
                &bid_counts,
                &column(rows, |r| r.status.as_str().to_owned()),
                &column(rows, |r| r.end_time.millis()),
                &column(rows, |r| r.last_bid_at.millis()),
                &versions,
            ],
        )
        .await?;
    Ok(written)
}
