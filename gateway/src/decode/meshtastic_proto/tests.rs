//! Decode tests on envelopes made by upstream's own code: the `meshtastic` PyPI package's
//! protobuf modules and `cryptography`'s AES-CTR (`tests/fixtures/meshtastic/make_fixtures.py`).

use super::*;
use crate::decode::testkit::{now, secs};
use crate::event::{Body, Event, Message, TsSrc};
use base64::Engine as _;

const ENVELOPES: &str = include_str!("../../../tests/fixtures/meshtastic/envelopes.txt");
const OPS_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// Every envelope of the fixture: (topic, payload).
fn envelopes() -> Vec<(String, Vec<u8>)> {
    ENVELOPES
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (topic, p) = l.split_once(" base64:").expect("TOPIC base64:PAYLOAD");
            let b = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
            (topic.to_string(), b)
        })
        .collect()
}

fn decode_all(keys: &[&str]) -> Vec<Result<Decoded, DecodeError>> {
    let d = ProtoDecoder::new(keys).unwrap();
    envelopes()
        .iter()
        .map(|(_, p)| d.decode("relay", p, now()))
        .collect()
}

fn only(r: &Result<Decoded, DecodeError>) -> &Event {
    let d = r.as_ref().unwrap();
    assert_eq!(d.events.len(), 1, "{d:?}");
    &d.events[0]
}

#[test]
fn every_envelope_decodes_or_drops_for_its_reason() {
    let got: Vec<String> = decode_all(&["AQ==", OPS_KEY])
        .iter()
        .map(|r| match r {
            Ok(d) => format!(
                "{} {}",
                d.dedup_key.as_deref().unwrap_or("-"),
                d.events
                    .iter()
                    .map(|e| e.class().as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(e) => e.reason().to_string(),
        })
        .collect();
    assert_eq!(
        got,
        [
            "mesh:da65ade0:1186871389 location",
            "mesh:da65ade0:1186871389 location",
            "mesh:da65ade0:1186871390 status",
            "mesh:da65ade0:1186871391 message",
            "mesh:da65ade0:1186871392 status",
            "mesh:7efeb2c8:1576523472 status",
            "mesh:7efeb2c8:1576523473 message",
            "wrong_key",
            "undecryptable",
            "not_protobuf",
        ]
    );
}

#[test]
fn relays_share_the_json_decoders_dedup_key() {
    let all = decode_all(&["AQ=="]);
    let (a, b) = (all[0].as_ref().unwrap(), all[1].as_ref().unwrap());
    assert_eq!(a.dedup_key, b.dedup_key);
    // The JSON decoder's key for the same packet (tests/fixtures/mqtt/meshtastic.txt line 2).
    assert_eq!(a.dedup_key.as_deref(), Some("mesh:da65ade0:1186871389"));
}

#[test]
fn position_scales_and_uses_the_originators_clock() {
    let all = decode_all(&["AQ=="]);
    let e = only(&all[0]);
    assert_eq!(
        e.dev, "!da65ade0",
        "the originator, not the relay in the topic"
    );
    assert_eq!((e.ts, e.ts_src), (secs(1_714_295_445), TsSrc::Device));
    let Body::Location(l) = &e.body else {
        panic!("{e:?}")
    };
    assert_eq!((l.lat, l.lon, l.alt), (51.772, 0.0395, Some(85.0)));
    assert_eq!(
        (l.speed, l.course, l.sats, l.acc),
        (Some(3.0), Some(90.0), Some(9), None)
    );
}

#[test]
fn default_key_telemetry_is_status_at_the_receive_time() {
    let all = decode_all(&["AQ=="]);
    let e = only(&all[2]);
    assert_eq!((e.ts, e.ts_src), (secs(1_714_295_459), TsSrc::Gateway));
    let Body::Status(st) = &e.body else {
        panic!("{e:?}")
    };
    assert_eq!(
        (st.battery, st.voltage, st.uptime),
        (Some(87.0), Some(4.02), Some(5210))
    );
    assert_eq!(
        (
            st.extra["channel_utilization"].as_f64(),
            st.extra["air_util_tx"].as_f64()
        ),
        (Some(3.5), Some(0.8))
    );
}

#[test]
fn default_key_text_and_nodeinfo_name() {
    let all = decode_all(&["AQ=="]);
    let want = Message {
        text: "Engine 7 on scene, staging north lot".into(),
        to: None,
        msg_id: Some("1186871391".into()),
    };
    assert_eq!(only(&all[3]).body, Body::Message(want));
    let Body::Status(st) = &only(&all[4]).body else {
        panic!()
    };
    assert_eq!(
        (
            st.extra["long_name"].as_str(),
            st.extra["short_name"].as_str()
        ),
        (Some("Engine 7"), Some("E7"))
    );
}

#[test]
fn custom_32_byte_key_decrypts_its_channel() {
    let all = decode_all(&["AQ==", OPS_KEY]);
    let e = only(&all[5]);
    assert_eq!(e.dev, "!7efeb2c8");
    let Body::Status(st) = &e.body else { panic!() };
    assert_eq!(st.temperature, Some(21.5));
    assert_eq!(st.extra["relative_humidity"].as_f64(), Some(40.0));
    assert_eq!(st.extra["barometric_pressure"].as_f64(), Some(1013.25));
    let Body::Message(m) = &only(&all[6]).body else {
        panic!()
    };
    assert_eq!(
        (m.text.as_str(), m.to.as_deref()),
        ("Copy, en route", Some("!deadbeef"))
    );
}

#[test]
fn without_its_key_a_channel_is_wrong_key() {
    let all = decode_all(&["AQ=="]);
    let e = all[5].as_ref().unwrap_err();
    assert_eq!(e.reason(), "wrong_key", "{e}");
    assert!(e.to_string().contains("\"Ops\""), "{e}");
}

#[test]
fn empty_envelope_and_empty_packet_are_missing_fields() {
    let d = ProtoDecoder::new(&["AQ=="]).unwrap();
    assert_eq!(
        d.decode("x", b"", now()).unwrap_err().reason(),
        "missing_field"
    );
    let env = ServiceEnvelope {
        packet: Some(MeshPacket::default()),
        ..Default::default()
    };
    assert_eq!(
        d.decode("x", &env.encode_to_vec(), now())
            .unwrap_err()
            .reason(),
        "missing_field"
    );
}

#[test]
fn bad_payloads_inside_a_good_packet() {
    use messages::{port, Data};
    let d = ProtoDecoder::new(&["AQ=="]).unwrap();
    let pkt = |portnum, payload: &[u8]| MeshPacket {
        from: 1,
        id: 2,
        payload: Some(Payload::Decoded(Data {
            portnum,
            payload: payload.to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let reason = |p: MeshPacket| d.decode_packet(&p, "", now()).unwrap_err().reason();
    assert_eq!(reason(pkt(port::POSITION, b"\xff\xff")), "not_protobuf");
    assert_eq!(reason(pkt(port::TEXT_MESSAGE, b"\xff")), "bad_utf8");
    let far = messages::Position {
        latitude_i: Some(950_000_000),
        longitude_i: Some(1),
        ..Default::default()
    };
    assert_eq!(
        reason(pkt(port::POSITION, &far.encode_to_vec())),
        "bad_position"
    );
    let nofix = messages::Position::default().encode_to_vec();
    assert!(d
        .decode_packet(&pkt(port::POSITION, &nofix), "", now())
        .unwrap()
        .events
        .is_empty());
}

#[test]
fn bad_keys_are_refused() {
    assert!(ProtoDecoder::new(&["AQI="]).is_err());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let d = ProtoDecoder::new(&["AQ==", OPS_KEY]).unwrap();
            let _ = d.decode("x", &bytes, now());
        }

        #[test]
        fn no_encrypted_payload_panics(cipher in proptest::collection::vec(any::<u8>(), 0..300), from: u32, id: u32, channel in 0u32..256) {
            let d = ProtoDecoder::new(&["AQ==", OPS_KEY]).unwrap();
            let p = MeshPacket { from, id, channel, payload: Some(Payload::Encrypted(cipher)), ..Default::default() };
            let _ = d.decode_packet(&p, "LongFast", now());
        }
    }
}
