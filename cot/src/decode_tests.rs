use super::*;
use proptest::prelude::*;

/// An ATAK 4.x PLI as a TAK server relays it (fields from the CoT base schema).
const ATAK_PLI: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><event version="2.0" uid="ANDROID-589520ccfcd20f01" type="a-f-G-U-C" time="2026-12-01T12:00:00.000Z" start="2026-12-01T12:00:00.000Z" stale="2026-12-01T12:06:00.000Z" how="h-e"><point lat="42.36" lon="-71.05" hae="9999999.0" ce="9999999.0" le="9999999.0"/><detail><takv os="29" version="4.8.1" device="SAMSUNG SM-G975U1" platform="ATAK-CIV"/><contact endpoint="*:-1:stcp" callsign="VIPER"/><uid Droid="VIPER"/><__group role="Team Member" name="Cyan"/><status battery="88"/><track course="90.0" speed="1.5"/></detail></event>"#;

#[test]
fn atak_pli() {
    match decode(ATAK_PLI).unwrap() {
        Inbound::Pli {
            uid,
            callsign,
            point,
            speed,
            course,
            battery,
            ..
        } => {
            assert_eq!(uid, "ANDROID-589520ccfcd20f01");
            assert_eq!(callsign.as_deref(), Some("VIPER"));
            assert_eq!(
                (point.lat, point.lon, point.hae, point.ce),
                (42.36, -71.05, None, None)
            );
            assert_eq!(
                (speed, course, battery),
                (Some(1.5), Some(90.0), Some(88.0))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn atak_911_and_cancel() {
    let x = r#"<event version="2.0" uid="ANDROID-1-9-1-1" type="b-a-o-tbl" time="2026-12-01T12:00:00Z" start="2026-12-01T12:00:00Z" stale="2026-12-01T12:10:00Z" how="m-g"><point lat="1" lon="2" hae="0" ce="5" le="9999999"/><detail><link uid="ANDROID-1" type="a-f-G-U-C" relation="p-p"/><contact callsign="VIPER-Alert"/><emergency type="911 Alert">VIPER</emergency></detail></event>"#;
    match decode(x).unwrap() {
        Inbound::Emergency {
            sender,
            callsign,
            kind,
            point,
            ..
        } => {
            assert_eq!(sender, "ANDROID-1");
            assert_eq!(callsign.as_deref(), Some("VIPER"));
            assert_eq!(kind, "911 Alert");
            assert_eq!(point.map(|p| (p.lat, p.lon)), Some((1.0, 2.0)));
        }
        other => panic!("{other:?}"),
    }
    let c = x
        .replace("b-a-o-tbl", "b-a-o-can")
        .replace(">VIPER<", " cancel=\"true\">VIPER<");
    assert!(matches!(decode(&c).unwrap(), Inbound::Cancel { sender, .. } if sender == "ANDROID-1"));
}

#[test]
fn other_types_and_errors() {
    let x = r#"<event uid="m1" type="u-d-p" time="2026-12-01T12:00:00Z"><point lat="1" lon="2" hae="0" ce="0" le="0"/></event>"#;
    assert!(matches!(decode(x).unwrap(), Inbound::Other { .. }));
    assert_eq!(decode("<foo/>"), Err(DecodeError::NotEvent("foo".into())));
    assert!(matches!(
        decode(r#"<event type="a" time="x"/>"#),
        Err(DecodeError::Missing("uid"))
    ));
    assert!(matches!(
        decode(r#"<event uid="u" type="a-f" time="yesterday"/>"#),
        Err(DecodeError::Bad("time", _))
    ));
    let bad = r#"<event uid="u" type="a-f" time="2026-12-01T12:00:00Z"><point lat="95" lon="2"/></event>"#;
    assert!(matches!(decode(bad), Err(DecodeError::Bad("point", _))));
    let nan = r#"<event uid="u" type="a-f" time="2026-12-01T12:00:00Z"><point lat="NaN" lon="2"/></event>"#;
    assert!(matches!(decode(nan), Err(DecodeError::Bad("lat", _))));
}

proptest! {
    #[test]
    fn decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = decode(&s);
    }

    #[test]
    fn decoder_never_panics_on_mutated_events(cut in 0usize..ATAK_PLI.len(), junk in "[<>&;\"'/=a-z#0-9 ]{0,12}") {
        let mut s = ATAK_PLI.to_string();
        let at = (0..=cut).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.insert_str(at, &junk);
        let _ = decode(&s);
    }

    #[test]
    fn splitter_never_panics_and_stays_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
        let mut sp = crate::split::Splitter::new(256);
        let mut out = Vec::new();
        for c in &chunks {
            sp.push(c, &mut out);
            prop_assert!(sp.pending() <= 256 + 200);
        }
        for d in out.into_iter().flatten() {
            let _ = decode(&d);
        }
    }
}
