//! OwnTracks JSON (phones running the OwnTracks app over MQTT), per the booklet
//! <https://owntracks.org/booklet/tech/json/>, read as leniently as the apps write it.
//!
//! - `location` → a Location, plus a Status (battery, charging) when `batt`/`bs` is present,
//!   both at the report's `tst`.
//! - `transition` (geofence enter/leave, published on `…/event`) → a Location (where the device
//!   was when it crossed the boundary) and, unless the profile sets
//!   `owntracks.transition_status = false`, a Status with `extra {"transition", "region"}`:
//!   the §5 location has no `extra`, so the region travels on the status.
//! - `lwt` → Presence offline. The broker publishes it when the phone's connection drops, so
//!   `last_seen` is the gateway's receive time: the payload's `tst` is when the app *connected*
//!   (booklet), not when it was last heard.
//! - `card` → no event; its `name` is the device's display name ([`Decoded::device_name`]).
//!   Cards and `cmd`s are [`Decoded::silent`]: they do not mark the device online.
//! - `encrypted` → decrypted with the profile's key ([`crypto`]) and decoded as the inner message.
//! - `waypoint(s)`, `cmd`, `status`, `configuration`, `steps`, `beacon`, … → no events, no problem.
//!
//! Numbers may come as strings (iOS sends `tst`, `rad` … that way) and the `-1` that old iOS
//! sends for an unknown `vel`, `cog`, `acc` or `batt` means absent. A malformed optional field
//! is dropped and counted (`bad_field:<name>`); only a bad `lat`/`lon` or `tst` refuses the
//! message. `tid` is not carried: the device id comes from the topic.

pub mod crypto;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::json::read::{self, check_position, device_or_gateway, plausible_secs};
use super::{DecodeError, Decoded, Drops};
use crate::event::{Body, Event, Location, Presence, PresenceState, Status, TsSrc};
pub use crypto::Key;

/// The longest display name kept from a `card`.
const MAX_NAME_BYTES: usize = 128;

/// The OwnTracks decoder with its profile options.
#[derive(Debug, Clone)]
pub struct Owntracks {
    /// The apps' shared secret, for `_type: encrypted` payloads.
    pub key: Option<Key>,
    /// Whether a transition also yields a Status carrying the region and enter/leave.
    pub transition_status: bool,
}

impl Default for Owntracks {
    fn default() -> Self {
        Owntracks {
            key: None,
            transition_status: true,
        }
    }
}

/// Decode one OwnTracks payload with the default options (no key, transition statuses on).
pub fn decode(dev: &str, payload: &[u8], now: DateTime<Utc>) -> Result<Decoded, DecodeError> {
    Owntracks::default().decode(dev, payload, now)
}

impl Owntracks {
    /// Decode one OwnTracks MQTT payload published by device `dev`, received at `now`.
    ///
    /// A missing `tst` or one before 2000 / more than a day ahead falls back to `now` with
    /// `ts_src: gateway` rather than dropping a valid position.
    pub fn decode(
        &self,
        dev: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Decoded, DecodeError> {
        let root = read::parse(payload)?;
        let obj = read::object(&root, "payload")?;
        if read::str_at(obj.get("_type"), "_type")? == Some("encrypted") {
            let inner = crypto::open(self.key.as_ref(), obj)?;
            let inner_root = read::parse(&inner)?;
            let inner_obj = read::object(&inner_root, "payload")?;
            if read::str_at(inner_obj.get("_type"), "_type")? == Some("encrypted") {
                return Err(DecodeError::Malformed("encrypted inside encrypted".into()));
            }
            return self.plain(dev, inner_obj, now);
        }
        self.plain(dev, obj, now)
    }

    fn plain(
        &self,
        dev: &str,
        obj: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Decoded, DecodeError> {
        let kind = read::str_at(obj.get("_type"), "_type")?
            .ok_or_else(|| DecodeError::Missing("_type".into()))?;
        let mut drops = Drops::default();
        let mut device_name = None;
        let events = match kind {
            "location" => location(dev, obj, now, &mut drops)?,
            "transition" => self.transition(dev, obj, now, &mut drops)?,
            "lwt" => lwt(dev, now),
            "card" => {
                device_name = card_name(obj, &mut drops);
                Vec::new()
            }
            _ => Vec::new(),
        };
        Ok(Decoded {
            events,
            dropped: drops.0,
            device_name,
            // A `cmd` goes *to* the phone (from the gateway's own downlink or a Recorder), and a
            // card is published retained, often by someone else: neither shows the phone is
            // there. Waypoints, status and configuration dumps come from the phone itself.
            silent: matches!(kind, "cmd" | "card"),
            ..Default::default()
        })
    }

    fn transition(
        &self,
        dev: &str,
        obj: &Map<String, Value>,
        now: DateTime<Utc>,
        drops: &mut Drops,
    ) -> Result<Vec<Event>, DecodeError> {
        let when = report_time(obj, now)?;
        let mut events = Vec::new();
        if obj.contains_key("lat") || obj.contains_key("lon") {
            if let Some(loc) = position(obj, drops)? {
                events.push(event(dev, Body::Location(loc), when));
            }
        }
        if !self.transition_status {
            return Ok(events);
        }
        let what = drops
            .keep(read::str_at(obj.get("event"), "event"))
            .and_then(|w| match w {
                "enter" | "leave" => Some(w),
                other => {
                    let shown = read::truncate(other, 16);
                    drops.field("event", format!("expected enter or leave, got {shown:?}"));
                    None
                }
            });
        let region = drops.keep(read::text_at(obj.get("desc"), "desc"));
        let mut status = Status::default();
        if let Some(w) = what {
            status.extra.insert("transition".into(), w.into());
        }
        if let Some(r) = region {
            status.extra.insert("region".into(), r.into());
        }
        if !status.is_empty() {
            events.push(event(dev, Body::Status(status), when));
        }
        Ok(events)
    }
}

fn event(dev: &str, body: Body, (ts, ts_src): (DateTime<Utc>, TsSrc)) -> Event {
    Event {
        dev: dev.to_string(),
        body,
        ts,
        ts_src,
    }
}

/// The report's time. A malformed `tst` refuses the message (a position at an unknown time
/// could be hours old); an absent or implausible one is the gateway's receive time.
fn report_time(
    obj: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, TsSrc), DecodeError> {
    let tst = read::num_at(obj.get("tst"), "tst")?;
    Ok(device_or_gateway(
        tst.and_then(|t| plausible_secs(t, now)),
        now,
    ))
}

/// An optional number where a negative value (the apps' `-1`) means unknown.
fn non_negative(obj: &Map<String, Value>, name: &str, drops: &mut Drops) -> Option<f64> {
    drops
        .keep(read::num_at(obj.get(name), name))
        .filter(|x| *x >= 0.0)
}

/// The fix fields shared by `location` and `transition`; `None` for exactly 0/0, which iOS
/// publishes when it has no fix (owntracks/ios#100) and no map would show as a position. iOS
/// reports -1 for an unknown speed, course or accuracy (CoreLocation's convention; 8.3.0 sent
/// -3), so negative values are treated as absent.
fn position(obj: &Map<String, Value>, drops: &mut Drops) -> Result<Option<Location>, DecodeError> {
    let lat =
        read::num_at(obj.get("lat"), "lat")?.ok_or_else(|| DecodeError::Missing("lat".into()))?;
    let lon =
        read::num_at(obj.get("lon"), "lon")?.ok_or_else(|| DecodeError::Missing("lon".into()))?;
    check_position(lat, lon)?;
    if lat == 0.0 && lon == 0.0 {
        return Ok(None);
    }
    Ok(Some(Location {
        lat,
        lon,
        alt: drops.keep(read::num_at(obj.get("alt"), "alt")),
        acc: non_negative(obj, "acc", drops),
        // `vel` is km/h; SPEC §5 speed is m/s.
        speed: non_negative(obj, "vel", drops).map(|v| v / 3.6),
        course: non_negative(obj, "cog", drops),
        ..Default::default()
    }))
}

fn location(
    dev: &str,
    obj: &Map<String, Value>,
    now: DateTime<Utc>,
    drops: &mut Drops,
) -> Result<Vec<Event>, DecodeError> {
    let loc = position(obj, drops)?;
    let when = report_time(obj, now)?;
    let battery = non_negative(obj, "batt", drops);
    // bs: 0 unknown, 1 unplugged, 2 charging, 3 full (still on the charger).
    let charging = match drops.keep(read::num_at(obj.get("bs"), "bs")) {
        None => None,
        Some(0.0) => None,
        Some(1.0) => Some(false),
        Some(x) if x == 2.0 || x == 3.0 => Some(true),
        Some(x) => {
            drops.field("bs", format!("unknown battery status {x}"));
            None
        }
    };
    let status = Status {
        battery,
        charging,
        ..Default::default()
    };
    let mut events: Vec<Event> = loc
        .map(|l| event(dev, Body::Location(l), when))
        .into_iter()
        .collect();
    if !status.is_empty() {
        events.push(event(dev, Body::Status(status), when));
    }
    Ok(events)
}

/// Offline now. The will's `tst` is not read (it is the connect time, and iOS sends it as a
/// string): a will is never refused for it.
fn lwt(dev: &str, now: DateTime<Utc>) -> Vec<Event> {
    let body = Body::Presence(Presence {
        state: PresenceState::Offline,
        last_seen: now,
    });
    vec![event(dev, body, (now, TsSrc::Gateway))]
}

/// A card's `name`: printable, at most [`MAX_NAME_BYTES`]; anything else is dropped.
fn card_name(obj: &Map<String, Value>, drops: &mut Drops) -> Option<String> {
    let name = drops.keep(read::str_at(obj.get("name"), "name"))?.trim();
    if name.is_empty() {
        return None;
    }
    if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        drops.field(
            "name",
            format!("display name must be 1..={MAX_NAME_BYTES} printable bytes"),
        );
        return None;
    }
    Some(name.to_string())
}
