//! Gateway liveness at the hub (SPEC §5, §7): a retained `<prefix>/<gw>/state` says online (with
//! version and since) on connect; the same topic is the last will, so a crashed gateway shows
//! `{"state":"offline"}` once the hub broker notices. Asserted through the real hub's
//! `/api/v1/gateways`; that the state and snapshot are *retained* only the wire shows (a late
//! [`WireTap`]).

use std::time::Duration;

use outpost_system_tests::dedup::ArrivalKind;
use outpost_system_tests::outpost::outpost_command;
use outpost_system_tests::{Hub, Rig, WireTap, GW};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// Whether the hub shows [`GW`] in `state`.
fn shows(h: &Hub, state: &str) -> bool {
    h.gateway_state(GW).as_deref() == Some(state)
}

/// The hub's liveness entry of [`GW`].
fn entry(h: &Hub) -> Value {
    h.gateway(GW).unwrap_or(Value::Null)
}

fn binary_version() -> String {
    let out = outpost_command()
        .unwrap()
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().last().unwrap().to_string()
}

#[test]
fn retained_state_is_online_with_version_and_since_after_connect() {
    let rig = Rig::new().unwrap();
    let _gw = rig.start(&rig.config().mqtt("owntracks")).unwrap();
    assert!(rig.hub.wait_for(|h| shows(h, "online"), T));
    let state = entry(&rig.hub);
    assert_eq!(state["version"], binary_version(), "{state}");
    let since = state["since"].as_str().expect("since");
    let since = chrono::DateTime::parse_from_rfc3339(since).expect("since is RFC 3339");
    assert!(since.timestamp() > 1_700_000_000);

    // Retained: a client that subscribes later still gets it, flagged retained.
    let late = WireTap::connect_as(&rig.hub_broker.url(), "outpost/v1", "late-tap").unwrap();
    assert!(late.wait_for(|h| h.state().is_some_and(|s| s["state"] == "online"), T));
    let retained = late.timeline().into_iter().any(|a| {
        a.retained
            && matches!(&a.kind, ArrivalKind::State { gw, state } if gw == GW && state == "online")
    });
    assert!(retained, "state not retained: {:?}", late.timeline());
    // The snapshot is published just after the state (built from Redis first): wait for it.
    assert!(late.wait_for(|h| h.snapshot().is_some(), T));
    let snapshot_retained = late
        .timeline()
        .into_iter()
        .any(|a| a.retained && matches!(&a.kind, ArrivalKind::Snapshot { .. }));
    assert!(
        snapshot_retained,
        "snapshot not retained: {:?}",
        late.timeline()
    );
}

#[test]
fn hub_sees_offline_last_will_after_gateway_is_killed() {
    let rig = Rig::new().unwrap();
    let mut gw = rig.start(&rig.config().mqtt("owntracks")).unwrap();
    assert!(rig.hub.wait_for(|h| shows(h, "online"), T));
    let first_since = entry(&rig.hub)["since"].clone();
    assert!(first_since.is_string(), "{}", entry(&rig.hub));

    gw.kill9().unwrap();
    assert!(
        rig.hub.wait_for(|h| shows(h, "offline"), T),
        "no last will within {T:?}: {}",
        entry(&rig.hub)
    );
    // The will is the bare `{"state":"offline"}`: no since, no version.
    let offline = entry(&rig.hub);
    assert!(
        offline["since"].is_null() && offline["version"].is_null(),
        "{offline}"
    );

    // Back again: online with a new `since`.
    gw.restart().unwrap();
    assert!(rig.hub.wait_for(|h| shows(h, "online"), T));
    let since = entry(&rig.hub)["since"].clone();
    assert_ne!(since, first_since);
    assert!(rig.hub.errors().is_empty(), "{:?}", rig.hub.errors());
}

#[test]
fn hub_sees_offline_last_will_when_a_gateway_dies_behind_a_silent_link() {
    // Power cut behind a dead bearer: no FIN ever reaches the hub broker, so only the
    // keep-alive (2 s here) tells it the gateway is gone.
    let rig = Rig::with_proxy().unwrap();
    let mut gw = rig.start(&rig.config().mqtt("owntracks")).unwrap();
    assert!(rig.hub.wait_for(|h| shows(h, "online"), T));
    rig.proxy().pause();
    gw.kill9().unwrap();
    assert!(
        rig.hub.wait_for(|h| shows(h, "offline"), T),
        "no last will within {T:?}: {}",
        entry(&rig.hub)
    );
}
