//! The store's redelivery check, driven in-process against a private `redis-server`: an input
//! the device broker redelivers (DUP set, under its original packet id) is stored once however
//! many inputs were stored in between, and a packet id the broker has given to a new input
//! does not make that input look like a redelivery (`IngestItem::slot`, `<p>:ingest:slots`).
//!
//! `burst_cut.rs` reaches the same path through the real binaries, but only when a cut happens
//! to lose acknowledgements; here each case is made on purpose.

use chrono::Utc;
use outpost::event::{Body, Event, Location, TsSrc};
use outpost::store::{IngestItem, Outcome, Store, RECENT_CAP};
use outpost_system_tests::RedisServer;

/// One OwnTracks-like input of device `dev`, as the device broker source makes it: its input
/// hash and, at QoS 1, its packet id as the slot.
fn input(dev: &str, hash: u64, slot: Option<&str>, dup: bool) -> IngestItem {
    let now = Utc::now();
    IngestItem {
        dev: dev.into(),
        profile: "owntracks".into(),
        presence_timeout: std::time::Duration::from_secs(600),
        events: vec![Event {
            dev: dev.into(),
            body: Body::Location(Location {
                lat: 52.0 + (hash % 1000) as f64 / 10_000.0,
                lon: 4.0,
                ..Default::default()
            }),
            ts: now,
            ts_src: TsSrc::Device,
        }],
        dedup_key: None,
        input_hash: Some(hash),
        maybe_duplicate: dup,
        slot: slot.map(str::to_string),
        rx: now,
        topic: format!("owntracks/u/{dev}"),
    }
}

/// A store on a private `redis-server` of its own, driven from the test's thread.
struct Fresh {
    _redis: RedisServer,
    rt: tokio::runtime::Runtime,
    store: Store,
}

impl Fresh {
    fn new() -> Fresh {
        let redis = RedisServer::new().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A budget far above what the tests store, so nothing is refused as full.
        let store = rt
            .block_on(Store::connect(&redis.url(), "t", 10_000_000))
            .expect("store connects");
        Fresh {
            _redis: redis,
            rt,
            store,
        }
    }

    fn ingest(&self, items: &[IngestItem]) -> Vec<Outcome> {
        self.rt.block_on(self.store.ingest(items)).expect("ingest")
    }

    /// Ingests `item` alone; whether it was stored (else: panics unless a duplicate).
    fn stored(&self, item: &IngestItem) -> bool {
        match &self.ingest(std::slice::from_ref(item))[..] {
            [Outcome::Stored(_)] => true,
            [Outcome::Duplicate] => false,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_redelivery_behind_more_inputs_than_the_recent_list_holds_is_stored_once() {
    let s = Fresh::new();
    let first = input("phone-a", 0xa11ce, Some("7"), false);
    assert!(s.stored(&first));

    // More inputs than the recent-hash list keeps, under other packet ids (the broker does not
    // reuse 7 while the first input is unacknowledged).
    let others: Vec<IngestItem> = (0..RECENT_CAP as u64 + 500)
        .map(|n| {
            let pkid = 8 + n % 60_000;
            input("phone-b", 0x10_0000 + n, Some(&pkid.to_string()), false)
        })
        .collect();
    for chunk in others.chunks(1024) {
        let out = s.ingest(chunk);
        assert!(out.iter().all(|o| matches!(o, Outcome::Stored(_))));
    }

    let mut again = first.clone();
    again.maybe_duplicate = true;
    assert!(!s.stored(&again), "the redelivery was stored again");
}

#[test]
fn a_packet_id_given_to_a_new_input_is_not_taken_for_a_redelivery() {
    let s = Fresh::new();
    assert!(s.stored(&input("phone-a", 0xaaaa, Some("42"), false)));

    // Acknowledged; the broker gives 42 to the next input, which it must redeliver (with DUP)
    // if the gateway set it aside: it was never stored, so it is stored now.
    let b = input("phone-a", 0xbbbb, Some("42"), true);
    assert!(s.stored(&b));
    // Its own redelivery is recognised.
    assert!(!s.stored(&b));
}

#[test]
fn a_redelivery_in_the_same_call_as_its_original_is_stored_once() {
    let s = Fresh::new();
    let a = input("phone-a", 0xc0ffee, Some("3"), false);
    let mut copy = a.clone();
    copy.maybe_duplicate = true;
    let out = s.ingest(&[a, copy]);
    assert!(matches!(out[0], Outcome::Stored(_)), "{out:?}");
    assert_eq!(out[1], Outcome::Duplicate);
}

#[test]
fn inputs_without_a_packet_id_are_still_recognised_by_the_recent_list() {
    let s = Fresh::new();
    // A serial input, or a retry of our own after a lost Redis reply.
    let a = input("gps-1", 0x5e71a1, None, false);
    assert!(s.stored(&a));
    let mut retry = a;
    retry.maybe_duplicate = true;
    assert!(!s.stored(&retry));
}
