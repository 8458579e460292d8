//! The drain pass's read (`MULTI`, one `XRANGE` per class, `EXEC`) over a RESP2 connection of
//! its own, its reply parsed by hand straight into the caller's rows (id, stored form bytes).
//!
//! Written by hand, for this one reply shape, because redis-rs parses every reply into its
//! generic `Value` tree: each outbox entry becomes two arrays and three bulk strings, each
//! allocated, and at the backlog drain's rate that parser (combine) took a third of the
//! gateway's CPU (`perf`, README "Round 6"). Plain TCP and unix sockets only: with TLS
//! (`rediss://`) the pass keeps the shared redis-rs connection.

use super::StoreError;
use redis::{ConnectionAddr, ConnectionInfo};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::io::{AsyncWriteExt, BufStream};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Mutex;

/// A whole exchange (connect included) past this fails, and the connection is dropped.
const TIMEOUT: Duration = Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One `XRANGE` of a pass: stream key, first id (inclusive), most entries.
pub(super) type Read = (String, String, usize);

/// The connection, opened on first use and again after any failure.
pub(super) struct RawReader {
    info: ConnectionInfo,
    conn: Mutex<Option<BufStream<Box<dyn Io>>>>,
}

impl RawReader {
    /// `None` for an address this does not open (TLS).
    pub fn new(info: &ConnectionInfo) -> Option<RawReader> {
        match info.addr() {
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_) => Some(RawReader {
                info: info.clone(),
                conn: Mutex::new(None),
            }),
            _ => None,
        }
    }

    /// Per read, its entries, all in one snapshot: `row(read index, id, stored form)` of each,
    /// the stored form's bytes in a buffer reused from entry to entry.
    pub async fn xranges<T>(
        &self,
        reads: &[Read],
        row: impl FnMut(usize, String, &[u8]) -> T + Send,
    ) -> Result<Vec<Vec<T>>, StoreError> {
        let mut slot = self.conn.lock().await;
        // The connection is taken out for the exchange and put back only after a whole reply
        // was read: after a failure, a timeout or a caller that stopped waiting it is dropped,
        // so what is left of a reply is never read as the next one's.
        let taken = slot.take();
        let res = tokio::time::timeout(TIMEOUT, async {
            let mut c = match taken {
                Some(c) => c,
                None => self.connect().await?,
            };
            c.write_all(&request(reads)).await?;
            c.flush().await?;
            let rows = reply(&mut c, reads.len(), row).await?;
            Ok::<_, StoreError>((c, rows))
        })
        .await
        .unwrap_or_else(|_| Err(bad("no reply in time")));
        let (c, rows) = res?;
        *slot = Some(c);
        Ok(rows)
    }

    async fn connect(&self) -> Result<BufStream<Box<dyn Io>>, StoreError> {
        let io: Box<dyn Io> = match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let s = TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            ConnectionAddr::Unix(path) => Box::new(UnixStream::connect(path).await?),
            _ => return Err(bad("not a plain TCP or unix address")),
        };
        let mut c = BufStream::with_capacity(64 << 10, 4 << 10, io);
        let r = self.info.redis_settings();
        let mut setup = Vec::new();
        let mut replies = 0;
        if let Some(pw) = r.password() {
            match r.username() {
                Some(u) => command(&mut setup, &[b"AUTH", u.as_bytes(), pw.as_bytes()]),
                None => command(&mut setup, &[b"AUTH", pw.as_bytes()]),
            }
            replies += 1;
        }
        if r.db() != 0 {
            command(&mut setup, &[b"SELECT", r.db().to_string().as_bytes()]);
            replies += 1;
        }
        if replies > 0 {
            c.write_all(&setup).await?;
            c.flush().await?;
            let mut line = Vec::new();
            for _ in 0..replies {
                simple(&mut c, &mut line, b"OK").await?;
            }
        }
        Ok(c)
    }
}

fn bad(what: &str) -> StoreError {
    StoreError::Reply(format!("outbox read: {what}"))
}

/// Appends one command as a RESP array of bulk strings.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn request(reads: &[Read]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + reads.len() * 96);
    command(&mut out, &[b"MULTI"]);
    for (key, start, count) in reads {
        let count = count.to_string();
        command(
            &mut out,
            &[
                b"XRANGE",
                key.as_bytes(),
                start.as_bytes(),
                b"+",
                b"COUNT",
                count.as_bytes(),
            ],
        );
    }
    command(&mut out, &[b"EXEC"]);
    out
}

/// The replies to [`request`]: `+OK`, `+QUEUED` per read, then `EXEC`'s array of `XRANGE`
/// replies, each an array of [id, [field, value]] (we write one field per entry), each entry
/// given to `row`.
async fn reply<R: AsyncBufRead + Unpin, T>(
    r: &mut R,
    n: usize,
    mut row: impl FnMut(usize, String, &[u8]) -> T,
) -> Result<Vec<Vec<T>>, StoreError> {
    let mut line = Vec::with_capacity(64);
    let mut scratch = Vec::new();
    simple(r, &mut line, b"OK").await?;
    for _ in 0..n {
        simple(r, &mut line, b"QUEUED").await?;
    }
    if array(r, &mut line).await? != n {
        return Err(bad("EXEC reply is not one reply per read"));
    }
    let mut all = Vec::with_capacity(n);
    for read in 0..n {
        let rows = array(r, &mut line).await?;
        let mut entries = Vec::with_capacity(rows);
        for _ in 0..rows {
            if array(r, &mut line).await? != 2 {
                return Err(bad("stream entry shape"));
            }
            let mut id = Vec::new();
            bulk(r, &mut line, &mut id).await?;
            let id = super::outbox::utf8(id);
            if array(r, &mut line).await? != 2 {
                return Err(bad("stream entry has other than one field"));
            }
            // The field's name, `e`, then its value, each read into the buffer kept for them.
            bulk(r, &mut line, &mut scratch).await?;
            bulk(r, &mut line, &mut scratch).await?;
            entries.push(row(read, id, &scratch));
        }
        all.push(entries);
    }
    Ok(all)
}

/// One reply line without its CRLF; a Redis error reply is returned as the error.
async fn line<'a, R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], StoreError> {
    buf.clear();
    r.read_until(b'\n', buf).await?;
    let Some(l) = buf.strip_suffix(b"\r\n") else {
        return Err(bad("connection closed mid-reply"));
    };
    if let Some(e) = l.strip_prefix(b"-") {
        return Err(StoreError::Reply(String::from_utf8_lossy(e).into_owned()));
    }
    Ok(l)
}

async fn simple<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    want: &[u8],
) -> Result<(), StoreError> {
    let l = line(r, buf).await?;
    if l.first() == Some(&b'+') && &l[1..] == want {
        Ok(())
    } else {
        Err(bad(&format!(
            "expected +{}, got {:?}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(l)
        )))
    }
}

fn length(l: &[u8], kind: u8) -> Result<usize, StoreError> {
    match l.split_first() {
        Some((k, n)) if *k == kind => std::str::from_utf8(n)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("bad length")),
        _ => Err(bad(&format!(
            "expected {}, got {:?}",
            kind as char,
            String::from_utf8_lossy(l)
        ))),
    }
}

async fn array<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<usize, StoreError> {
    let l = line(r, buf).await?;
    length(l, b'*')
}

/// A bulk string, read into `into` (its allocation reused).
async fn bulk<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    into: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let n = length(line(r, buf).await?, b'$')?;
    into.resize(n + 2, 0);
    r.read_exact(into).await?;
    if !into.ends_with(b"\r\n") {
        return Err(bad("bulk string not ended by CRLF"));
    }
    into.truncate(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(n: usize) -> Vec<Read> {
        (0..n)
            .map(|i| (format!("p:outbox:c{i}"), "0-1".to_string(), 256))
            .collect()
    }

    async fn parse(bytes: &[u8], n: usize) -> Result<Vec<Vec<(String, String)>>, StoreError> {
        let mut r = tokio::io::BufReader::new(bytes);
        reply(&mut r, n, |_, id, stored| {
            (id, String::from_utf8(stored.to_vec()).unwrap())
        })
        .await
    }

    #[test]
    fn request_is_multi_xranges_exec() {
        let r = request(&reads(1));
        assert_eq!(
            r,
            b"*1\r\n$5\r\nMULTI\r\n*6\r\n$6\r\nXRANGE\r\n$11\r\np:outbox:c0\r\n$3\r\n0-1\r\n$1\r\n+\r\n$5\r\nCOUNT\r\n$3\r\n256\r\n*1\r\n$4\r\nEXEC\r\n"
        );
    }

    #[tokio::test]
    async fn parses_two_reads_one_empty() {
        let json = r#"{"d":"a","a":1.5}"#;
        let bytes = format!(
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\ne\r\n${}\r\n{json}\r\n*2\r\n$3\r\n2-5\r\n*2\r\n$1\r\ne\r\n$2\r\n{{}}\r\n*0\r\n",
            json.len()
        );
        let got = parse(bytes.as_bytes(), 2).await.unwrap();
        assert_eq!(
            got,
            vec![
                vec![
                    ("1-0".to_string(), json.to_string()),
                    ("2-5".to_string(), "{}".to_string())
                ],
                vec![]
            ]
        );
    }

    #[tokio::test]
    async fn errors_and_truncation_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"-ERR nope\r\n",
            b"+OK\r\n-WRONGTYPE Operation against a key\r\n",
            b"+OK\r\n+QUEUED\r\n*1\r\n-WRONGTYPE x\r\n",
            b"+OK\r\n+QUEUED\r\n*2\r\n*0\r\n*0\r\n",
            b"+OK\r\n+QUEUED\r\n*1\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\ne\r\n$10\r\nshort",
            b"+OK\r\n+QUEUED\r\n*1\r\n*1\r\n*2\r\n$x\r\n",
            b"+OK\r\n+QUEUED\r\n*1\r\n*1\r\n*3\r\n",
            b"+OK\r\n+QUEUED",
            b"",
        ];
        for c in cases {
            assert!(
                parse(c, 1).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
    }
}
