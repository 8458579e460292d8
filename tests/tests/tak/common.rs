//! What the TAK tests share: a radio profile with a TAK type, gateway configs with `[[tak]]`,
//! CoT the test's TAK user sends (as ATAK would), and readers of what it received.

use std::time::Duration;

use outpost_cot::xml::Element;
use outpost_system_tests::{GatewayConfig, ProfileDir, Rig};

pub const T: Duration = Duration::from_secs(20);

/// A callsign no XML paste job survives.
pub const NASTY_NAME: &str = r#"<Eng & "7" 'Ü'>"#;
/// Chat text likewise, with a line break and non-ASCII.
pub const NASTY_TEXT: &str = "Evacuate <sector 4> & report \"now\" — ÄÖÜ 火 🚒\nline two";

/// The workspace profiles plus `tak-radio` (JSON radio: position, name, battery, SOS, text)
/// with TAK type `a-f-G-E-V-A` and presence timeout `timeout`.
pub fn radio_profiles(timeout: &str) -> ProfileDir {
    let dir = ProfileDir::copy().unwrap();
    let profile = format!(
        r#"name = "tak-radio"
description = "test radio for the TAK tests"
version = 1
decoder = "json"
presence_timeout = "{timeout}"
tak_type = "a-f-G-E-V-A"

[mqtt]
topic = "radios/+/up"
device_id = "{{1}}"

[json]
ts = "/ts"

[json.location]
lat = "/lat"
lon = "/lon"
alt = "/alt"
acc = "/acc"
speed = "/speed"
course = "/course"

[json.status]
battery = "/bat"

[json.status.extra]
name = "/name"

[json.message]
text = "/msg"

[json.alert]
when = "/sos"
text = "/sos_text"
"#
    );
    std::fs::write(dir.file("tak-radio"), profile).unwrap();
    dir
}

/// A config for gateway `id` on `rig` (uplink `uplink`), the radios, and `[[tak]]` `tak`.
pub fn config(rig: &Rig, id: &str, uplink: &str, dir: &ProfileDir, tak: &str) -> GatewayConfig {
    GatewayConfig::new(id, &rig.redis.url(), &rig.devices.url(), uplink)
        .keep_alive("5s")
        .devices_client_id(&format!("outpost-{id}"))
        .profiles(dir.path())
        .mqtt("tak-radio")
        .extra_toml(tak)
}

/// `[[tak]]` to `url`, plus `more` lines.
pub fn tak_table(url: &str, more: &str) -> String {
    format!("[[tak]]\nurl = \"{url}\"\n{more}\n")
}

/// Attribute `attr` of the element at `path` below `e` (e.g. `["detail", "contact"]`).
pub fn at<'a>(e: &'a Element, path: &[&str], attr: &str) -> Option<&'a str> {
    let mut cur = e;
    for p in path {
        cur = cur.find(p)?;
    }
    cur.get(attr)
}

/// A number attribute (servers re-format numbers).
pub fn num(e: &Element, path: &[&str], attr: &str) -> Option<f64> {
    at(e, path, attr)?.parse().ok()
}

pub fn ts(e: &Element, attr: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(e.get(attr).unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

pub fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-5)
}

/// A PLI of `uid` at (`lat`, `lon`).
pub fn is_pli_at(e: &Element, uid: &str, lat: f64, lon: f64) -> bool {
    e.get("uid") == Some(uid)
        && close(num(e, &["point"], "lat"), lat)
        && close(num(e, &["point"], "lon"), lon)
}

/// A CoT `<event>` as ATAK starts one: version 2.0, time = start = now, stale in 5 minutes.
fn event(uid: impl Into<String>, cot_type: &str, how: &str) -> Element {
    let n = chrono::Utc::now();
    let f =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let t = f(n);
    Element::new("event")
        .attr("version", "2.0")
        .attr("uid", uid)
        .attr("type", cot_type)
        .attr("how", how)
        .attr("time", t.as_str())
        .attr("start", t)
        .attr("stale", f(n + chrono::Duration::minutes(5)))
}

/// An ATAK user's own PLI (self-description: takv, contact, __group, as ATAK sends it).
pub fn atak_pli(uid: &str, callsign: &str, lat: f64, lon: f64) -> String {
    let mut e = event(uid, "a-f-G-U-C", "h-e").child(
        Element::new("point")
            .attr("lat", lat.to_string())
            .attr("lon", lon.to_string())
            .attr("hae", "9999999.0")
            .attr("ce", "9999999.0")
            .attr("le", "9999999.0"),
    );
    let detail = Element::new("detail")
        .child(
            Element::new("takv")
                .attr("os", "29")
                .attr("version", "4.8.1")
                .attr("device", "test")
                .attr("platform", "ATAK-CIV"),
        )
        .child(
            Element::new("contact")
                .attr("endpoint", "*:-1:stcp")
                .attr("callsign", callsign),
        )
        .child(
            Element::new("__group")
                .attr("role", "Team Member")
                .attr("name", "Cyan"),
        )
        .child(Element::new("status").attr("battery", "88"))
        .child(
            Element::new("track")
                .attr("course", "90.0")
                .attr("speed", "1.5"),
        );
    e = e.child(detail);
    e.to_xml()
}

/// ATAK's 911 alert (`b-a-o-tbl`) or its cancel (`b-a-o-can`) for user `uid`.
pub fn atak_emergency(uid: &str, callsign: &str, cot_type: &str, lat: f64, lon: f64) -> String {
    let mut em = Element::new("emergency").with_text(callsign);
    em = if cot_type == "b-a-o-can" {
        em.attr("cancel", "true")
    } else {
        em.attr("type", "911 Alert")
    };
    event(format!("{uid}-9-1-1"), cot_type, "m-g")
        .child(
            Element::new("point")
                .attr("lat", lat.to_string())
                .attr("lon", lon.to_string())
                .attr("hae", "0")
                .attr("ce", "5")
                .attr("le", "9999999"),
        )
        .child(
            Element::new("detail")
                .child(
                    Element::new("link")
                        .attr("uid", uid)
                        .attr("type", "a-f-G-U-C")
                        .attr("relation", "p-p"),
                )
                .child(Element::new("contact").attr("callsign", format!("{callsign}-Alert")))
                .child(em),
        )
        .to_xml()
}

/// The value of `family`'s sample with (at least) `labels` in an OpenMetrics text (parsed:
/// counters, gauges), `None` when the family or sample is missing.
pub fn metric(text: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use openmetrics_parser::{openmetrics::parse_openmetrics, OpenMetricsValue};
    let exp = parse_openmetrics(text).ok()?;
    let s = exp.families.get(family)?.iter_samples().find(|s| {
        s.get_labelset()
            .is_ok_and(|l| labels.iter().all(|(k, v)| l.get_label_value(k) == Some(*v)))
    })?;
    match &s.value {
        OpenMetricsValue::Counter(c) => Some(c.value.as_f64()),
        OpenMetricsValue::Gauge(g) => Some(g.as_f64()),
        _ => None,
    }
}
