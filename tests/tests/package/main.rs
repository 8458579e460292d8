//! The Debian packages (issue 17): `cargo deb -p outpost` and `cargo deb -p outpost-hub`, from
//! `[package.metadata.deb]` in gateway/Cargo.toml and hub/Cargo.toml. Each test checks what
//! `dpkg-deb -c` lists, the conffiles and maintainer scripts, and that the binary's own `check`
//! passes on the packaged config (extracted with `dpkg-deb -x` into a temp dir).
//!
//! The packages are built from the debug binaries the other tests use (`--profile dev
//! --no-build`, fast compression; cargo-deb 3.8 warns that dev profiles may be refused some
//! day, hence the pinned version in .ci/run): the metadata is what is under test, and a
//! release build with LTO would cost minutes. Release packages: packaging/build-debs.sh.

mod gateway;
mod hub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use outpost_system_tests::workspace_root;

/// Runs `cmd`, panicking with its output unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo deb -p <package>` of the already built debug binary into `out`; the .deb's path.
fn build_deb(package: &str, out: &Path) -> PathBuf {
    // Two `cargo deb` at once would share their staging files under target/.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let have = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        have.is_ok_and(|o| o.status.success()),
        "cargo-deb is not installed: run .ci/run (it runs `cargo install cargo-deb --locked`)"
    );
    let mut cmd = Command::new("cargo");
    // As outpost_bin(): the test's per-package cargo variables would make cargo rebuild.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
            cmd.env_remove(&k);
        }
    }
    run(cmd
        .current_dir(workspace_root())
        .args([
            "deb",
            "-p",
            package,
            "--no-build",
            "--profile",
            "dev",
            "--fast",
        ])
        .arg("-o")
        .arg(out));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs[0].clone()
}

/// The paths `dpkg-deb -c` lists (`./usr/bin/…`), and the listing itself for messages.
fn listing(deb: &Path) -> (Vec<String>, String) {
    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(deb)));
    let paths = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(str::to_string)
        .collect();
    (paths, listing)
}

/// Common to both packages: every file in `files` is there; nothing goes into Redis' or
/// Mosquitto's own config; the binary is executable; `conffile` is a conffile; the control
/// fields name the package, procps (the unit's ExecReload= runs /bin/kill) and the
/// recommended services; the maintainer scripts parse and start nothing. Returns the
/// extracted control folder.
fn check_package(deb: &Path, tmp: &Path, package: &str, files: &[&str], conffile: &str) -> PathBuf {
    let (paths, listing) = listing(deb);
    for f in files {
        assert!(
            paths.iter().any(|p| p == f),
            "{f} missing from the package:\n{listing}"
        );
    }
    for l in &paths {
        assert!(
            !l.starts_with("./etc/redis") && !l.starts_with("./etc/mosquitto"),
            "the package writes into another service's config: {l}"
        );
    }
    let bin = format!("./usr/bin/{package}");
    let exe = listing.lines().find(|l| l.ends_with(&bin)).unwrap();
    assert!(exe.starts_with("-rwxr-xr-x"), "{exe}");

    let control = tmp.join(format!("control-{package}"));
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(conffiles.lines().any(|l| l == conffile), "{conffiles}");
    let fields = text(&run(Command::new("dpkg-deb").arg("-f").arg(deb)));
    assert!(
        fields.contains(&format!("Package: {package}\n")),
        "{fields}"
    );
    assert!(
        fields
            .lines()
            .any(|l| l.starts_with("Depends:") && l.contains("procps")),
        "{fields}"
    );
    assert!(
        fields.contains("Recommends: redis-server, mosquitto"),
        "{fields}"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    // Installed, not started: the service needs its config first.
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    for script in ["postinst", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control.join(script)));
    }
    control
}

/// The code lines (not comments) of a maintainer script that touch Redis or Mosquitto.
fn service_calls(script: &str) -> Vec<&str> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.contains("redis") || l.contains("mosquitto") || l.contains("setup-local"))
        .collect()
}

/// `dpkg-deb -x deb root`.
fn extract(deb: &Path, root: &Path) {
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
}
