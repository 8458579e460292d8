//! Classes whose batches the hub broker did not take (an MQTT 5 PUBACK with a failure reason:
//! 0x10 no matching subscribers, 0x87 not authorized, …), sans-I/O. Such a class waits out a
//! pause, then sends one batch of one event at a time (a probe that costs a metered link next
//! to nothing) until one is delivered. The other classes are not held back by it: a topic the
//! broker refuses must not stall the rest of the uplink.

use crate::event::Class;
use crate::util::backoff::Backoff;
use std::time::{Duration, Instant};

/// Shortest and longest pause after a refusal.
const PAUSE: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

#[derive(Debug, Clone)]
struct State {
    /// Refused and not delivered since.
    probing: bool,
    /// Not to be sent before this.
    paused_until: Option<Instant>,
    backoff: Backoff,
}

/// Per class: refused and not yet delivered again?
#[derive(Debug, Clone)]
pub struct Refusals([State; Class::COUNT]);

impl Default for Refusals {
    fn default() -> Self {
        Refusals(std::array::from_fn(|_| State {
            probing: false,
            paused_until: None,
            backoff: Backoff::new(PAUSE.0, PAUSE.1),
        }))
    }
}

impl Refusals {
    /// A batch of `class` was refused at `now`: it pauses (0.25 s, doubling to 5 s); the
    /// pause is returned.
    pub fn refused(&mut self, class: Class, now: Instant) -> Duration {
        let s = &mut self.0[class.index()];
        let d = s.backoff.next_delay();
        s.probing = true;
        s.paused_until = Some(now + d);
        d
    }

    /// A batch of `class` was delivered: it is sent as usual again.
    pub fn delivered(&mut self, class: Class) {
        let s = &mut self.0[class.index()];
        if s.probing {
            s.probing = false;
            s.paused_until = None;
            s.backoff.reset();
        }
    }

    /// Whether `class` is in its pause at `now`.
    pub fn paused(&self, class: Class, now: Instant) -> bool {
        self.0[class.index()].paused_until.is_some_and(|t| now < t)
    }

    /// Whether `class` sends one batch of one event at a time.
    pub fn probing(&self, class: Class) -> bool {
        self.0[class.index()].probing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_class_pauses_then_probes_until_delivered_and_the_others_go_on() {
        let mut r = Refusals::default();
        let t = Instant::now();
        let d = r.refused(Class::Presence, t);
        assert!(d >= PAUSE.0 / 2 && d <= PAUSE.0, "{d:?}");
        assert!(r.paused(Class::Presence, t));
        assert!(r.probing(Class::Presence));
        for c in Class::ALL.into_iter().filter(|c| *c != Class::Presence) {
            assert!(!r.paused(c, t) && !r.probing(c), "{c} held back");
        }
        assert!(!r.paused(Class::Presence, t + PAUSE.0), "the pause ends");
        assert!(r.probing(Class::Presence), "still probing until delivered");
        // Refused again: the pause grows, up to its bound.
        let mut last = d;
        for _ in 0..10 {
            last = r.refused(Class::Presence, t);
        }
        assert!(last <= PAUSE.1 && last >= PAUSE.1 / 2, "{last:?}");
        r.delivered(Class::Presence);
        assert!(!r.paused(Class::Presence, t) && !r.probing(Class::Presence));
        // And starts short again.
        assert!(r.refused(Class::Presence, t) <= PAUSE.0);
    }
}
