//! Every stage that writes to Postgres sorts a failure by who can cure it:
//! the record (poison: dead-letter it and move on), a dependency (transient:
//! retry with backoff, unready meanwhile, never dead-lettered) or the
//! deployment (fatal: exit with the reason, so a restart loop cannot hide it).
//! This is the one place that decides which SQLSTATE is which.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode as Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The record can never be processed, however often it is retried.
    Poison,
    /// A dependency is away or busy; the same work succeeds later.
    Transient,
    /// Misconfiguration the worker cannot fix by itself.
    Fatal,
}

/// The class of a Postgres error.
pub fn of_postgres(error: &tokio_postgres::Error) -> Failure {
    if error.is_closed() {
        return Failure::Transient;
    }
    if let Some(code) = error.code() {
        return of_sqlstate(code.code());
    }
    if std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>()) {
        return Failure::Transient;
    }
    // Errors of the client itself carry no SQLSTATE and no public kind; their
    // text is the only handle. A value it cannot encode for its column is the
    // record's fault; a timeout or a failed connect is the server's.
    let text = error.to_string();
    if text.starts_with("error serializing parameter") {
        Failure::Poison
    } else if text.starts_with("timeout") || text.starts_with("error connecting") {
        Failure::Transient
    } else {
        Failure::Fatal
    }
}

/// The class of a SQLSTATE. Unknown codes are fatal: an error nobody sorted
/// should stop the worker with its message, not empty the topic into a DLQ.
pub fn of_sqlstate(code: &str) -> Failure {
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        // Transaction rollbacks that a retry cures: serialization failure,
        // deadlock, statement completion unknown.
        (_, "40000" | "40001" | "40003" | "40P01") => Failure::Transient,
        // Shutdown, crash, starting up, idle timeouts; lock not available,
        // object in use, statement cancelled (statement_timeout), snapshot too old.
        (_, "57P01" | "57P02" | "57P03" | "57P05" | "25P03" | "55P03" | "55006" | "57014") => {
            Failure::Transient
        }
        (_, "72000" | "58000" | "58030") => Failure::Transient,
        // Connection exceptions; insufficient resources (too many connections,
        // disk full, out of memory).
        ("08" | "53", _) => Failure::Transient,
        // Data exceptions (out of range, NUL byte, bad encoding), integrity
        // violations (incl. a deferred one at commit, 40002), program limits
        // (a value too large to index), cardinality, a trigger or check
        // option refusing the row, a PL/pgSQL RAISE.
        ("22" | "23" | "54" | "21" | "27" | "44" | "P0", _) | (_, "40002") => Failure::Poison,
        // Everything else: authentication, privileges, undefined objects,
        // read-only transactions, syntax, features, dropped database, corruption.
        _ => Failure::Fatal,
    }
}

/// A short reason for a log line or a dead letter: Postgres' own message,
/// the SQLSTATE, and which column or constraint it names.
pub fn describe_postgres(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return error.to_string();
    };
    let mut reason = format!("{} (SQLSTATE {}", db.message(), db.code().code());
    if let Some(constraint) = db.constraint() {
        reason.push_str(&format!(", constraint {constraint}"));
    }
    if let Some(column) = db.column() {
        reason.push_str(&format!(", column {column}"));
    }
    reason.push(')');
    reason
}

/// Why Kafka will never take one particular record (a label for metrics), or
/// `None` when the error is the broker's or the client's and a retry may cure it.
pub fn kafka_record_refusal(error: &KafkaError) -> Option<&'static str> {
    match error.rdkafka_error_code()? {
        Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition => {
            Some("unknown-topic")
        }
        Code::MessageSizeTooLarge | Code::InvalidMessageSize | Code::MessageBatchTooLarge => {
            Some("too-large")
        }
        Code::InvalidTopic | Code::TopicAuthorizationFailed => Some("rejected"),
        // Not InvalidRecord / InvalidTimestamp: the broker judges the record's
        // timestamp, which the producer's clock sets, against the topic's
        // bounds. A skewed clock or a tightened topic rejects every record
        // alike; dead-lettering would empty the whole stream into the DLQ.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(codes: &[&str], expected: Failure) {
        for code in codes {
            assert_eq!(of_sqlstate(code), expected, "SQLSTATE {code}");
        }
    }

    #[test]
    fn values_postgres_refuses_are_poison() {
        // 22008 interval out of range (end_time 10^16 ms), 22021 NUL byte,
        // 22003 numeric out of range, 22P02 bad text, 22P05 NUL in jsonb.
        sorted(
            &["22008", "22021", "22003", "22P02", "22P05", "22001"],
            Failure::Poison,
        );
        // Integrity: unique, check, not null, foreign key, exclusion; deferred at commit.
        sorted(
            &["23505", "23514", "23502", "23503", "23P01", "40002"],
            Failure::Poison,
        );
        // Program limits: index row too big, statement too complex.
        sorted(&["54000", "54001", "54011"], Failure::Poison);
        // ON CONFLICT touching a row twice, triggers and check options refusing, RAISE.
        sorted(
            &["21000", "27000", "44000", "P0001", "P0004"],
            Failure::Poison,
        );
    }

    #[test]
    fn busy_or_absent_servers_are_transient() {
        sorted(
            &["08000", "08003", "08006", "08001", "08P01"],
            Failure::Transient,
        );
        sorted(&["40001", "40P01", "40003", "40000"], Failure::Transient);
        sorted(
            &["53000", "53100", "53200", "53300", "53400"],
            Failure::Transient,
        );
        sorted(
            &["57P01", "57P02", "57P03", "57P05", "57014"],
            Failure::Transient,
        );
        sorted(
            &["55P03", "55006", "25P03", "72000", "58000", "58030"],
            Failure::Transient,
        );
    }

    #[test]
    fn misconfiguration_is_fatal() {
        // Authentication, privilege, undefined table/column/schema/database.
        sorted(
            &[
                "28000", "28P01", "42501", "42P01", "42703", "3F000", "3D000",
            ],
            Failure::Fatal,
        );
        // Read-only transaction, syntax, unsupported feature, dropped database, corruption.
        sorted(
            &["25006", "42601", "0A000", "57P04", "XX000", "XX001"],
            Failure::Fatal,
        );
        // Unknown codes and garbage.
        sorted(&["99999", "", "2"], Failure::Fatal);
    }

    #[test]
    fn per_record_kafka_refusals_are_named_and_outages_are_not() {
        let refusal = |code| kafka_record_refusal(&KafkaError::MessageProduction(code));
        assert_eq!(refusal(Code::MessageSizeTooLarge), Some("too-large"));
        assert_eq!(
            refusal(Code::UnknownTopicOrPartition),
            Some("unknown-topic")
        );
        assert_eq!(refusal(Code::TopicAuthorizationFailed), Some("rejected"));
        assert_eq!(refusal(Code::BrokerTransportFailure), None);
        assert_eq!(refusal(Code::InvalidRecord), None);
    }
}
