//! A consumed record detached from the consumer's buffer, and the wall clock.

use gavel_domain::Timestamp;
use gavel_runtime::dlq::{DeadLetter, ErrorClass};
use gavel_runtime::envelope::header_str;
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use std::time::{SystemTime, UNIX_EPOCH};

/// The parts of a consumed record the loop needs, detached from the consumer's
/// buffer so polling the next record does not fight the borrow checker. Key,
/// payload and headers stay as they arrived, so a dead letter carries them intact.
pub struct BorrowedMessageOwned {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<Timestamp>,
    key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
}

impl BorrowedMessageOwned {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.as_ref().and_then(|h| header_str(h, key))
    }

    /// The key as text (aggregate ids are UTF-8); `None` if absent or not text.
    pub fn key(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// This record as a dead letter of `topic`.
    pub fn dead_letter<'a>(
        &'a self,
        topic: &'a str,
        class: ErrorClass,
        reason: &'a str,
    ) -> DeadLetter<'a> {
        DeadLetter {
            topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp.map(Timestamp::millis),
            key: self.key.as_deref(),
            payload: self.payload.as_deref(),
            headers: self.headers.as_ref(),
            class,
            reason,
        }
    }
}

impl From<&BorrowedMessage<'_>> for BorrowedMessageOwned {
    fn from(message: &BorrowedMessage<'_>) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis().map(Timestamp::from_millis),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            // One copy of librdkafka's header list, cheaper than a String per header.
            headers: message.headers().map(|h| h.detach()),
        }
    }
}

pub fn wall_clock() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(millis)
}
