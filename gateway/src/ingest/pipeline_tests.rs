use super::*;

fn input() -> Input {
    Input {
        publish: Publish::new("t", QoS::AtLeastOnce, "{}"),
        items: Vec::new(),
        in_hand: false,
    }
}

#[test]
fn inputs_linger_unless_enough_wait_one_is_urgent_or_the_oldest_waited_long_enough() {
    // Arrived "later than now": has not waited at all, whatever the clock does meanwhile.
    let fresh = Some(Instant::now() + Duration::from_secs(3600));
    let mut w = Waiting {
        since: fresh,
        ..Default::default()
    };
    w.inputs.push(input());
    assert!(!w.ripe(), "one fresh input lingers");
    w.urgent = true;
    assert!(w.ripe(), "an alert or a message does not wait");
    w.urgent = false;
    w.inputs.extend((1..OVERLAP_MIN).map(|_| input()));
    assert!(w.ripe(), "{OVERLAP_MIN} waiting go at once");
    let aged = Waiting {
        inputs: vec![input()],
        since: Instant::now().checked_sub(LINGER),
        ..Default::default()
    };
    assert!(aged.ripe(), "the oldest waited {LINGER:?}");
}
