//! A consumed record detached from the consumer's buffer, and the wall clock.

use gavel_domain::Timestamp;
use gavel_runtime::envelope::{header, header_str};
use rdkafka::message::{BorrowedMessage, Message};
use std::time::{SystemTime, UNIX_EPOCH};

/// The parts of a consumed record the loop needs, detached from the consumer's
/// buffer so polling the next record does not fight the borrow checker.
pub struct BorrowedMessageOwned {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<Timestamp>,
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
}

impl BorrowedMessageOwned {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl From<&BorrowedMessage<'_>> for BorrowedMessageOwned {
    fn from(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|h| {
                [
                    header::COMMAND_ID,
                    header::CORRELATION_ID,
                    header::TENANT_ID,
                ]
                .iter()
                .filter_map(|k| header_str(h, k).map(|v| ((*k).to_owned(), v.to_owned())))
                .collect()
            })
            .unwrap_or_default();
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis().map(Timestamp::from_millis),
            key: message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

pub fn wall_clock() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(millis)
}
