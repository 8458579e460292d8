//! One device's latest state as the TAK side needs it, from its hash in the hub's store
//! (`<p>:{dev:<n>}:dev:<dev>`, docs/hub-redis-layout.md), and the CoT unit it is.

use chrono::{DateTime, Utc};
use outpost_cot::encode::Unit;
use outpost_proto::event::Location;
use serde_json::Value;
use std::collections::HashMap;

/// How long a PLI from the hub stays fresh on the TAK map. The hub does not know a device's
/// profile (its presence timeout and `tak_type` stay at the gateway); a device going offline
/// arrives as a presence event and is re-sent stale at once, so this only matters when a
/// gateway falls silent altogether.
pub const PLI_STALE: chrono::Duration = chrono::Duration::minutes(15);

/// The latest state of one device.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The gateway its latest location came through (`tie:location`), else the one that heard
    /// it last.
    pub gw: Option<String>,
    /// Its latest fix and when it was taken.
    pub loc: Option<(Location, DateTime<Utc>)>,
    /// `ts:location` (ms): the newest fix stored.
    pub loc_ts_ms: Option<i64>,
    pub battery: Option<f64>,
    /// The device's own name (a status `extra` `callsign`, `long_name` or `name`).
    pub name: Option<String>,
    /// `online` / `offline`, when a presence event was stored.
    pub presence: Option<String>,
}

impl View {
    /// From the device's hash (empty when unknown).
    pub fn of(h: &HashMap<String, String>) -> View {
        let status = h
            .get("status")
            .and_then(|s| serde_json::from_str::<Value>(s).ok());
        let gw = h
            .get("tie:location")
            .and_then(|t| t.split_once('|'))
            .map(|(g, _)| g.to_string())
            .filter(|g| !g.is_empty())
            .or_else(|| h.get("gw").cloned());
        View {
            gw,
            loc: h
                .get("location")
                .and_then(|j| outpost::tak::picture::location_of(j)),
            loc_ts_ms: h.get("ts:location").and_then(|t| t.parse().ok()),
            battery: status
                .as_ref()
                .and_then(|s| s.get("battery"))
                .and_then(Value::as_f64),
            name: status
                .as_ref()
                .and_then(|s| s.get("extra"))
                .and_then(Value::as_object)
                .and_then(outpost::tak::picture::name_of),
            presence: h.get("presence").cloned(),
        }
    }

    /// True when the last presence event said offline.
    pub fn offline(&self) -> bool {
        self.presence.as_deref() == Some("offline")
    }

    /// The PLI of its latest fix, through gateway `gw` (default: [`View::gw`]).
    pub fn pli(&self, dev: &str, gw: Option<&str>) -> Option<String> {
        let (l, ts) = self.loc.as_ref()?;
        let u = unit(gw.or(self.gw.as_deref())?, dev, self.name.as_deref());
        Some(outpost_cot::encode::pli(
            &u,
            l,
            self.battery,
            *ts,
            *ts + PLI_STALE,
        ))
    }
}

/// Device `dev` behind gateway `gw` on the TAK server: the same uid as through the gateway's
/// own `[[tak]]` (`outpost.<gw>.<dev>`), so one unit is one marker on a federated map; callsign
/// its own name, else its id; the default CoT type (profiles' `tak_type` stays at the gateway).
pub fn unit(gw: &str, dev: &str, name: Option<&str>) -> Unit {
    Unit {
        uid: outpost_cot::device_uid(gw, dev),
        callsign: name.unwrap_or(dev).to_string(),
        cot_type: outpost_cot::DEFAULT_TYPE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_of_the_latest_fix_and_the_name_and_battery_of_the_latest_status() {
        let h: HashMap<String, String> = [
            ("location", r#"{"dev":"r7","class":"location","lat":1.5,"lon":2.5,"ts":"2026-11-30T10:00:00.000Z","ts_src":"device"}"#),
            ("tie:location", "veh-1|00000000000000000010-00000000000000000000"),
            ("ts:location", "1796032800000"),
            ("gw", "veh-2"),
            ("status", r#"{"battery":81,"extra":{"name":" Eng 7 "}}"#),
            ("presence", "online"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = View::of(&h);
        assert_eq!(v.gw.as_deref(), Some("veh-1"));
        assert_eq!(v.name.as_deref(), Some("Eng 7"));
        assert_eq!(v.battery, Some(81.0));
        assert!(!v.offline());
        let ib = outpost_cot::decode::decode(&v.pli("r7", None).unwrap()).unwrap();
        match ib {
            outpost_cot::decode::Inbound::Pli {
                uid,
                callsign,
                point,
                ..
            } => {
                assert_eq!(uid, "outpost.veh-1.r7");
                assert_eq!(callsign.as_deref(), Some("Eng 7"));
                assert_eq!((point.lat, point.lon), (1.5, 2.5));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            View::default().pli("r7", Some("g")).is_none(),
            "no fix, no PLI"
        );
    }
}
