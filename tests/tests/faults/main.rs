//! Fault-injection tests (issue 3, SPEC §5–6): real `redis-server`, two `mosquitto`, a fault
//! proxy and the `outpost` binary, each fault in its own test. Every test prints one line
//! `TALLY <test>: sent=… acknowledged_by_device_broker=… delivered=… duplicates_dropped_at_hub=…
//! lost=…`; `docs/guarantees.md` records them.
//!
//! Random fault timings come from a seeded RNG: `OUTPOST_FAULT_SEED=<n>` replays a run.

mod bounded_outbox;
mod brokers;
mod common;
mod drive;
mod half_open;
mod kill_outpost;
mod kill_redis;
mod redelivery;
mod redis_settings;
mod slow_link;
