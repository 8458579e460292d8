//! Rate-limited logging: repeated errors are logged at most once per interval per key, with a
//! count of what was suppressed. Counters are never rate-limited (they live in metrics).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per-key log gate.
#[derive(Debug)]
pub struct LogGate {
    every: Duration,
    seen: HashMap<String, (Instant, u64)>,
}

impl LogGate {
    pub fn new(every: Duration) -> Self {
        LogGate {
            every,
            seen: HashMap::new(),
        }
    }

    /// `Some(suppressed)` when a line for `key` should be logged now.
    pub fn check(&mut self, key: &str) -> Option<u64> {
        let now = Instant::now();
        match self.seen.get_mut(key) {
            Some((last, n)) if now.duration_since(*last) < self.every => {
                *n += 1;
                None
            }
            Some((last, n)) => {
                let s = *n;
                *last = now;
                *n = 0;
                Some(s)
            }
            None => {
                if self.seen.len() > 1000 {
                    self.seen.clear();
                }
                self.seen.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

impl Default for LogGate {
    fn default() -> Self {
        LogGate::new(Duration::from_secs(10))
    }
}
