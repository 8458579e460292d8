//! A CoT TCP stream → whole event documents. TAK servers (protocol v0) send events back to back
//! with no framing beyond the XML itself, so we cut after each `</event>`. The buffer is
//! bounded: an event that grows past the limit is discarded up to its end and reported, so a
//! hostile or broken peer costs at most `max` bytes of memory.

use thiserror::Error;

const END: &[u8] = b"</event>";
const START: &[u8] = b"<event";

/// What could not become a document.
#[derive(Debug, Error, PartialEq)]
pub enum SplitError {
    #[error("event larger than {0} bytes: discarded")]
    Oversize(usize),
    #[error("event is not UTF-8")]
    NotUtf8,
}

/// Cuts a byte stream into `<event>…</event>` documents.
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    max: usize,
    /// Bytes of `buf` already searched for `</event>` (minus the marker's length).
    scanned: usize,
    /// Inside an oversize event: drop everything up to its `</event>`.
    discarding: bool,
}

impl Splitter {
    /// A splitter holding at most `max` bytes of one unfinished event.
    pub fn new(max: usize) -> Splitter {
        Splitter {
            buf: Vec::new(),
            max: max.max(END.len() * 2),
            scanned: 0,
            discarding: false,
        }
    }

    /// Bytes held of an unfinished event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `data`; every finished document (or the reason one was lost) goes to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Result<String, SplitError>>) {
        self.buf.extend_from_slice(data);
        loop {
            match find(&self.buf[self.scanned..], END) {
                Some(i) => {
                    let end = self.scanned + i + END.len();
                    let doc: Vec<u8> = self.buf.drain(..end).collect();
                    self.scanned = 0;
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    let start = find(&doc, START).unwrap_or(0);
                    match String::from_utf8(doc[start..].to_vec()) {
                        Ok(s) => out.push(Ok(s)),
                        Err(_) => out.push(Err(SplitError::NotUtf8)),
                    }
                }
                None => {
                    // The marker may straddle this push and the next: rescan its length.
                    self.scanned = self.buf.len().saturating_sub(END.len() - 1);
                    if self.buf.len() > self.max {
                        if !self.discarding {
                            out.push(Err(SplitError::Oversize(self.max)));
                        }
                        self.discarding = true;
                        let keep = self.buf.len() - (END.len() - 1);
                        self.buf.drain(..keep);
                        self.scanned = 0;
                    }
                    return;
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(s: &mut Splitter, chunks: &[&[u8]]) -> Vec<Result<String, SplitError>> {
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        out
    }

    #[test]
    fn events_back_to_back_and_across_chunks() {
        let mut s = Splitter::new(1024);
        let out = split_all(
            &mut s,
            &[
                b"<?xml version=\"1.0\"?>\n<event uid=\"a\"></ev",
                b"ent><event uid=\"b\"/></event>  <event uid",
                b"=\"c\"></event>",
            ],
        );
        assert_eq!(
            out,
            vec![
                Ok("<event uid=\"a\"></event>".to_string()),
                Ok("<event uid=\"b\"/></event>".to_string()),
                Ok("<event uid=\"c\"></event>".to_string()),
            ]
        );
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn byte_by_byte_is_the_same() {
        let doc = b"<event uid=\"x\"><detail/></event>";
        let mut s = Splitter::new(1024);
        let chunks: Vec<&[u8]> = doc.chunks(1).collect();
        let out = split_all(&mut s, &chunks);
        assert_eq!(out, vec![Ok(String::from_utf8(doc.to_vec()).unwrap())]);
    }

    #[test]
    fn oversize_event_is_reported_once_and_the_next_survives() {
        let mut s = Splitter::new(64);
        let big = vec![b'x'; 500];
        let out = split_all(
            &mut s,
            &[
                b"<event>",
                &big,
                &big,
                b"</event><event uid=\"ok\"></event>",
            ],
        );
        assert_eq!(
            out,
            vec![
                Err(SplitError::Oversize(64)),
                Ok("<event uid=\"ok\"></event>".to_string())
            ]
        );
        assert!(s.pending() < 64);
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let mut s = Splitter::new(64);
        let out = split_all(&mut s, &[b"<event>\xff\xfe</event>"]);
        assert_eq!(out, vec![Err(SplitError::NotUtf8)]);
    }
}
