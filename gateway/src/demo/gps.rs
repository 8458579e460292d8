//! A serial GPS for the demo: a pseudo-terminal whose far end replays a real receiver capture
//! (Trimble RTK, from gpsd's regression suite, BSD-2-Clause: see
//! `gateway/tests/fixtures/nmea-gpsd/COPYING.gpsd`) at the pacing of a 9600-baud line, looped.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The replayed capture.
const CAPTURE: &str = include_str!("../../tests/fixtures/nmea-gpsd/nmea-rtk.log");
/// 9600 baud, 8N1: 960 bytes a second.
const BYTES_PER_SEC: usize = 960;

/// A running replay; stops on drop.
pub struct SerialGps {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl SerialGps {
    /// Opens a pseudo-terminal pair and starts replaying into its master side.
    pub fn start() -> anyhow::Result<SerialGps> {
        let (mut master, _slave_fd, path) = openpty()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            // Keep the slave side open in this thread too, so the pty does not hang up
            // between the gateway's reopenings.
            let _slave = _slave_fd;
            let lines: Vec<&str> = CAPTURE.lines().filter(|l| l.starts_with('$')).collect();
            let chunk = BYTES_PER_SEC / 10;
            let mut pending = Vec::new();
            'outer: loop {
                for l in &lines {
                    pending.extend_from_slice(l.as_bytes());
                    pending.extend_from_slice(b"\r\n");
                    while pending.len() >= chunk {
                        if s.load(Relaxed) || master.write_all(&pending[..chunk]).is_err() {
                            break 'outer;
                        }
                        pending.drain(..chunk);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
        Ok(SerialGps { path, stop })
    }
}

impl Drop for SerialGps {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

fn openpty() -> anyhow::Result<(std::fs::File, OwnedFd, PathBuf)> {
    let (mut m, mut s) = (0, 0);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: openpty writes two fds and a NUL-terminated name into the buffers we own;
    // termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            name.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        anyhow::bail!("openpty: {}", std::io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded, so both fds are open and owned by us alone.
    let (master, slave) = unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    // SAFETY: `name` is NUL-terminated by openpty.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Ok((master, slave, PathBuf::from(path)))
}
