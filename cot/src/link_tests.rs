//! The link against a plain loopback listener standing in for a TAK server: picture first on
//! every connect, then live updates; alerts kept across a reconnect; echoes and malformed
//! events counted and skipped.

use super::*;
use crate::encode::{self, Unit};
use crate::tls::Endpoint;
use crate::xml::Element;
use outpost_proto::event::Location;
use tokio::net::TcpListener;

struct Fixed(Vec<String>);

impl Picture for Fixed {
    fn current(&self) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + '_>> {
        let v = self.0.clone();
        Box::pin(async move { Ok(v) })
    }
}

fn pli(uid: &str, lat: f64) -> String {
    let u = Unit {
        uid: uid.into(),
        callsign: uid.into(),
        cot_type: crate::DEFAULT_TYPE.into(),
    };
    let l = Location {
        lat,
        lon: 1.0,
        ..Default::default()
    };
    let now = chrono::Utc::now();
    encode::pli(&u, &l, None, now, now)
}

/// Reads events from `s` until `n` arrived; their uids.
async fn read_uids(s: &mut TcpStream, split: &mut Splitter, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut docs = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < n {
        let k = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("read timed out; got {out:?}"))
            .unwrap();
        assert!(k > 0, "link closed; got {out:?}");
        split.push(&buf[..k], &mut docs);
        for d in docs.drain(..) {
            let e = Element::parse(&d.unwrap()).unwrap();
            out.push(e.get("uid").unwrap().to_string());
        }
    }
    out
}

#[tokio::test]
async fn picture_first_on_every_connect_then_live_and_alerts_survive() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let queue = Arc::new(SendQueue::new(64));
    queue.push(Outgoing {
        kind: Kind::Position("a".into()),
        xml: pli("outpost.gw.a", 1.0),
    });
    queue.push(Outgoing {
        kind: Kind::Alert,
        xml: pli("alert-1", 2.0),
    });
    let cfg = LinkConfig {
        name: "t".into(),
        endpoint: Endpoint {
            tls: false,
            host: "127.0.0.1".into(),
            port,
        },
        tls: None,
        announce: Some(Arc::new(|| pli("outpost.gw", 0.0))),
        self_uid: "outpost.gw".into(),
        own: crate::Own::Gateway("gw".into()),
        subscribe: true,
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        // Longer than any test run: what was written before the break is always resent.
        resend_window: Duration::from_secs(3600),
    };
    let picture = Arc::new(Fixed(vec![pli("outpost.gw.a", 1.5)]));
    let stats = Arc::new(LinkStats::default());
    let (tx, mut rx) = mpsc::channel(8);
    let token = CancellationToken::new();
    let task = tokio::spawn(run(
        cfg,
        queue.clone(),
        picture,
        tx,
        stats.clone(),
        token.clone(),
    ));

    let (mut s, _) = listener.accept().await.unwrap();
    let mut split = Splitter::new(MAX_EVENT_BYTES);
    let got = read_uids(&mut s, &mut split, 3).await;
    assert_eq!(
        got,
        ["outpost.gw", "outpost.gw.a", "alert-1"],
        "announce, picture, then the queue"
    );
    // The position queued while down was in the picture: not sent twice.
    assert!(queue.is_empty());

    // What the server sends: garbage, our own echo, a TAK user's PLI.
    s.write_all(b"<event uid='x'><broken></event>")
        .await
        .unwrap();
    s.write_all(pli("outpost.gw.a", 1.5).as_bytes())
        .await
        .unwrap();
    s.write_all(pli("ANDROID-1", 3.0).as_bytes()).await.unwrap();
    let ib = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ib.sender(), Some("ANDROID-1"));
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.echoes.load(Ordering::Relaxed), 1);

    // The server goes away; an alert queued meanwhile goes out after the new picture (even if
    // the link wrote it into the dead connection first).
    drop(s);
    queue.push(Outgoing {
        kind: Kind::Alert,
        xml: pli("alert-2", 4.0),
    });
    let (mut s, _) = listener.accept().await.unwrap();
    let mut split = Splitter::new(MAX_EVENT_BYTES);
    let got = read_uids(&mut s, &mut split, 4).await;
    // Alerts written shortly before the connection broke may have died with it: sent again.
    assert_eq!(got, ["outpost.gw", "outpost.gw.a", "alert-1", "alert-2"]);
    queue.push(Outgoing {
        kind: Kind::Position("b".into()),
        xml: pli("outpost.gw.b", 5.0),
    });
    assert_eq!(read_uids(&mut s, &mut split, 1).await, ["outpost.gw.b"]);
    assert_eq!(stats.connects.load(Ordering::Relaxed), 2);
    assert_eq!(stats.disconnects.load(Ordering::Relaxed), 1);
    // Every test event is a PLI by type, pictures included: 6 read, plus alert-2 once more
    // when it was first written into the dead connection.
    let plis = stats.sent_kind[SentKind::Pli as usize].load(Ordering::Relaxed);
    assert!((6..=7).contains(&plis), "{plis}");
    token.cancel();
    task.await.unwrap();
    assert_eq!(
        stats.disconnects.load(Ordering::Relaxed),
        1,
        "our own shutdown is not a disconnect"
    );
}
