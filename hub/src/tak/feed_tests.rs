use super::*;
use outpost_cot::decode::{decode, Inbound};
use outpost_proto::event::Location;
use outpost_proto::EventId;
use serde_json::json;

fn ev(o: Value) -> Received {
    Received::from_object(
        EventId { ms: 1, seq: 0 },
        o["dev"].as_str().unwrap().to_string(),
        o.as_object().unwrap().clone(),
    )
}

fn view_at(ms: i64) -> View {
    View {
        gw: Some("veh-1".into()),
        loc: Some((
            Location {
                lat: 1.0,
                lon: 2.0,
                ..Default::default()
            },
            chrono::DateTime::from_timestamp_millis(ms).unwrap(),
        )),
        loc_ts_ms: Some(ms),
        battery: Some(50.0),
        name: Some("Eng 7".into()),
        presence: Some("online".into()),
    }
}

const T0: &str = "2026-11-30T10:00:00.000Z";
const T0_MS: i64 = 1_796_032_800_000;

#[test]
fn only_the_newest_fix_goes_out_with_the_latest_name_and_battery() {
    let loc = ev(json!({"dev":"r7","class":"location","lat":5.0,"lon":6.0,"ts":T0}));
    let (kind, xml) = cot_of("veh-1", Class::Location, &loc, &view_at(T0_MS)).unwrap();
    assert_eq!(kind, Kind::Position("outpost.veh-1.r7".into()));
    match decode(&xml).unwrap() {
        Inbound::Pli {
            uid,
            callsign,
            point,
            battery,
            ..
        } => {
            assert_eq!(uid, "outpost.veh-1.r7");
            assert_eq!(callsign.as_deref(), Some("Eng 7"));
            assert_eq!((point.lat, point.lon, battery), (5.0, 6.0, Some(50.0)));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        cot_of("veh-1", Class::Location, &loc, &view_at(T0_MS + 1)).is_none(),
        "an older fix than the stored latest is history, not live state"
    );
}

#[test]
fn status_resends_the_fix_offline_is_stale_now_and_alerts_sit_at_the_last_fix() {
    let st = ev(json!({"dev":"r7","class":"status","battery":40,"ts":T0}));
    let (kind, _) = cot_of("veh-2", Class::Status, &st, &view_at(T0_MS)).unwrap();
    assert_eq!(
        kind,
        Kind::Position("outpost.veh-1.r7".into()),
        "the uid of the gateway its fix came through"
    );
    let quiet = ev(json!({"dev":"r7","class":"status","rssi":-90,"ts":T0}));
    assert!(cot_of("veh-1", Class::Status, &quiet, &view_at(T0_MS)).is_none());

    let off = ev(json!({"dev":"r7","class":"presence","state":"offline","ts":T0,"last_seen":T0}));
    let mut v = view_at(T0_MS);
    assert!(
        cot_of("veh-1", Class::Presence, &off, &v).is_none(),
        "a newer presence says online"
    );
    v.presence = Some("offline".into());
    let (_, xml) = cot_of("veh-1", Class::Presence, &off, &v).unwrap();
    let e = outpost_cot::xml::Element::parse(&xml).unwrap();
    assert_eq!(e.get("time"), e.get("stale"));

    let a = ev(json!({"dev":"r7","class":"alert","reason":"man-down","ts":T0}));
    let (kind, xml) = cot_of("veh-1", Class::Alert, &a, &view_at(T0_MS)).unwrap();
    assert_eq!(kind, Kind::Alert);
    match decode(&xml).unwrap() {
        Inbound::Emergency { kind, point, .. } => {
            assert_eq!(kind, "Ring The Bell");
            assert_eq!(point.map(|p| (p.lat, p.lon)), Some((1.0, 2.0)));
        }
        other => panic!("{other:?}"),
    }
}
