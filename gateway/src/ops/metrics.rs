//! The metrics registry: counters and gauges shared by every component through the context
//! (no globals). Logs never carry counts; this does.

use crate::event::Class;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Counters and gauges of one gateway process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events accepted into the outbox, by class.
    pub accepted: [AtomicU64; 5],
    /// Events the hub acknowledged, by class.
    pub forwarded: [AtomicU64; 5],
    /// Inputs recognised as duplicates at ingest.
    pub duplicates: AtomicU64,
    /// Inputs refused because the outbox share was full.
    pub refused: AtomicU64,
    /// Uplink connected.
    pub uplink_up: AtomicBool,
    /// Uplink (re)connections.
    pub uplink_connects: AtomicU64,
    /// Device broker (re)connections.
    pub devices_connects: AtomicU64,
    drops: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Counts events accepted for `class`.
    pub fn add_accepted(&self, class: Class, n: u64) {
        self.accepted[class.index()].fetch_add(n, Relaxed);
    }

    /// Counts events acknowledged by the hub for `class`.
    pub fn add_forwarded(&self, class: Class, n: u64) {
        self.forwarded[class.index()].fetch_add(n, Relaxed);
    }

    /// Counts a dropped input by reason.
    pub fn add_drop(&self, reason: &str, n: u64) {
        let mut d = self.drops.lock().unwrap_or_else(|e| e.into_inner());
        *d.entry(reason.to_string()).or_default() += n;
    }

    /// Drops so far, by reason.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        self.drops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
