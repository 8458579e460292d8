//! Child-process plumbing shared by the server helpers and the `outpost` runner.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Sends `SIGTERM` to the child (no-op if it already exited).
pub fn sigterm(child: &Child) -> anyhow::Result<()> {
    signal(child, libc::SIGTERM)
}

/// Sends `signal` (a `libc::SIG*` number) to the child.
pub fn signal(child: &Child, signal: libc::c_int) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    // SAFETY: kill(2) has no memory-safety preconditions. The pid is our own unreaped child,
    // so it cannot have been recycled for another process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err).context("kill(2)");
        }
    }
    Ok(())
}

/// Waits up to `timeout` for the child to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waitpid")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `SIGKILL` and reap: the process is gone when this returns.
pub fn kill9(child: &mut Child) -> anyhow::Result<ExitStatus> {
    // std's kill() sends SIGKILL; it errors only when the child was already reaped.
    let _ = child.kill();
    child.wait().context("wait after SIGKILL")
}

/// `SIGTERM`, then wait up to `timeout`; on timeout `SIGKILL` and report an error.
pub fn terminate(child: &mut Child, timeout: Duration) -> anyhow::Result<ExitStatus> {
    sigterm(child)?;
    match wait_timeout(child, timeout)? {
        Some(status) => Ok(status),
        None => {
            kill9(child)?;
            bail!(
                "process {} ignored SIGTERM for {timeout:?}; killed",
                child.id()
            )
        }
    }
}
