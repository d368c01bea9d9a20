//! Column helpers shared by the view tables' SQL.

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
