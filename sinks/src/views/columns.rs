//! Column helpers shared by the view tables' SQL.

use crate::SinkError;

/// Millisecond-exact conversion of an int8 epoch-millis expression to timestamptz.
pub fn to_ts(millis: &str) -> String {
    format!("('epoch'::timestamptz + ({millis} * interval '1 millisecond'))")
}

/// A timestamptz column back to epoch millis.
pub fn from_ts(column: &str) -> String {
    format!("(extract(epoch from {column}) * 1000)::int8")
}

/// One column of a batch, gathered from its rows for an UNNEST parameter.
pub fn column<R, T>(rows: &[&R], field: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(|r| field(r)).collect()
}

/// `column` for a field that may not fit its column.
pub fn try_column<R, T>(
    rows: &[&R],
    field: impl Fn(&R) -> Result<T, SinkError>,
) -> Result<Vec<T>, SinkError> {
    rows.iter().map(|r| field(r)).collect()
}

/// A count for an `integer` column: above i32::MAX the row cannot be stored
/// (a cast would store a negative count instead).
pub fn int4(field: &str, value: u32) -> Result<i32, SinkError> {
    i32::try_from(value)
        .map_err(|_| SinkError::Encode(format!("{field} {value} does not fit its integer column")))
}

/// A version for a `bigint` column: above i64::MAX a cast would store a
/// negative version, and the version guard would then refuse every update.
pub fn int8(field: &str, value: u64) -> Result<i64, SinkError> {
    i64::try_from(value)
        .map_err(|_| SinkError::Encode(format!("{field} {value} does not fit its bigint column")))
}
