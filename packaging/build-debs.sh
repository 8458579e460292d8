#!/usr/bin/env bash
# Release .debs of every packaged binary crate into target/debian/ (packaging/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(outpost outpost-hub)
command -v cargo-deb >/dev/null || cargo deb --version >/dev/null 2>&1 || {
  echo "cargo-deb missing: cargo install cargo-deb --locked" >&2
  exit 1
}
for p in "${PACKAGES[@]}"; do
  cargo deb -p "$p" --locked "$@"
done
ls -l target/debian/*.deb
