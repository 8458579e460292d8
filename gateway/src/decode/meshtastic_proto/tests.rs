//! Decode tests on fixtures made by upstream's own code (see tests/fixtures/meshtastic/README.md).
