//! One fix epoch: the sentences a receiver sends for one UTC time of day, merged.
//!
//! A receiver spreads one fix over several sentences (GGA has altitude and satellites, RMC has
//! speed and date, GSA says 2D or 3D, VTG has speed again). Outpost reports one location per
//! epoch, so the decoder folds every sentence of the epoch into an [`Epoch`] and turns it into
//! a [`Location`] once the epoch is complete.

use crate::event::{valid_position, Fix, Location};

use super::parse::{Pos, Quality, Report};
use super::TimeOfDay;

/// A sentence address (`GNRMC`): talker + type, always five ASCII letters for the sentences an
/// epoch takes.
pub(crate) type Addr = [u8; 5];

/// The merged reports of one epoch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Epoch {
    /// The epoch's UTC time of day; `None` while only untimed sentences (VTG, GSA) arrived.
    pub tod: Option<TimeOfDay>,
    /// The last timed sentence merged: the candidate "cycle ender" (see `NmeaDecoder`).
    pub last_timed: Option<Addr>,
    r: Report,
    /// What untimed sentences (GSA) said about the fix, the last one winning.
    untimed_valid: Option<bool>,
}

impl Epoch {
    /// Folds one sentence's report into the epoch.
    ///
    /// Rules, where sentences disagree:
    /// - any timed sentence saying "no fix" (RMC `V`, GGA quality 0, GNS all `N`, GLL `V`)
    ///   wins over one saying "fix";
    /// - GSA's "mode 1, no fix" counts only when no timed sentence of the epoch says either
    ///   way: GSA carries no time, and receivers send it after the sentence that ends a burst
    ///   (SEANEXX RX210, Unicore UM621), so the GSA of the last no-fix second is merged into
    ///   the first fixed one; gpsd, where the last sentence decides, reports those seconds;
    /// - of several positions the most precise (most decimals of minutes) wins, the later on
    ///   a tie, so an RMC with 4 decimals does not blur a GGA with 7;
    /// - satellites: the largest count, because receivers that split GGA per constellation
    ///   (`$GPGGA` + `$GAGGA`) report each system's share and GNS the total;
    /// - fix quality from GGA over GNS over the RMC/GLL mode letter;
    /// - HDOP from GGA/GNS over GSA's; other values: the last one given.
    pub fn merge(&mut self, n: &Report) {
        let r = &mut self.r;
        if n.tod.is_none() {
            self.untimed_valid = n.valid.or(self.untimed_valid);
        } else {
            r.valid = match (r.valid, n.valid) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), _) | (_, Some(true)) => Some(true),
                _ => None,
            };
        }
        if let Some(p) = n.pos {
            if n.valid != Some(false) && r.pos.is_none_or(|old: Pos| p.decimals >= old.decimals) {
                r.pos = Some(p);
            }
        }
        if n.quality.is_some() && n.quality_rank >= r.quality_rank {
            // Same source twice (per-constellation GGAs): the better fix of the two.
            r.quality = if n.quality_rank == r.quality_rank {
                r.quality.max(n.quality)
            } else {
                n.quality
            };
            r.quality_rank = n.quality_rank;
        }
        r.dim = n.dim.or(r.dim);
        r.sats = r.sats.max(n.sats);
        if n.hdop.is_some() && (n.hdop_from_fix || !r.hdop_from_fix) {
            r.hdop = n.hdop;
            r.hdop_from_fix |= n.hdop_from_fix;
        }
        r.date = n.date.or(r.date);
        r.alt = n.alt.or(r.alt);
        r.speed = n.speed.or(r.speed);
        r.course = n.course.or(r.course);
        r.acc = n.acc.or(r.acc);
    }

    /// The date an RMC or ZDA of this epoch gave, if any.
    pub fn date(&self) -> Option<chrono::NaiveDate> {
        self.r.date
    }

    /// The epoch's location, or `None` when the receiver has no fix (or no position).
    pub fn location(&self) -> Option<Location> {
        let r = &self.r;
        let p = r.pos?;
        if r.valid.or(self.untimed_valid) != Some(true) || !valid_position(p.lat, p.lon) {
            return None;
        }
        let fix = match r.quality {
            Some(Quality::Differential) => Fix::Dgps,
            Some(Quality::RtkFixed) => Fix::Rtk,
            Some(Quality::RtkFloat) => Fix::RtkFloat,
            Some(Quality::Estimated) => Fix::Est,
            // Autonomous or unstated: GSA says 2D/3D; without GSA an altitude means 3D.
            Some(Quality::Autonomous) | None => match r.dim {
                Some(3) => Fix::ThreeD,
                Some(2) => Fix::TwoD,
                _ if r.alt.is_some() => Fix::ThreeD,
                _ => Fix::TwoD,
            },
        };
        Some(Location {
            lat: p.lat,
            lon: p.lon,
            // A 2D fix's altitude is the receiver's assumption, not a measurement.
            alt: if fix == Fix::TwoD { None } else { r.alt },
            speed: r.speed.filter(|s| *s >= 0.0),
            course: r.course.filter(|c| (0.0..=360.0).contains(c)),
            hdop: r.hdop.filter(|h| *h > 0.0),
            acc: r.acc,
            fix: Some(fix),
            sats: r.sats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(lat: f64, decimals: u8) -> Option<Pos> {
        Some(Pos {
            lat,
            lon: 1.0,
            decimals,
        })
    }

    fn timed(r: Report) -> Report {
        Report {
            tod: Some(1000),
            ..r
        }
    }

    #[test]
    fn no_fix_wins_and_precise_position_wins() {
        let mut e = Epoch::default();
        e.merge(&timed(Report {
            pos: pos(1.0, 7),
            valid: Some(true),
            ..Default::default()
        }));
        e.merge(&timed(Report {
            pos: pos(2.0, 4),
            valid: Some(true),
            ..Default::default()
        }));
        assert_eq!(e.location().unwrap().lat, 1.0);
        // An untimed GSA "no fix" does not overrule timed sentences saying "fix"…
        e.merge(&Report {
            dim: Some(1),
            valid: Some(false),
            ..Default::default()
        });
        assert!(e.location().is_some());
        // …a timed "no fix" does.
        e.merge(&timed(Report {
            valid: Some(false),
            ..Default::default()
        }));
        assert_eq!(e.location(), None);
    }

    #[test]
    fn fix_kind_follows_quality_then_gsa_then_altitude() {
        let base = timed(Report {
            pos: pos(1.0, 4),
            valid: Some(true),
            quality: Some(Quality::Autonomous),
            alt: Some(10.0),
            ..Default::default()
        });
        let mut e = Epoch::default();
        e.merge(&base);
        assert_eq!(e.location().unwrap().fix, Some(Fix::ThreeD));
        e.merge(&Report {
            dim: Some(2),
            ..Default::default()
        });
        let l = e.location().unwrap();
        assert_eq!((l.fix, l.alt), (Some(Fix::TwoD), None));
        e.merge(&Report {
            quality: Some(Quality::RtkFixed),
            ..Default::default()
        });
        assert_eq!(e.location().unwrap().fix, Some(Fix::Rtk));
    }
}
