//! Lines from a serial byte stream, in bounded memory.
//!
//! Serial reads arrive in arbitrary chunks, may start mid-line (the port was opened while the
//! device was talking), and carry line noise (baud mismatch, a loose connector). [`LineFramer`]
//! turns them into whole `&str` lines and counts every byte run it throws away, by reason, so the
//! ops page can tell "device silent" from "device sending garbage". It never holds more than `N`
//! bytes: an over-long line is dropped whole and the framer resyncs at the next `\n`.
//!
//! Framing is separate from transport (STYLE §3): the serial task feeds it whatever `read()`
//! returned; `outpost decode` feeds it a file.

use heapless::Vec;

/// How a [`LineFramer`] treats what it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramerOptions {
    /// Reject a line holding any byte ≥ 0x7f (NMEA and AT commands are ASCII; such a byte is
    /// almost always a baud-rate mismatch). Off: any valid UTF-8 passes.
    pub ascii_only: bool,
    /// Drop the bytes before the first `\n` after open or [`LineFramer::reset`]: a port opened
    /// mid-sentence yields a tail that may still look valid (e.g. half an NMEA field list).
    /// Off for sources that start at a line boundary (a file, a TCP stream from its start).
    pub drop_first_partial: bool,
}

impl Default for FramerOptions {
    /// ASCII-only, first partial line dropped: right for a serial port.
    fn default() -> Self {
        FramerOptions {
            ascii_only: true,
            drop_first_partial: true,
        }
    }
}

/// What a [`LineFramer`] has emitted and dropped, by reason (counter labels are the field names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramerStats {
    /// Lines handed out.
    pub lines: u64,
    /// Blank lines skipped (AT modems frame every answer with them).
    pub empty: u64,
    /// Lines longer than `N` bytes, dropped whole.
    pub overlong: u64,
    /// Lines that were not valid UTF-8.
    pub bad_utf8: u64,
    /// Lines holding a control byte (other than `\t`/`\r`), or a non-ASCII byte when ASCII-only.
    pub noise: u64,
    /// Leading partial lines dropped after open/reset (only counted when non-empty).
    pub partial_start: u64,
}

impl FramerStats {
    /// Every dropped line, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.overlong + self.bad_utf8 + self.noise + self.partial_start
    }
}

/// Why the current line is being thrown away; decided at the first bad byte, counted at `\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Discard {
    PartialStart,
    Overlong,
    Noise,
}

/// A bounded line splitter: `\n` ends a line, one `\r` before it is stripped, lines hold at most
/// `N` bytes (terminator excluded).
#[derive(Debug)]
pub struct LineFramer<const N: usize> {
    buf: Vec<u8, N>,
    opts: FramerOptions,
    /// `Some` while skipping to the next `\n`.
    discard: Option<Discard>,
    /// Bytes seen while discarding a partial start (so an empty one is not counted).
    discarded_bytes: usize,
    /// A `\r` was seen and not yet stored: it is the terminator if `\n` follows.
    pending_cr: bool,
    stats: FramerStats,
}

impl<const N: usize> LineFramer<N> {
    /// A framer in its start-up state (see [`FramerOptions::drop_first_partial`]).
    pub fn new(opts: FramerOptions) -> Self {
        let mut f = LineFramer {
            buf: Vec::new(),
            opts,
            discard: None,
            discarded_bytes: 0,
            pending_cr: false,
            stats: FramerStats::default(),
        };
        f.reset();
        f
    }

    /// Forget any partial line, as after reopening the port; counters are kept.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pending_cr = false;
        self.discarded_bytes = 0;
        self.discard = self
            .opts
            .drop_first_partial
            .then_some(Discard::PartialStart);
    }

    /// Counters so far.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Feed one read's worth of bytes; `out` is called once per complete line, in order.
    pub fn push(&mut self, bytes: &[u8], mut out: impl FnMut(&str)) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line(&mut out);
            } else {
                self.byte(b);
            }
        }
    }

    /// End of input (e.g. the end of a captured file): emit an unterminated last line, if any.
    /// A live port should not call this: its last bytes are usually a line still being sent.
    pub fn finish(&mut self, mut out: impl FnMut(&str)) {
        if !self.buf.is_empty() || self.pending_cr || self.discard.is_some() {
            self.end_line(&mut out);
        }
        self.discard = None;
    }

    fn byte(&mut self, b: u8) {
        if self.discard.is_some() {
            if b != b'\r' {
                self.discarded_bytes += 1;
            }
            return;
        }
        if std::mem::take(&mut self.pending_cr) {
            // A `\r` not followed by `\n` is part of the line.
            self.store(b'\r');
            if self.discard.is_some() {
                return;
            }
        }
        if b == b'\r' {
            self.pending_cr = true;
        } else if self.is_noise(b) {
            self.start_discard(Discard::Noise);
        } else {
            self.store(b);
        }
    }

    fn store(&mut self, b: u8) {
        if self.discard.is_none() && self.buf.push(b).is_err() {
            self.start_discard(Discard::Overlong);
        }
    }

    fn start_discard(&mut self, why: Discard) {
        self.buf.clear();
        self.pending_cr = false;
        self.discard = Some(why);
    }

    fn is_noise(&self, b: u8) -> bool {
        (b < 0x20 && b != b'\t') || (self.opts.ascii_only && b >= 0x7f)
    }

    fn end_line(&mut self, out: &mut impl FnMut(&str)) {
        self.pending_cr = false;
        match self.discard.take() {
            Some(Discard::PartialStart) if self.discarded_bytes > 0 => {
                self.stats.partial_start += 1
            }
            Some(Discard::PartialStart) => {}
            Some(Discard::Overlong) => self.stats.overlong += 1,
            Some(Discard::Noise) => self.stats.noise += 1,
            None if self.buf.is_empty() => self.stats.empty += 1,
            None => match std::str::from_utf8(&self.buf) {
                Ok(line) => {
                    self.stats.lines += 1;
                    out(line);
                }
                Err(_) => self.stats.bad_utf8 += 1,
            },
        }
        self.buf.clear();
        self.discarded_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RAW: FramerOptions = FramerOptions {
        ascii_only: true,
        drop_first_partial: false,
    };

    fn lines<const N: usize>(f: &mut LineFramer<N>, bytes: &[u8]) -> std::vec::Vec<String> {
        let mut v = std::vec::Vec::new();
        f.push(bytes, |l| v.push(l.to_string()));
        v
    }

    #[test]
    fn splits_on_newline_and_strips_one_cr() {
        let mut f = LineFramer::<16>::new(RAW);
        assert_eq!(lines(&mut f, b"ab\r\ncd\nef\r\r\n"), ["ab", "cd", "ef\r"]);
        assert_eq!(f.stats().lines, 3);
    }

    #[test]
    fn line_of_exactly_n_bytes_fits_even_with_crlf() {
        let mut f = LineFramer::<4>::new(RAW);
        assert_eq!(lines(&mut f, b"abcd\r\nabcde\r\nok\n"), ["abcd", "ok"]);
        assert_eq!(f.stats().overlong, 1);
    }

    #[test]
    fn overlong_line_is_dropped_whole_and_framer_resyncs() {
        let mut f = LineFramer::<8>::new(RAW);
        let mut got = lines(&mut f, b"0123456789abcdef");
        got.extend(lines(&mut f, b"ghij\r\nnext\r\n"));
        assert_eq!(got, ["next"]);
        assert_eq!(f.stats().overlong, 1);
    }

    #[test]
    fn first_partial_line_is_dropped_when_asked() {
        let mut f = LineFramer::<32>::new(FramerOptions::default());
        assert_eq!(lines(&mut f, b"A,1.5*3C\r\n$GPGGA\r\n"), ["$GPGGA"]);
        assert_eq!(f.stats().partial_start, 1);
        f.reset();
        assert_eq!(lines(&mut f, b"\r\nx\r\n"), ["x"]);
        assert_eq!(
            f.stats().partial_start,
            1,
            "an empty partial start is not counted"
        );
    }

    #[test]
    fn control_bytes_and_non_ascii_are_noise() {
        let mut f = LineFramer::<32>::new(RAW);
        assert_eq!(
            lines(&mut f, b"a\0b\n\xff\xfe\nta\tb\nok\n"),
            ["ta\tb", "ok"]
        );
        assert_eq!(f.stats().noise, 2);
    }

    #[test]
    fn utf8_passes_when_not_ascii_only_and_bad_utf8_is_counted() {
        let mut f = LineFramer::<32>::new(FramerOptions {
            ascii_only: false,
            drop_first_partial: false,
        });
        assert_eq!(lines(&mut f, "Grüße\n".as_bytes()), ["Grüße"]);
        assert!(lines(&mut f, b"\xc3\n").is_empty());
        assert_eq!(f.stats().bad_utf8, 1);
    }

    #[test]
    fn blank_lines_are_skipped_and_counted() {
        let mut f = LineFramer::<32>::new(RAW);
        assert_eq!(
            lines(&mut f, b"\r\n+CSQ: 1,2\r\n\r\nOK\r\n"),
            ["+CSQ: 1,2", "OK"]
        );
        assert_eq!(f.stats().empty, 2);
    }

    #[test]
    fn finish_emits_an_unterminated_last_line() {
        let mut f = LineFramer::<32>::new(RAW);
        assert_eq!(lines(&mut f, b"a\nb"), ["a"]);
        let mut last = std::vec::Vec::new();
        f.finish(|l| last.push(l.to_string()));
        assert_eq!(last, ["b"]);
    }

    fn run(opts: FramerOptions, chunks: &[&[u8]]) -> (std::vec::Vec<String>, FramerStats) {
        let mut f = LineFramer::<24>::new(opts);
        let mut v = std::vec::Vec::new();
        for c in chunks {
            f.push(c, |l| v.push(l.to_string()));
        }
        (v, f.stats())
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_lines(
            stream in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), Just(0xc3u8), Just(0xa9u8), 0x20u8..0x7f, any::<u8>()],
                0..400),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
            ascii_only in any::<bool>(),
            drop_first_partial in any::<bool>(),
        ) {
            let opts = FramerOptions { ascii_only, drop_first_partial };
            let mut at: std::vec::Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks: std::vec::Vec<&[u8]> = std::vec::Vec::new();
            let mut prev = 0;
            for &c in &at {
                chunks.push(&stream[prev..c]);
                prev = c;
            }
            chunks.push(&stream[prev..]);
            let whole = run(opts, &[&stream]);
            let bytewise: std::vec::Vec<&[u8]> = stream.chunks(1).collect();
            prop_assert_eq!(&run(opts, &chunks), &whole);
            prop_assert_eq!(&run(opts, &bytewise), &whole);
            for l in &whole.0 {
                prop_assert!(l.len() <= 24 && !l.contains('\n') && !l.is_empty());
            }
        }
    }
}
