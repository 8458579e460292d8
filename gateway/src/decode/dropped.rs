//! The malformed-field rule (docs/device-profiles.md): a malformed *optional* field is left
//! out, counted as `bad_field:<name>` and logged (rate-limited) by the ingest, and the rest of
//! the input is kept; only a bad position or time refuses an event. Decoders read optional
//! fields through [`Drops::keep`], which turns a field error into a [`DroppedField`].
//!
//! Field names in labels are the decoder's own names (or the profile's JSON Pointers), never
//! keys taken from the payload, so the set of counter labels stays bounded.

use super::DecodeError;

/// One optional field that was malformed and left out of the events of its input.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedField {
    /// The field as the decoder names it (`batt`, `payload.voltage`, a JSON Pointer …).
    pub field: String,
    /// What was wrong with it, for the log.
    pub problem: String,
}

impl DroppedField {
    /// The drop-counter label: `bad_field:<name>`.
    pub fn reason(&self) -> String {
        format!("bad_field:{}", self.field)
    }
}

impl std::fmt::Display for DroppedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "field {} dropped: {}", self.field, self.problem)
    }
}

/// Collects the optional fields dropped while decoding one input.
#[derive(Debug, Default)]
pub(crate) struct Drops(pub Vec<DroppedField>);

impl Drops {
    /// The value of an optional field read by a typed getter, or `None` (recorded as dropped)
    /// when the getter found it malformed.
    pub fn keep<T>(&mut self, r: Result<Option<T>, DecodeError>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    /// Records `e` (a field error) as a dropped field.
    pub fn push(&mut self, e: DecodeError) {
        let d = match e {
            DecodeError::BadField { field, problem } => DroppedField { field, problem },
            DecodeError::Missing(field) => DroppedField {
                field,
                problem: "missing".into(),
            },
            other => DroppedField {
                field: other.reason().to_string(),
                problem: other.to_string(),
            },
        };
        self.0.push(d);
    }

    /// Records a dropped field by name.
    pub fn field(&mut self, field: &str, problem: impl Into<String>) {
        self.push(DecodeError::field(field, problem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_passes_values_and_records_field_errors() {
        let mut d = Drops::default();
        assert_eq!(d.keep(Ok(Some(1))), Some(1));
        assert_eq!(d.keep::<u8>(Ok(None)), None);
        assert_eq!(
            d.keep::<u8>(Err(DecodeError::field("batt", "a string"))),
            None
        );
        assert_eq!(d.0.len(), 1);
        assert_eq!(d.0[0].reason(), "bad_field:batt");
        assert_eq!(d.0[0].to_string(), "field batt dropped: a string");
    }
}
