//! The forms a received event is written in: as stored (the object without `replay`) and as
//! the live stream shows it (with its gateway's `gw`), each cut out of the received text where
//! the gateway writes it, else written from the object without copying it first.

use outpost_proto::batch::Received;
use serde_json::{Map, Value};

/// The stored form of a received event: the object as received without `replay` (whether it
/// waited at the gateway differs between regions and redeliveries; the event does not). Cut
/// out of the text where the gateway writes it (no re-serialising), else the object edited.
pub fn stored_form(e: &Received) -> String {
    e.without_replay()
        .unwrap_or_else(|| stored_json(&e.object()))
}

/// The live stream's line for received event `e` (`stored` its [`stored_form`], `gw_json` the
/// gateway as a JSON string), appended to `out`: the stored form with the batch's `gw` put in
/// front, or, for an object with a `gw` of its own, the object edited ([`stream_json_into`]).
pub fn stream_line_into(out: &mut Vec<u8>, e: &Received, stored: &str, gw: &str, gw_json: &str) {
    match stored.strip_prefix('{') {
        Some(rest) if !e.has_gw => {
            out.extend_from_slice(b"{\"gw\":");
            out.extend_from_slice(gw_json.as_bytes());
            if rest != "}" {
                out.push(b',');
            }
            out.extend_from_slice(rest.as_bytes());
        }
        _ => stream_json_into(out, &e.object(), gw),
    }
}

/// The stored form of an event object: without `replay`.
pub fn stored_json(object: &Map<String, Value>) -> String {
    let mut buf = Vec::with_capacity(TYPICAL_EVENT);
    Shown { object, gw: None }.write_into(&mut buf);
    // serde_json writes UTF-8.
    String::from_utf8(buf).unwrap_or_default()
}

/// An event as the live stream shows it, appended to `out`: the stored form with the
/// gateway's `gw`.
pub fn stream_json_into(out: &mut Vec<u8>, object: &Map<String, Value>, gw: &str) {
    Shown {
        object,
        gw: Some(gw),
    }
    .write_into(out)
}

/// Room for an event's JSON (a location event is about 200 bytes): most are written without
/// growing their buffer.
const TYPICAL_EVENT: usize = 320;

/// An event object written without `replay` and, with `gw`, with that `gw` in its place among
/// the sorted keys: the text of the object so edited, without copying it first (the receiver
/// writes every event twice).
struct Shown<'a> {
    object: &'a Map<String, Value>,
    gw: Option<&'a str>,
}

impl Shown<'_> {
    fn write_into(&self, out: &mut Vec<u8>) {
        // Writing a map of JSON values into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }
}

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        let mut gw = self.gw;
        for (k, v) in self.object {
            if k == "replay" {
                continue;
            }
            if let Some(g) = gw.filter(|_| k.as_str() >= "gw") {
                m.serialize_entry("gw", g)?;
                gw = None;
                if k == "gw" {
                    continue;
                }
            }
            m.serialize_entry(k, v)?;
        }
        if let Some(g) = gw {
            m.serialize_entry("gw", g)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the receiver wrote before, by copying the object: the same text.
    fn copied(object: &Map<String, Value>, gw: Option<&str>) -> String {
        let mut o = object.clone();
        o.remove("replay");
        if let Some(g) = gw {
            o.insert("gw".into(), g.into());
        }
        Value::Object(o).to_string()
    }

    /// Received events in every shape: as the gateway writes them (the text is cut), and
    /// otherwise (the object is edited); either way the forms hold the object edited.
    #[test]
    fn received_events_stored_and_streamed_are_the_object_edited() {
        let cases = [
            (
                r#"{"id":"5-0","replay":true,"dev":"r1","class":"location","lat":1.5,"lon":2}"#,
                true,
            ),
            (
                r#"{"id":"6-0","replay":false,"dev":"r1","class":"location"}"#,
                true,
            ),
            (
                r#"{"id":"7-0","replay":false,"dev":"r1","class":"location","gw":"spoofed"}"#,
                true,
            ),
            (
                r#"{"dev":"r1","id":"8-0","replay":true,"class":"location"}"#,
                false,
            ),
            (
                r#"{"id":"9-0","replay":true,"dev":"r1","class":"location","replay":false}"#,
                false,
            ),
            (r#"{"id":"10-0","dev":"r1","class":"location"}"#, false),
            (
                r#"{"id":"11-0","replay":true,"dev":"r1","class":"location","z":"a\nb"}"#,
                true,
            ),
            (
                "{\"id\":\"12-0\",\"replay\":true,\n\"dev\":\"r1\",\"class\":\"location\"}",
                false,
            ),
            (
                r#"{"id":"\u0031\u0033-0","replay":true,"dev":"r1","class":"location"}"#,
                false,
            ),
        ];
        for (text, cut) in cases {
            let payload = format!(r#"{{"gw":"veh-1","class":"location","events":[{text}]}}"#);
            let b = outpost_proto::batch::parse("veh-1", "location", payload.as_bytes(), 1 << 20)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let e = &b.events[0];
            assert_eq!(e.without_replay().is_some(), cut, "{text}");
            let o = e.object();
            let stored = stored_form(e);
            let as_value = |t: &str| serde_json::from_str::<Value>(t).unwrap();
            assert_eq!(as_value(&stored), as_value(&copied(&o, None)), "{text}");
            let mut line = Vec::new();
            stream_line_into(&mut line, e, &stored, "veh-1", "\"veh-1\"");
            let line = String::from_utf8(line).unwrap();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(
                as_value(&line),
                as_value(&copied(&o, Some("veh-1"))),
                "{text}"
            );
        }
    }

    #[test]
    fn stored_and_stream_forms_are_the_object_edited() {
        for text in [
            r#"{"id":"5-0","replay":true,"dev":"r1","class":"location","lat":1.5,"lon":2,"ts":"x"}"#,
            r#"{"id":"5-0","replay":false,"dev":"r1","class":"status","gw":"spoofed","z":[1,{"a":null}]}"#,
            r#"{"a":1}"#,
            r#"{"zz":1}"#,
            r#"{}"#,
        ] {
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text) else {
                panic!("{text}")
            };
            assert_eq!(stored_json(&o), copied(&o, None), "{text}");
            let mut line = b"x\n".to_vec();
            stream_json_into(&mut line, &o, "veh-1");
            assert_eq!(
                String::from_utf8(line).unwrap(),
                format!("x\n{}", copied(&o, Some("veh-1"))),
                "{text}"
            );
        }
    }
}
