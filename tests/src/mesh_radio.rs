//! A scripted Meshtastic radio on the device side of a [`crate::pty::Pty`]: it speaks the
//! serial API (`0x94 0xC3`, 16-bit big-endian length, protobuf) the way the firmware does, so
//! the real `outpost` can be tested against it without hardware.
//!
//! Its protobuf is encoded and read by hand here (a few fields, from the published field
//! numbers), independent of the gateway's own message definitions, so a mistake there cannot
//! hide itself. The packets it emits are frames made by upstream's own code
//! (gateway/tests/fixtures/meshtastic/packets.bin, see make_fixtures.py).
//!
//! Script: `want_config_id` → debug text, `my_info`, `config_complete_id` (echoing the id),
//! then the packets; `heartbeat` → a `queueStatus`; a text packet → by its text: `ack…` a
//! routing ack from the destination (for a broadcast, from the radio itself), `nak…` a
//! `MAX_RETRANSMIT` NAK, `noroute…` a `NO_ROUTE` NAK, anything else only the radio's implicit
//! ack (no delivery).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the radio was sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RadioLog {
    pub want_configs: Vec<u32>,
    pub heartbeats: usize,
    /// (to, packet id, want_ack, text)
    pub texts: Vec<(u32, u32, bool, String)>,
    /// Frames that were not a ToRadio this script knows.
    pub unknown: usize,
}

/// A running scripted radio; it stops when its pty is unplugged.
pub struct MeshRadio {
    log: Arc<Mutex<RadioLog>>,
    _thread: JoinHandle<()>,
}

impl MeshRadio {
    /// Starts the radio (node `my_node`) on the device side `feed`, emitting `packets` (raw
    /// frames) after each handshake.
    pub fn start(feed: std::fs::File, my_node: u32, packets: Vec<u8>) -> MeshRadio {
        let log = Arc::new(Mutex::new(RadioLog::default()));
        let l = log.clone();
        let thread = std::thread::spawn(move || serve(feed, my_node, &packets, &l));
        MeshRadio {
            log,
            _thread: thread,
        }
    }

    /// What it was sent so far.
    pub fn log(&self) -> RadioLog {
        self.log.lock().unwrap().clone()
    }
}

fn serve(mut feed: std::fs::File, my_node: u32, packets: &[u8], log: &Mutex<RadioLog>) {
    let mut out = feed.try_clone().expect("clone pty");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = match feed.read(&mut chunk) {
            Ok(0) | Err(_) => return, // unplugged
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(frame) = take_frame(&mut buf) {
            let reply = answer(&frame, my_node, packets, log);
            if out.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

/// The next whole frame in `buf` (bytes before a header are skipped, as the firmware does).
fn take_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let start = buf.windows(2).position(|w| w == [0x94, 0xc3])?;
    buf.drain(..start);
    if buf.len() < 4 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if buf.len() < 4 + len {
        return None;
    }
    let frame = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Some(frame)
}

fn answer(to_radio: &[u8], my_node: u32, packets: &[u8], log: &Mutex<RadioLog>) -> Vec<u8> {
    let fields = read_fields(to_radio);
    let mut log = log.lock().unwrap();
    if let Some(Field::Varint(id)) = field(&fields, 3) {
        log.want_configs.push(*id as u32);
        let mut v = b"DEBUG | 00:00:05 5 [SerialConsole] Start API\r\n".to_vec();
        v.extend(frame(&len_field(3, &varint_field(1, u64::from(my_node)))));
        v.extend(frame(&varint_field(7, *id)));
        v.extend(b"INFO  | 00:00:05 5 Config sent\r\n");
        v.extend(packets);
        return v;
    }
    if field(&fields, 7).is_some() {
        log.heartbeats += 1;
        return frame(&len_field(11, &[]));
    }
    if let Some(Field::Bytes(p)) = field(&fields, 1) {
        let p = read_fields(p);
        let to = fixed(&p, 2);
        let id = fixed(&p, 6);
        let want_ack = matches!(field(&p, 10), Some(Field::Varint(1)));
        let data = match field(&p, 4) {
            Some(Field::Bytes(d)) => read_fields(d),
            _ => Vec::new(),
        };
        let text = match field(&data, 2) {
            Some(Field::Bytes(t)) => String::from_utf8_lossy(t).into_owned(),
            _ => String::new(),
        };
        log.texts.push((to, id, want_ack, text.clone()));
        let (from, error) = if text.starts_with("ack") {
            (if to == u32::MAX { my_node } else { to }, 0)
        } else if text.starts_with("nak") {
            (my_node, 5)
        } else if text.starts_with("noroute") {
            (my_node, 1)
        } else {
            (my_node, 0) // implicit ack only
        };
        return routing(from, my_node, id, error);
    }
    log.unknown += 1;
    Vec::new()
}

/// FromRadio { packet: MeshPacket { from, to, decoded: Data { ROUTING_APP, Routing { error_reason }, request_id } } }
fn routing(from: u32, to: u32, request_id: u32, error: u64) -> Vec<u8> {
    let routing = varint_field(3, error);
    let mut data = varint_field(1, 5);
    data.extend(len_field(2, &routing));
    data.extend(fixed_field(6, request_id));
    let mut p = fixed_field(1, from);
    p.extend(fixed_field(2, to));
    p.extend(len_field(4, &data));
    p.extend(fixed_field(6, request_id.wrapping_add(1_000_000)));
    frame(&len_field(2, &p))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x94, 0xc3];
    v.extend((payload.len() as u16).to_be_bytes());
    v.extend(payload);
    v
}

fn varint(mut x: u64, out: &mut Vec<u8>) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn varint_field(tag: u32, x: u64) -> Vec<u8> {
    let mut v = Vec::new();
    varint(u64::from(tag << 3), &mut v);
    varint(x, &mut v);
    v
}

fn fixed_field(tag: u32, x: u32) -> Vec<u8> {
    let mut v = Vec::new();
    varint(u64::from(tag << 3 | 5), &mut v);
    v.extend(x.to_le_bytes());
    v
}

fn len_field(tag: u32, b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    varint(u64::from(tag << 3 | 2), &mut v);
    varint(b.len() as u64, &mut v);
    v.extend(b);
    v
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// Top-level fields of a message, (tag, value); stops at anything malformed.
fn read_fields(mut b: &[u8]) -> Vec<(u32, Field<'_>)> {
    let mut out = Vec::new();
    let read_varint = |b: &mut &[u8]| -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            x |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(x);
            }
        }
        None
    };
    while let Some(key) = read_varint(&mut b) {
        let tag = (key >> 3) as u32;
        let f = match key & 7 {
            0 => match read_varint(&mut b) {
                Some(x) => Field::Varint(x),
                None => break,
            },
            5 if b.len() >= 4 => {
                let x = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                b = &b[4..];
                Field::Fixed32(x)
            }
            2 => match read_varint(&mut b) {
                Some(n) if (n as usize) <= b.len() => {
                    let (v, rest) = b.split_at(n as usize);
                    b = rest;
                    Field::Bytes(v)
                }
                _ => break,
            },
            _ => break,
        };
        out.push((tag, f));
    }
    out
}

fn field<'a, 'b>(fields: &'b [(u32, Field<'a>)], tag: u32) -> Option<&'b Field<'a>> {
    fields.iter().find(|(t, _)| *t == tag).map(|(_, f)| f)
}

fn fixed(fields: &[(u32, Field<'_>)], tag: u32) -> u32 {
    match field(fields, tag) {
        Some(Field::Fixed32(x)) => *x,
        _ => 0,
    }
}
