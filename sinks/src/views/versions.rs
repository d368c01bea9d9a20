//! The read model's current version of given auctions: how a benchmark sees
//! when a change has become visible to readers of `auction_details`.

use crate::SinkError;
use tokio_postgres::GenericClient;

/// `(auction_id, version)` of those of `ids` that have a row.
pub async fn details_versions(
    client: &impl GenericClient,
    schema: &str,
    ids: &[String],
) -> Result<Vec<(String, i64)>, SinkError> {
    let sql = format!(
        "SELECT auction_id, version FROM {schema}.auction_details WHERE auction_id = ANY($1)"
    );
    let rows = client.query(&sql, &[&ids]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
