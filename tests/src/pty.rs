//! Serial devices on pseudo-terminals made by `socat`: a stable symlink, like
//! /dev/serial/by-id, that survives unplug and replug (`apt-get install socat`).

use crate::wait_until;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A pty pair from socat: the device side at `dev` (what Outpost opens), our side at `feed`.
pub struct Pty {
    child: Child,
    /// What Outpost opens (a stable symlink, like /dev/serial/by-id).
    pub dev: PathBuf,
    /// The device's side: what the test writes to and reads from.
    pub feed: PathBuf,
}

impl Pty {
    /// Plugs a device in: `dir/ttyGPS` for Outpost, `dir/feed` for the test.
    pub fn plug(dir: &Path) -> Pty {
        let (dev, feed) = (dir.join("ttyGPS"), dir.join("feed"));
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", dev.display()))
            .arg(format!("pty,raw,echo=0,link={}", feed.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (apt-get install socat)");
        assert!(
            wait_until(Duration::from_secs(5), || dev.exists() && feed.exists()),
            "socat ptys"
        );
        Pty { child, dev, feed }
    }

    /// Opens the device's side for reading and writing.
    pub fn open_feed(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.feed)
            .expect("open feed")
    }

    /// Pulls the plug: the device side hangs up.
    pub fn unplug(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
