//! The auction_list table: active auctions only, version-guarded upserts and
//! deletes (a delisted auction's tombstone carries the version that ended it).

use super::columns::{column, int4, int8, to_ts, try_column};
use crate::SinkError;
use gavel_domain::views::AuctionListItem;
use tokio_postgres::GenericClient;

pub const MIGRATION_SQL: &str = "
CREATE TABLE {schema}.auction_list (
    auction_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    seller_id text NOT NULL,
    title text NOT NULL,
    currency char(3) NOT NULL,
    current_price_minor bigint NOT NULL,
    bid_count integer NOT NULL,
    end_time timestamptz NOT NULL,
    version bigint NOT NULL
);
CREATE INDEX auction_list_by_end ON {schema}.auction_list (tenant_id, end_time, auction_id);
CREATE INDEX auction_list_by_price ON {schema}.auction_list (tenant_id, current_price_minor, auction_id);";

pub async fn upsert(
    client: &impl GenericClient,
    table: &str,
    rows: &[&AuctionListItem],
) -> Result<u64, SinkError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let bid_counts = try_column(rows, |r| int4("bid_count", r.bid_count))?;
    let versions = try_column(rows, |r| int8("version", r.version))?;
    let sql = format!(
        "INSERT INTO {table} AS t (auction_id, tenant_id, seller_id, title, currency,
             current_price_minor, bid_count, end_time, version)
         SELECT id, tenant, seller, title, cur, cp, bc, {}, v
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
                     $7::int4[], $8::int8[], $9::int8[])
              AS u(id, tenant, seller, title, cur, cp, bc, et, v)
         ON CONFLICT (auction_id) DO UPDATE SET
             current_price_minor = excluded.current_price_minor, bid_count = excluded.bid_count,
             version = excluded.version
         WHERE excluded.version > t.version",
        to_ts("et")
    );
    let written = client
        .execute(
            &sql,
            &[
                &column(rows, |r| r.auction_id.to_string()),
                &column(rows, |r| r.tenant_id.to_string()),
                &column(rows, |r| r.seller_id.to_string()),
                &column(rows, |r| r.title.clone()),
                &column(rows, |r| r.current_price.currency().to_string()),
                &column(rows, |r| r.current_price.minor()),
                &bid_counts,
                &column(rows, |r| r.end_time.millis()),
                &versions,
            ],
        )
        .await?;
    Ok(written)
}

/// Deletes each auction unless the row is newer than the tombstone.
pub async fn delete(
    client: &impl GenericClient,
    table: &str,
    tombstones: &[(&str, u64)],
) -> Result<u64, SinkError> {
    if tombstones.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = tombstones.iter().map(|(id, _)| *id).collect();
    let versions = tombstones
        .iter()
        .map(|(_, v)| int8("tombstone version", *v))
        .collect::<Result<Vec<i64>, _>>()?;
    let sql = format!(
        "DELETE FROM {table} t USING UNNEST($1::text[], $2::int8[]) AS d(id, v)
         WHERE t.auction_id = d.id AND t.version <= d.v"
    );
    Ok(client.execute(&sql, &[&ids, &versions]).await?)
}
