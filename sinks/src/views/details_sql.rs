//! The auction_details table: its migration, and batched load / version-guarded upsert.

use crate::SinkError;
use gavel_domain::auction::AuctionStatus;
use gavel_domain::views::AuctionDetails;
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use tokio_postgres::{GenericClient, Row};

pub const MIGRATION_SQL: &str = "
CREATE TABLE {schema}.auction_details (
    auction_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    seller_id text NOT NULL,
    title text NOT NULL,
    status text NOT NULL,
    currency char(3) NOT NULL,
    starting_price_minor bigint NOT NULL,
    reserve_price_minor bigint,
    min_increment_minor bigint NOT NULL,
    current_price_minor bigint NOT NULL,
    bid_count integer NOT NULL,
    leading_bidder text,
    winner_id text,
    end_time timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL
);
CREATE INDEX auction_details_active ON {schema}.auction_details (tenant_id, status, end_time);";

/// The per-bidder summary, added with the projector.
pub const BIDDERS_SQL: &str =
    "ALTER TABLE {schema}.auction_details ADD COLUMN bidders jsonb NOT NULL DEFAULT '[]'";

/// How many distinct users bid (the bidders column lists only the top ones
/// while the auction runs).
pub const BIDDER_COUNT_SQL: &str =
    "ALTER TABLE {schema}.auction_details ADD COLUMN bidder_count integer NOT NULL DEFAULT 0";

/// Whether the last bid was placed by the leader's proxy (PlaceBid v2).
pub const LAST_BID_AUTOMATIC_SQL: &str = "ALTER TABLE {schema}.auction_details
     ADD COLUMN last_bid_automatic boolean NOT NULL DEFAULT false";

use super::columns::{from_ts, int4, int8, to_ts, try_column};

/// Rows of `table` (schema-qualified: the live table or a rebuild's shadow).
pub async fn load(
    client: &impl GenericClient,
    table: &str,
    ids: &[&str],
) -> Result<Vec<AuctionDetails>, SinkError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT auction_id, tenant_id, seller_id, title, status, currency, starting_price_minor,
                reserve_price_minor, min_increment_minor, current_price_minor, bid_count,
                leading_bidder, winner_id, {}, {}, {}, version, bidders::text, bidder_count,
                last_bid_automatic
         FROM {table} WHERE auction_id = ANY($1)",
        from_ts("end_time"),
        from_ts("created_at"),
        from_ts("updated_at"),
    );
    let rows = client.query(&sql, &[&ids]).await?;
    rows.iter().map(row_to_details).collect()
}

fn row_to_details(row: &Row) -> Result<AuctionDetails, SinkError> {
    let auction_id: String = row.get(0);
    let bad = |reason: String| SinkError::BadRow {
        auction_id: auction_id.clone(),
        reason,
    };
    let currency = Currency::parse(row.get::<_, &str>(5)).map_err(|e| bad(e.to_string()))?;
    let money = |minor: i64| Money::new(minor, currency).map_err(|e| bad(e.to_string()));
    let status = match row.get::<_, &str>(4) {
        "DRAFT" => AuctionStatus::Draft,
        "ACTIVE" => AuctionStatus::Active,
        "ENDED" => AuctionStatus::Ended,
        "CANCELLED" => AuctionStatus::Cancelled,
        other => return Err(bad(format!("unknown status {other}"))),
    };
    Ok(AuctionDetails {
        auction_id: AuctionId::new(auction_id.clone()),
        tenant_id: TenantId::new(row.get::<_, String>(1)),
        seller_id: UserId::new(row.get::<_, String>(2)),
        title: row.get(3),
        status,
        starting_price: money(row.get(6))?,
        reserve_price: row.get::<_, Option<i64>>(7).map(money).transpose()?,
        min_increment: money(row.get(8))?,
        current_price: money(row.get(9))?,
        bid_count: u32::try_from(row.get::<_, i32>(10)).map_err(|e| bad(e.to_string()))?,
        leading_bidder: row.get::<_, Option<String>>(11).map(UserId::new),
        winner_id: row.get::<_, Option<String>>(12).map(UserId::new),
        end_time: Timestamp::from_millis(row.get(13)),
        created_at: Timestamp::from_millis(row.get(14)),
        updated_at: Timestamp::from_millis(row.get(15)),
        version: u64::try_from(row.get::<_, i64>(16)).map_err(|e| bad(e.to_string()))?,
        bidders: serde_json::from_str(row.get::<_, &str>(17)).map_err(|e| bad(e.to_string()))?,
        bidder_count: u32::try_from(row.get::<_, i32>(18)).map_err(|e| bad(e.to_string()))?,
        last_bid_automatic: row.get(19),
    })
}

/// One statement for the whole batch: arrays in, UNNEST, upsert. The version
/// guard means a replayed (older) row never overwrites a newer one.
pub async fn upsert(
    client: &impl GenericClient,
    table: &str,
    rows: &[&AuctionDetails],
) -> Result<u64, SinkError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let col =
        |f: &dyn Fn(&AuctionDetails) -> String| rows.iter().map(|r| f(r)).collect::<Vec<String>>();
    let num = |f: &dyn Fn(&AuctionDetails) -> i64| rows.iter().map(|r| f(r)).collect::<Vec<i64>>();
    let opt = |f: &dyn Fn(&AuctionDetails) -> Option<String>| {
        rows.iter().map(|r| f(r)).collect::<Vec<Option<String>>>()
    };
    let ids = col(&|r| r.auction_id.to_string());
    let tenants = col(&|r| r.tenant_id.to_string());
    let sellers = col(&|r| r.seller_id.to_string());
    let titles = col(&|r| r.title.clone());
    let statuses = col(&|r| r.status.as_str().to_owned());
    let currencies = col(&|r| r.current_price.currency().to_string());
    let starting = num(&|r| r.starting_price.minor());
    let reserve: Vec<Option<i64>> = rows
        .iter()
        .map(|r| r.reserve_price.map(|m| m.minor()))
        .collect();
    let increments = num(&|r| r.min_increment.minor());
    let prices = num(&|r| r.current_price.minor());
    let bids = try_column(rows, |r| int4("bid_count", r.bid_count))?;
    let bidder_counts = try_column(rows, |r| int4("bidder_count", r.bidder_count))?;
    let leaders = opt(&|r| r.leading_bidder.as_ref().map(ToString::to_string));
    let winners = opt(&|r| r.winner_id.as_ref().map(ToString::to_string));
    let ends = num(&|r| r.end_time.millis());
    let created = num(&|r| r.created_at.millis());
    let updated = num(&|r| r.updated_at.millis());
    let versions = try_column(rows, |r| int8("version", r.version))?;
    let automatic: Vec<bool> = rows.iter().map(|r| r.last_bid_automatic).collect();
    let bidders = rows
        .iter()
        .map(|r| serde_json::to_string(&r.bidders))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| SinkError::Encode(e.to_string()))?;
    let ts = to_ts;
    let sql = format!(
        "INSERT INTO {table} AS t (auction_id, tenant_id, seller_id, title, status, currency,
             starting_price_minor, reserve_price_minor, min_increment_minor, current_price_minor, bid_count,
             leading_bidder, winner_id, end_time, created_at, updated_at, version, bidders, bidder_count,
             last_bid_automatic)
         SELECT id, tenant, seller, title, status, cur, sp, rp, mi, cp, bc, lb, w, {}, {}, {}, v, b::jsonb, nb, la
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
                     $8::int8[], $9::int8[], $10::int8[], $11::int4[], $12::text[], $13::text[], $14::int8[],
                     $15::int8[], $16::int8[], $17::int8[], $18::text[], $19::int4[], $20::bool[])
              AS u(id, tenant, seller, title, status, cur, sp, rp, mi, cp, bc, lb, w, et, ca, ua, v, b, nb, la)
         ON CONFLICT (auction_id) DO UPDATE SET
             status = excluded.status, current_price_minor = excluded.current_price_minor,
             bid_count = excluded.bid_count, leading_bidder = excluded.leading_bidder,
             winner_id = excluded.winner_id, updated_at = excluded.updated_at, version = excluded.version,
             bidders = excluded.bidders, bidder_count = excluded.bidder_count,
             last_bid_automatic = excluded.last_bid_automatic
         WHERE excluded.version > t.version",
        ts("et"),
        ts("ca"),
        ts("ua"),
    );
    let written = client
        .execute(
            &sql,
            &[
                &ids,
                &tenants,
                &sellers,
                &titles,
                &statuses,
                &currencies,
                &starting,
                &reserve,
                &increments,
                &prices,
                &bids,
                &leaders,
                &winners,
                &ends,
                &created,
                &updated,
                &versions,
                &bidders,
                &bidder_counts,
                &automatic,
            ],
        )
        .await?;
    Ok(written)
}
