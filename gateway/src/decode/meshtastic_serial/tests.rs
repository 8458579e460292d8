//! Decode tests on a radio's serial stream made by upstream's own code
//! (`tests/fixtures/meshtastic/make_fixtures.py`: boot debug text, line noise, a false header,
//! the handshake's answers, packets, a routing ack), and proptests of the framer and session.

use super::*;
use crate::decode::testkit::now;
use crate::event::Body;

const CAPTURE: &[u8] = include_bytes!("../../../tests/fixtures/meshtastic/radio.bin");
const OPS_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn heard(keys: &[&str]) -> (Radio, Vec<Heard>, Vec<String>, framer::StreamStats) {
    let mut radio = Radio::new(ProtoDecoder::new(keys).unwrap(), 42);
    let mut f = framer::StreamFramer::default();
    let (mut heard, mut text) = (Vec::new(), Vec::new());
    f.push(CAPTURE, &mut |c| match c {
        framer::Chunk::Frame(b) => heard.push(radio.on_frame(b, now()).unwrap()),
        framer::Chunk::Text(t) => text.push(t.to_string()),
    });
    (radio, heard, text, f.stats())
}

#[test]
fn handshake_packets_and_ack_from_a_capture() {
    let (radio, heard, text, stats) = heard(&["AQ==", OPS_KEY]);
    assert_eq!(radio.my_node(), Some(0xda656a30));
    assert!(radio.configured());
    assert_eq!(radio.name(0xda65ade0), Some("Engine 7"));
    let kinds: Vec<String> = heard
        .iter()
        .map(|h| match h {
            Heard::Packet(d) => d
                .events
                .iter()
                .map(|e| e.class().as_str())
                .collect::<Vec<_>>()
                .join(","),
            other => format!("{other:?}").split('(').next().unwrap().to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Other",
            "Other",
            "Other",
            "Configured",
            "location",
            "status",
            "message",
            "status",
            "status",
            "Ack"
        ]
    );
    let Heard::Ack(ack) = &heard[9] else { panic!() };
    assert_eq!(
        (ack.request_id, ack.from, ack.error.as_deref()),
        (4242, 0xdeadbeef, None)
    );
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(text[0].contains("Booting Meshtastic"), "{text:?}");
    assert_eq!((stats.frames, stats.oversize), (10, 1));
}

#[test]
fn packets_from_the_radio_are_the_mqtt_decoders_events() {
    let (_, heard, _, _) = heard(&["AQ==", OPS_KEY]);
    let Heard::Packet(d) = &heard[4] else {
        panic!()
    };
    assert_eq!(d.dedup_key.as_deref(), Some("mesh:da65ade0:1186871389"));
    let Body::Location(l) = &d.events[0].body else {
        panic!()
    };
    assert_eq!(
        (d.events[0].dev.as_str(), l.lat, l.lon),
        ("!da65ade0", 51.772, 0.0395)
    );
    let Heard::Packet(d) = &heard[8] else {
        panic!()
    };
    let Body::Status(st) = &d.events[0].body else {
        panic!()
    };
    assert_eq!(
        st.temperature,
        Some(21.5),
        "left encrypted by the radio, decrypted with the profile's key"
    );
}

#[test]
fn decode_capture_reports_the_undecryptable_frame_without_its_key() {
    let mut got = Vec::new();
    decode_capture(
        ProtoDecoder::new(&["AQ=="]).unwrap(),
        CAPTURE,
        now(),
        &mut |n, r| got.push((n, r.map(|d| d.events.len()).map_err(|e| e.reason()))),
    );
    assert_eq!(
        got,
        [
            (5, Ok(1)),
            (6, Ok(1)),
            (7, Ok(1)),
            (8, Ok(1)),
            (9, Err("wrong_key"))
        ]
    );
}

#[test]
fn session_bytes() {
    let mut r = Radio::new(ProtoDecoder::new(&["AQ=="]).unwrap(), 7);
    let start = r.start();
    assert_eq!(&start[..32], &[0xc3; 32]);
    assert_eq!(
        &start[32..],
        &[0x94, 0xc3, 0, 2, 0x18, 7],
        "ToRadio.want_config_id = 7"
    );
    assert_eq!(
        heartbeat(0),
        [0x94, 0xc3, 0, 2, 0x3a, 0],
        "ToRadio.heartbeat {{}}"
    );
    assert_eq!(r.on_frame(&[0x40, 1], now()), Ok(Heard::Rebooted));
    assert_eq!(
        r.on_frame(&[0x38, 8], now()),
        Ok(Heard::Other),
        "another client's config id"
    );
    assert_eq!(
        r.on_frame(&[0xff], now()).unwrap_err().reason(),
        "not_protobuf"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn framer_and_session_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), split in 1usize..64) {
            let mut radio = Radio::new(ProtoDecoder::new(&["AQ=="]).unwrap(), 1);
            let mut f = framer::StreamFramer::default();
            for c in bytes.chunks(split) {
                f.push(c, &mut |c| {
                    if let framer::Chunk::Frame(b) = c {
                        assert!(b.len() <= framer::MAX_FRAME);
                        let _ = radio.on_frame(b, now());
                    }
                });
            }
        }

        #[test]
        fn every_frame_survives_noise_before_it(noise in proptest::collection::vec(any::<u8>().prop_filter("no header byte", |b| *b != 0x94), 0..200), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut input = noise;
            input.extend(framer::frame(&payload).unwrap());
            let mut got = Vec::new();
            framer::StreamFramer::default().push(&input, &mut |c| {
                if let framer::Chunk::Frame(b) = c { got.push(b.to_vec()) }
            });
            prop_assert_eq!(got, vec![payload]);
        }
    }
}
