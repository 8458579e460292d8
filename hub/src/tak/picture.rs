//! The current picture from the hub's store: every online device's latest position as a PLI,
//! sent first on every (re)connect of a `[[tak]]` output (SPEC §10). Read from the devices'
//! latest state, which every receiver shares, so any receiver's reconnect sends the whole
//! region's picture (a unit sent by two receivers is the same uid: the client replaces it).

use super::view::{View, PLI_STALE};
use crate::store::Store;
use chrono::Utc;
use futures_util::future::try_join_all;
use outpost_cot::events::TAK_DEV_PREFIX;
use std::future::Future;
use std::pin::Pin;

/// Devices' state read per round (concurrent commands, one slot each: cluster-safe).
const CHUNK: usize = 256;

/// The picture source of one output.
pub struct StorePicture {
    pub store: Store,
}

impl outpost_cot::link::Picture for StorePicture {
    fn current(&self) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + '_>> {
        Box::pin(async move { self.read().await.map_err(|e| e.to_string()) })
    }
}

impl StorePicture {
    async fn read(&self) -> Result<Vec<String>, crate::store::StoreError> {
        let devs: Vec<String> = self
            .store
            .device_ids()
            .await?
            .into_iter()
            .filter(|d| !d.starts_with(TAK_DEV_PREFIX))
            .collect();
        let now = Utc::now();
        let mut out = Vec::new();
        for chunk in devs.chunks(CHUNK) {
            let hashes = try_join_all(chunk.iter().map(|d| self.store.device_hash(d))).await?;
            for (dev, h) in chunk.iter().zip(hashes) {
                let v = View::of(&h);
                let Some((_, ts)) = &v.loc else { continue };
                // Online by its presence; without a presence event yet, while its fix is fresh.
                let online = match v.presence.as_deref() {
                    Some(p) => p == "online",
                    None => *ts + PLI_STALE > now,
                };
                if let (true, Some(xml)) = (online, v.pli(dev, None)) {
                    out.push((*ts, xml));
                }
            }
        }
        out.sort_by_key(|(ts, _)| *ts);
        Ok(out.into_iter().map(|(_, x)| x).collect())
    }
}
