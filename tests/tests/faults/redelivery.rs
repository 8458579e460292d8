//! A message the device broker redelivers (DUP) after Outpost stored it but died before its
//! PUBACK reached the broker is stored once.
//!
//! Reproduced without racing: the device-side link runs through a proxy whose gateway →
//! broker direction is held (`pause_upstream`), so publishes reach Outpost and are stored
//! while its PUBACKs never reach the broker. Then Outpost is killed, the held bytes are
//! dropped (`cut`), and a restarted Outpost gets the redelivery.

use std::time::{Duration, Instant};

use outpost_system_tests::rt::RuntimeThread;
use outpost_system_tests::wait_until;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

use crate::common::{secs, Feed, Rig, RigOpts, GW};

const N: u64 = 20;

/// Connects once as `client_id` with the persistent session, collects what the broker sends
/// (up to `want` publishes or 5 s) without acknowledging anything, and leaves:
/// (publishes, with DUP set).
fn peek_session(port: u16, client_id: &str, want: usize) -> (usize, usize) {
    let rt = RuntimeThread::start("peek").unwrap();
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(5));
    let fut = async move {
        let (_client, mut el) = AsyncClient::new(opts, 10);
        let (mut n, mut dup) = (0, 0);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(ev) = el.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = ev {
                    n += 1;
                    dup += usize::from(p.dup);
                    if n == want {
                        break;
                    }
                }
            }
        })
        .await;
        (n, dup)
    };
    rt.call(Duration::from_secs(10), fut).unwrap()
}

#[test]
fn broker_redelivery_after_gateway_crash_is_stored_once() {
    let t = Instant::now();
    let opts = RigOpts {
        devices_proxy: true,
        ..RigOpts::default()
    };
    let mut rig = Rig::start(opts, |c| c);
    rig.warm_up();
    // Late probes of the warm-up must not count as ours.
    std::thread::sleep(Duration::from_secs(1));
    let base = rig.accepted("location");
    let proxy = rig.devices_proxy.as_ref().unwrap();

    proxy.pause_upstream();
    let mut feed = Feed::new(&rig.devices.url(), "rd", 2);
    assert!(feed.publish(N), "device broker did not acknowledge");
    assert!(
        wait_until(Duration::from_secs(20), || rig.accepted("location")
            >= base + N),
        "events not stored while the PUBACKs are held"
    );
    rig.outpost.kill9().unwrap();
    proxy.cut();
    // `pass` right after `cut` could be seen first and release the held PUBACKs: wait until
    // the proxy has really dropped the connection (and what it held).
    assert!(wait_until(Duration::from_secs(5), || proxy
        .connections_active()
        == 0));
    proxy.pass();

    // The broker still owes these to Outpost's session, and redelivers them with DUP.
    let client_id = format!("outpost-{GW}");
    let (seen, dup) = peek_session(rig.devices.port(), &client_id, N as usize);
    eprintln!("[redelivery] broker redelivered {seen} publishes to the session, {dup} with DUP=1");
    assert!(
        seen as u64 >= N && dup as u64 >= N,
        "the broker did not redeliver: {seen} publishes, {dup} DUP"
    );

    rig.outpost.restart().unwrap();
    let tally = rig.finish("redelivery", &[&feed], Duration::from_secs(30));
    let stored = rig.accepted("location") - base;
    eprintln!(
        "[redelivery] stored {stored} of {N} redelivered inputs; done in {:.1}s",
        secs(t)
    );
    assert_eq!(stored, N, "a redelivered input was stored twice");
    assert_eq!(tally.delivered as u64, N);
}
