//! Taking a down message in (from the hub's `down` topic or `outpost send`): check it, decide
//! per device whether it is queued or refused, and store it with its receipts in one step.

use crate::config::profile::downlink::{parse_node_str, MESHTASTIC_MAX_BYTES};
use crate::config::profile::DownlinkKind;
use crate::config::{Profile, Settings};
use crate::store::down::Target;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use outpost_proto::down::{self, DownMessage, Kind, TO_ALL};
use std::collections::HashMap;
use std::sync::Arc;

/// Profiles by name, as devices record them.
pub type Profiles = HashMap<String, Arc<Profile>>;

/// Every profile the settings use (TAK users' `tak` profile too).
pub fn profiles(s: &Settings) -> Profiles {
    let mqtt = s.mqtt.iter().map(|m| m.profile.clone());
    let serial = s.serial.iter().map(|d| d.profile.clone());
    let tak = s.tak_profile.iter().cloned();
    mqtt.chain(serial)
        .chain(tak)
        .map(|p| (p.name.clone(), p))
        .collect()
}

/// What became of one down payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Stored: per device, queued or refused (with its reason).
    Stored(Vec<Target>),
    /// Its msg_id was seen before: ignored (no second receipt).
    Duplicate(String),
    /// Unreadable (no msg_id to answer to): counted, nothing stored.
    Unreadable(String),
}

/// Parses and accepts a payload from the `down` topic.
pub async fn accept_payload(
    store: &Store,
    profiles: &Profiles,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, StoreError> {
    match down::parse(payload) {
        Ok(m) => accept(store, profiles, &m, now).await,
        Err((e, None)) => {
            store.down_count_bad(&e.reason()).await?;
            Ok(Accepted::Unreadable(e.reason()))
        }
        Err((e, Some(msg_id))) => {
            // Answer to the msg_id for the device named, if any (else "*").
            let to = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v["to"].as_str().map(str::to_string))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| TO_ALL.to_string());
            let m = DownMessage {
                msg_id,
                to: to.clone(),
                text: String::new(),
                expires: now,
                from: String::new(),
                kind: Kind::Text,
            };
            store_with(store, &m, vec![Target::Fail(to, e.reason())], now).await
        }
    }
}

/// Accepts a parsed message: queues it for each device it is for, refuses it for the rest.
pub async fn accept(
    store: &Store,
    profiles: &Profiles,
    m: &DownMessage,
    now: DateTime<Utc>,
) -> Result<Accepted, StoreError> {
    let targets = if m.expires <= now {
        vec![Target::Fail(m.to.clone(), "already_expired".into())]
    } else if m.to == TO_ALL {
        let all = store.devices_with_profiles().await?;
        let t: Vec<Target> = all
            .into_iter()
            .filter(|(d, p)| {
                kind_of(profiles, p).is_some_and(|k| fits(k, m.kind) && addressable(k, d))
            })
            .map(|(d, _)| Target::Queue(d))
            .collect();
        if t.is_empty() {
            vec![Target::Fail(TO_ALL.into(), "no_devices".into())]
        } else {
            t
        }
    } else {
        vec![target(store, profiles, m).await?]
    };
    store_with(store, m, targets, now).await
}

async fn store_with(
    store: &Store,
    m: &DownMessage,
    targets: Vec<Target>,
    now: DateTime<Utc>,
) -> Result<Accepted, StoreError> {
    if !store.down_accept(m, &targets, now).await? {
        return Ok(Accepted::Duplicate(m.msg_id.clone()));
    }
    for t in &targets {
        if let Target::Fail(_, reason) = t {
            store.down_count_bad(reason).await?;
        }
    }
    Ok(Accepted::Stored(targets))
}

/// Queue or refuse `m` for its one device.
async fn target(store: &Store, profiles: &Profiles, m: &DownMessage) -> Result<Target, StoreError> {
    let fail = |r: &str| Ok(Target::Fail(m.to.clone(), r.into()));
    let Some(profile) = store.device_profile(&m.to).await? else {
        return fail("unknown_device");
    };
    let Some(kind) = kind_of(profiles, &profile) else {
        return fail("no_downlink");
    };
    if !fits(kind, m.kind) {
        return fail(match m.kind {
            Kind::Text => "no_text_downlink",
            Kind::Locate => "no_locate_downlink",
        });
    }
    if kind.meshtastic_limit() && m.text.len() > MESHTASTIC_MAX_BYTES {
        return fail("too_long");
    }
    if !addressable(kind, &m.to) {
        return fail("bad_node");
    }
    Ok(Target::Queue(m.to.clone()))
}

/// The downlink kind of the profile named `name`, if it has one.
pub fn kind_of(profiles: &Profiles, name: &str) -> Option<DownlinkKind> {
    profiles
        .get(name)
        .and_then(|p| p.downlink())
        .map(|d| *d.kind.get_ref())
}

/// False for a device its transport cannot address: through a serial radio only mesh nodes
/// (`!a1b2c3d4`) are, not the radio itself (its `[[serial]] device` name).
fn addressable(kind: DownlinkKind, dev: &str) -> bool {
    kind != DownlinkKind::MeshtasticSerial || parse_node_str(dev).is_some()
}

/// True when a `kind` downlink carries a message of `m`'s kind.
fn fits(kind: DownlinkKind, m: Kind) -> bool {
    match m {
        Kind::Text => kind.carries_text(),
        Kind::Locate => kind == DownlinkKind::Owntracks,
    }
}
