//! The client side of the hub's `GET /api/v1/events` (SPEC §7), sans-I/O: the path of one page
//! and the paging loop, with the HTTP GET passed in — so the demo, the system tests and any
//! console read a (gateway, class) history the same way, whatever HTTP client they use.

use serde_json::Value;

/// Largest page the API serves (`limit` at most 10000).
pub const EVENTS_PAGE_MAX: usize = 10_000;

/// `/api/v1/events?gw=…&class=…&after=…&limit=…` (gateway ids and classes need no escaping:
/// [`crate::topic::valid_gateway_id`] allows only URL-safe characters).
pub fn events_path(gw: &str, class: &str, after: &str, limit: usize) -> String {
    format!("/api/v1/events?gw={gw}&class={class}&after={after}&limit={limit}")
}

/// Every stored event of (`gw`, `class`) in id order: pages of `limit` from the start, each
/// fetched by `get(path)` (a parsed `{"events":[…],"next":"<id>"}`), until an empty page.
pub fn all_events<E>(
    gw: &str,
    class: &str,
    limit: usize,
    get: impl FnMut(&str) -> Result<Value, E>,
) -> Result<Vec<Value>, E> {
    all_events_after(gw, class, "0-0", limit, get)
}

/// As [`all_events`], only the events with an id above `after` (e.g. the last one read before).
pub fn all_events_after<E>(
    gw: &str,
    class: &str,
    after: &str,
    limit: usize,
    mut get: impl FnMut(&str) -> Result<Value, E>,
) -> Result<Vec<Value>, E> {
    let mut out = Vec::new();
    let mut after = after.to_string();
    loop {
        let page = get(&events_path(gw, class, &after, limit))?;
        let events = match page.get("events").and_then(Value::as_array) {
            Some(e) if !e.is_empty() => e,
            _ => return Ok(out),
        };
        match page.get("next").and_then(Value::as_str) {
            // A page that does not move on would loop forever: stop with what we have.
            Some(next) if next != after => after = next.to_string(),
            _ => {
                out.extend(events.iter().cloned());
                return Ok(out);
            }
        }
        out.extend(events.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_until_an_empty_page() {
        let pages = [
            json!({"events": [{"id": "1-0"}, {"id": "2-0"}], "next": "2-0"}),
            json!({"events": [{"id": "3-0"}], "next": "3-0"}),
            json!({"events": [], "next": "3-0"}),
        ];
        let mut asked = Vec::new();
        let got = all_events("gw-1", "location", 2, |p| {
            asked.push(p.to_string());
            Ok::<_, ()>(pages[asked.len() - 1].clone())
        })
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            asked[1],
            "/api/v1/events?gw=gw-1&class=location&after=2-0&limit=2"
        );
    }

    #[test]
    fn a_page_that_does_not_advance_ends_the_loop() {
        let page = json!({"events": [{"id": "1-0"}], "next": "0-0"});
        let got = all_events("g", "alert", 10, |_| Ok::<_, ()>(page.clone())).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn an_error_is_passed_on() {
        assert_eq!(
            all_events("g", "alert", 10, |_| Err::<Value, _>("down")),
            Err("down")
        );
    }
}
