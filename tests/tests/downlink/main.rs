//! Messages to devices (SPEC §8, issue 12), end to end with the real `outpost`, Redis and two
//! mosquitto brokers: the test publishes to `<prefix>/<gw>/down` as the hub would, watches the
//! device broker for what the gateway sends, and reads receipts (class `receipt`) at the hub;
//! [`hub`] runs the real `outpost-hub` in front (`POST /api/v1/messages`); [`radio`] sends
//! through a scripted Meshtastic radio on a pseudo-terminal (TAK contacts: tests/tests/tak/).

mod common;
mod faults;
mod hub;
mod meshtastic;
mod profiles;
mod radio;
