//! Narrowing a refused write to the records that cause it. One value Postgres
//! can never hold (an interval out of range, a NUL byte, a count above int4)
//! fails the whole multi-row statement; retrying the batch as it is would
//! fail forever, and skipping it would drop every good record beside the bad
//! one. So the batch is written in savepoints of the caller's transaction,
//! and a poison failure splits the failed part in halves until each refused
//! item stands alone. The rest commits with the offsets, effectively-once.

use crate::SinkError;
use futures::future::BoxFuture;
use gavel_runtime::failure::Failure;
use std::ops::Range;
use tokio_postgres::Transaction;

/// An item that was refused: its index in the written slice, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub index: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Narrowed {
    /// What the successful statements reported (rows changed).
    pub written: u64,
    /// In item order.
    pub refused: Vec<Refusal>,
}

/// One multi-row statement over some of the items, in the caller's
/// transaction, with the caller's context (the table it writes). A plain
/// function returning a boxed future, not an async closure: a future that
/// holds an async closure over borrowed arguments is not provably `Send`.
pub type Write<C, T> =
    for<'a> fn(&'a Transaction<'a>, &'a C, &'a [T]) -> BoxFuture<'a, Result<u64, SinkError>>;

/// Writes `items` inside `tx` through `write`, each attempt in a savepoint.
/// A good batch costs one statement plus the savepoint and its release; k
/// refused items among n cost about 2k·log2(n) attempts. Items keep their
/// order (the left half goes first), so a serial column follows it.
/// Transient and fatal failures are returned as they are: the caller retries
/// the whole transaction, or stops.
pub async fn write_narrowing<C: Sync + ?Sized, T: Sync>(
    tx: &mut Transaction<'_>,
    context: &C,
    items: &[T],
    write: Write<C, T>,
) -> Result<Narrowed, SinkError> {
    let mut narrowed = Narrowed::default();
    // A stack: the next range to write is the last one.
    let whole = 0..items.len();
    let mut pending: Vec<Range<usize>> = vec![whole];
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        let savepoint = tx.savepoint("narrowing").await?;
        match write(&savepoint, context, &items[range.clone()]).await {
            Ok(written) => {
                savepoint.commit().await?;
                narrowed.written += written;
            }
            Err(error) if error.class() == Failure::Poison => {
                savepoint.rollback().await?;
                if range.len() == 1 {
                    narrowed.refused.push(Refusal {
                        index: range.start,
                        reason: error.reason(),
                    });
                } else {
                    let middle = range.start + range.len() / 2;
                    pending.push(middle..range.end);
                    pending.push(range.start..middle);
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(narrowed)
}
