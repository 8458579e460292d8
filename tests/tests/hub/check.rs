//! `outpost-hub check`: every config problem with its place.

#[test]
fn hub_check_reports_every_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("hub.toml");
    std::fs::write(
        &bad,
        "[hub]\nid = \"boston 1\"\n\n[broker]\nurl = \"http://x\"\nshare_group = \"a/b\"\n\n[redis]\nurls = [\"redis://a:1\", \"redis://b:2\"]\nretention = \"10s\"\n\n[api]\nlisten = \"0.0.0.0:8080\"\n",
    )
    .unwrap();
    let check = |path: &std::path::Path| {
        std::process::Command::new(outpost_system_tests::hub_bin().unwrap())
            .args(["check", "-c"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = bad.display().to_string();
    for want in [
        format!("{f}:2:6: hub.id: must match"),
        format!("{f}:5:7: broker.url:"),
        format!("{f}:6:15: broker.share_group:"),
        format!("{f}:9:8: redis.urls: several urls need cluster = true"),
        format!("{f}:10:13: redis.retention: must be at least 1m"),
        format!("{f}:13:10: api.listen: a non-loopback address needs api.token_file"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[hub]\nid = \"boston-1\"\nregion = \"boston\"\n\n[broker]\n\n[redis]\n",
    )
    .unwrap();
    let out = check(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (hub boston-1, region boston)"));
}
