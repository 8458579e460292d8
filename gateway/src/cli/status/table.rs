//! The human-readable rendering of a [`Report`].

use super::Report;
use std::fmt::Write as _;

/// `3d4h`, `5m12s`, `40s`: the two largest units.
pub fn human_age(s: i64) -> String {
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match () {
        _ if d > 0 => format!("{d}d{h}h"),
        _ if h > 0 => format!("{h}h{m}m"),
        _ if m > 0 => format!("{m}m{sec}s"),
        _ => format!("{sec}s"),
    }
}

fn opt_age(s: Option<i64>) -> String {
    s.map_or_else(|| "-".into(), human_age)
}

/// The report as aligned text sections.
pub fn table(r: &Report) -> String {
    let mut o = String::new();
    let gw = r.gateway.as_deref().unwrap_or("?");
    let _ = writeln!(
        o,
        "Outpost {gw}  (redis {}, prefix {:?}, at {})",
        r.redis, r.prefix, r.at
    );
    let _ = writeln!(o);
    let since = match (&r.uplink.since, r.uplink.for_s) {
        (Some(s), Some(a)) => format!(" since {s} ({})", human_age(a)),
        _ => String::new(),
    };
    let state = match r.uplink.state.as_str() {
        "unknown" => "never connected",
        s => s,
    };
    let _ = writeln!(o, "Uplink: {state}{since}");
    for g in &r.regions {
        let since = match (&g.uplink.since, g.uplink.for_s) {
            (Some(s), Some(a)) => format!(" since {s} ({})", human_age(a)),
            _ => String::new(),
        };
        let state = match g.uplink.state.as_str() {
            "unknown" => "never connected",
            s => s,
        };
        let lag = if g.lagging {
            ", LAGGING past max_lag"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  region {}: {state}{since}; backlog {}, oldest {}, missed {}{lag}",
            g.name,
            g.backlog,
            opt_age(g.oldest_age_s),
            g.missed
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<10} {:>8} {:>8} {:>10} {:>10}",
        "CLASS", "BACKLOG", "OLDEST", "ACCEPTED", "DELIVERED"
    );
    for c in &r.classes {
        let _ = writeln!(
            o,
            "{:<10} {:>8} {:>8} {:>10} {:>10}",
            c.class,
            c.backlog,
            opt_age(c.oldest_age_s),
            c.accepted,
            c.delivered
        );
    }
    let _ = writeln!(o);
    let online = r.devices.iter().filter(|d| d.state == "online").count();
    let _ = writeln!(
        o,
        "Devices: {} ({online} online, {} offline)",
        r.devices.len(),
        r.devices.len() - online
    );
    if !r.devices.is_empty() {
        let w = r
            .devices
            .iter()
            .map(|d| d.id.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            o,
            "{:<w$} {:<8} {:>9} {:<12} POSITION",
            "DEVICE", "STATE", "LAST SEEN", "PROFILE"
        );
        for d in &r.devices {
            let pos = d
                .position
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| format!("{:.5},{:.5}", p.lat, p.lon));
            let _ = writeln!(
                o,
                "{:<w$} {:<8} {:>9} {:<12} {pos}",
                d.id,
                d.state,
                d.last_seen_age_s
                    .map_or_else(|| "-".into(), |a| format!("{} ago", human_age(a))),
                d.profile.as_deref().unwrap_or("-"),
            );
        }
    }
    let _ = writeln!(o);
    if r.drops.is_empty() {
        let _ = writeln!(o, "Drops: none");
    } else {
        let _ = writeln!(o, "Drops:");
        for (reason, n) in &r.drops {
            let _ = writeln!(o, "  {reason:<20} {n:>8}");
        }
    }
    messages(r, &mut o);
    o
}

/// The pending-messages section and the downlink counters.
fn messages(r: &Report, o: &mut String) {
    let _ = writeln!(o);
    let _ = writeln!(o, "Messages pending: {}", r.pending_messages.len());
    if !r.pending_messages.is_empty() {
        let w = r
            .pending_messages
            .iter()
            .map(|m| m.dev.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            o,
            "{:<w$} {:<28} {:<8} {:>9} TEXT",
            "DEVICE", "MSG_ID", "STATE", "EXPIRES"
        );
        for m in &r.pending_messages {
            let text: String = m.text.chars().take(40).collect();
            let _ = writeln!(
                o,
                "{:<w$} {:<28} {:<8} {:>9} {text}",
                m.dev,
                m.msg_id,
                m.state,
                format!("in {}", human_age(m.expires_in_s.max(0))),
            );
        }
    }
    if !r.downlink.is_empty() {
        let counts: Vec<String> = r.downlink.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(o, "Downlink: {}", counts.join(", "));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_use_two_units() {
        assert_eq!(super::human_age(42), "42s");
        assert_eq!(super::human_age(312), "5m12s");
        assert_eq!(super::human_age(3 * 86_400 + 4 * 3600 + 5), "3d4h");
    }
}
