//! The Meshtastic serial API's stream framing, sans-I/O: `0x94 0xC3`, a 16-bit big-endian
//! length (at most 512), then that many bytes of protobuf (`FromRadio` from the radio,
//! `ToRadio` to it). Documented at meshtastic.org, "Client API" (stream transport).
//!
//! The same port also carries the radio's debug console as plain text (before the API is
//! started, and whenever debug logging is on), and a port opened mid-frame starts with the
//! rest of one. Bytes outside a frame are collected into text lines (handed out, for logging)
//! or counted as garbage; a header whose length is over 512 is a false start: the framer
//! resyncs by scanning again from the byte after the `0x94`. Memory is bounded by the frame
//! limit and [`MAX_TEXT`].

/// First byte of a frame header.
pub const START1: u8 = 0x94;
/// Second byte of a frame header.
pub const START2: u8 = 0xc3;
/// The largest payload the protocol allows.
pub const MAX_FRAME: usize = 512;
/// Debug text lines are cut at this length.
pub const MAX_TEXT: usize = 256;

/// One thing found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// The payload of one frame.
    Frame(&'a [u8]),
    /// One line of the radio's debug text (without its line end; never empty).
    Text(&'a str),
}

/// What a [`StreamFramer`] has seen, by kind (counter labels are the field names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub frames: u64,
    pub text_lines: u64,
    /// Bytes outside frames that were neither text nor a header.
    pub garbage_bytes: u64,
    /// Headers announcing more than [`MAX_FRAME`] bytes (resynced past).
    pub oversize: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Hunt,
    Start1,
    Len1,
    Len2(u8),
    Body(usize),
}

/// Splits a serial byte stream into frames and text lines.
#[derive(Debug)]
pub struct StreamFramer {
    state: State,
    frame: Vec<u8>,
    text: Vec<u8>,
    stats: StreamStats,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer {
            state: State::Hunt,
            frame: Vec::with_capacity(MAX_FRAME),
            text: Vec::with_capacity(MAX_TEXT),
            stats: StreamStats::default(),
        }
    }
}

impl StreamFramer {
    /// Forget any partial frame or line, as after reopening the port; counters are kept.
    pub fn reset(&mut self) {
        self.state = State::Hunt;
        self.frame.clear();
        self.text.clear();
    }

    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Feed one read's worth of bytes; `out` gets every complete frame and text line, in order.
    pub fn push(&mut self, bytes: &[u8], out: &mut impl FnMut(Chunk)) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    fn byte(&mut self, b: u8, out: &mut impl FnMut(Chunk)) {
        match self.state {
            State::Hunt => self.hunt(b, out),
            State::Start1 if b == START2 => self.state = State::Len1,
            State::Start1 => {
                // A lone 0x94 was noise; this byte may begin the next header or text.
                self.stats.garbage_bytes += 1;
                self.state = State::Hunt;
                self.hunt(b, out);
            }
            State::Len1 => self.state = State::Len2(b),
            State::Len2(hi) => {
                let len = usize::from(u16::from_be_bytes([hi, b]));
                if len > MAX_FRAME {
                    // A false header: rescan its length bytes as ordinary input.
                    self.stats.oversize += 1;
                    self.state = State::Hunt;
                    self.hunt(hi, out);
                    self.byte(b, out);
                } else if len == 0 {
                    self.emit_frame(out);
                } else {
                    self.state = State::Body(len);
                }
            }
            State::Body(len) => {
                self.frame.push(b);
                if self.frame.len() == len {
                    self.emit_frame(out);
                }
            }
        }
    }

    fn hunt(&mut self, b: u8, out: &mut impl FnMut(Chunk)) {
        match b {
            START1 => {
                self.flush_text(out);
                self.state = State::Start1;
            }
            b'\n' | b'\r' => self.flush_text(out),
            // Printable ASCII, tab and ANSI colour escapes are the console's text.
            0x20..=0x7e | b'\t' | 0x1b => {
                self.text.push(b);
                if self.text.len() >= MAX_TEXT {
                    self.flush_text(out);
                }
            }
            _ => self.stats.garbage_bytes += 1,
        }
    }

    fn flush_text(&mut self, out: &mut impl FnMut(Chunk)) {
        let line = String::from_utf8_lossy(&self.text);
        let line = line.trim();
        if !line.is_empty() {
            self.stats.text_lines += 1;
            out(Chunk::Text(line));
        }
        self.text.clear();
    }

    fn emit_frame(&mut self, out: &mut impl FnMut(Chunk)) {
        self.stats.frames += 1;
        out(Chunk::Frame(&self.frame));
        self.frame.clear();
        self.state = State::Hunt;
    }
}

/// `payload` framed for the wire (header + payload); `None` if it is over [`MAX_FRAME`].
pub fn frame(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_FRAME)?;
    let mut v = Vec::with_capacity(4 + payload.len());
    v.extend_from_slice(&[START1, START2]);
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(payload);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Got {
        F(Vec<u8>),
        T(String),
    }

    fn run(f: &mut StreamFramer, input: &[u8]) -> Vec<Got> {
        let mut got = Vec::new();
        f.push(input, &mut |c| {
            got.push(match c {
                Chunk::Frame(b) => Got::F(b.to_vec()),
                Chunk::Text(t) => Got::T(t.to_string()),
            })
        });
        got
    }

    #[test]
    fn frames_split_across_reads_and_between_text() {
        let mut input = b"INFO  | ??:??:?? 3 Booting\r\n".to_vec();
        input.extend(frame(b"abc").unwrap());
        input.extend(b"DEBUG | radio up\n");
        input.extend(frame(&[0x94; 5]).unwrap());
        let mut f = StreamFramer::default();
        let mut got = Vec::new();
        for c in input.chunks(3) {
            got.extend(run(&mut f, c));
        }
        assert_eq!(
            got,
            [
                Got::T("INFO  | ??:??:?? 3 Booting".into()),
                Got::F(b"abc".to_vec()),
                Got::T("DEBUG | radio up".into()),
                Got::F(vec![0x94; 5]),
            ]
        );
        assert_eq!(f.stats().frames, 2);
    }

    #[test]
    fn resyncs_after_garbage_and_oversize_headers() {
        let mut input = vec![0x00, 0xff, 0x94, 0x00, 0x94, 0xc3, 0x02, 0x01];
        input.extend(frame(b"ok").unwrap());
        let mut f = StreamFramer::default();
        assert_eq!(run(&mut f, &input), [Got::F(b"ok".to_vec())]);
        let s = f.stats();
        assert_eq!((s.oversize, s.frames), (1, 1));
        assert!(s.garbage_bytes >= 3, "{s:?}");
    }

    #[test]
    fn a_false_header_inside_its_length_is_rescanned() {
        // 0x94 0xC3 0x94 0xC3 …: the first length byte starts the real header.
        let mut input = vec![0x94, 0xc3];
        input.extend(frame(&[7u8; 0x94]).unwrap());
        let mut f = StreamFramer::default();
        let got = run(&mut f, &input);
        assert_eq!(got, [Got::F(vec![7u8; 0x94])]);
    }

    #[test]
    fn empty_frame_and_oversize_payload() {
        let mut f = StreamFramer::default();
        assert_eq!(run(&mut f, &[0x94, 0xc3, 0, 0]), [Got::F(vec![])]);
        assert!(frame(&[0; 513]).is_none());
        assert_eq!(frame(&[0; 512]).unwrap().len(), 516);
    }
}
