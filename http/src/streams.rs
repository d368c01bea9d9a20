//! Caps on long-lived responses (live streams) per key: one limiter counts per
//! user, another per client address. A permit is held by the stream and given
//! back when the stream ends, however it ends (client gone, shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

pub struct StreamLimiter {
    cap: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl StreamLimiter {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A permit for one more stream of `key`, or None when `key` has `cap` open.
    pub fn try_open(self: &Arc<Self>, key: String) -> Option<StreamPermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(StreamPermit {
            limiter: Arc::clone(self),
            key,
        })
    }

    /// Streams open for `key` now.
    pub fn open(&self, key: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(key).copied().unwrap_or(0)
    }

    fn close(&self, key: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(key) {
            *count -= 1;
            // Keys come and go with clients: no entry outlives its last stream.
            if *count == 0 {
                open.remove(key);
            }
        }
    }
}

/// One open stream; dropping it frees the slot.
pub struct StreamPermit {
    limiter: Arc<StreamLimiter>,
    key: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limiter.close(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_cap_streams_and_gets_slots_back() {
        let limiter = StreamLimiter::new(2);
        let a1 = limiter.try_open("a".into()).expect("first");
        let _a2 = limiter.try_open("a".into()).expect("second");
        assert!(limiter.try_open("a".into()).is_none(), "third refused");
        let _b = limiter
            .try_open("b".into())
            .expect("other keys count apart");
        drop(a1);
        assert_eq!(limiter.open("a"), 1);
        assert!(limiter.try_open("a".into()).is_some());
        drop(_b);
        assert!(limiter.open.lock().unwrap().get("b").is_none());
    }
}
