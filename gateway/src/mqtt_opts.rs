//! rumqttc options from a [`Broker`]: MQTT 3.1.1 for the device side and the downlink, MQTT 5
//! for the uplink (it needs PUBACK reason codes) and the hub's receiver.

use crate::config::Broker;
use rumqttc::{MqttOptions, Transport};

/// Base options: address, client id, keep-alive, credentials, TLS.
pub fn options(b: &Broker) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(&b.client_id, &b.host, b.port);
    o.set_keep_alive(b.keep_alive);
    if let Some(user) = &b.username {
        o.set_credentials(user, b.password.clone().unwrap_or_default());
    }
    if let Some(t) = transport(b)? {
        o.set_transport(t);
    }
    Ok(o)
}

/// The same base options for an MQTT 5 client.
pub fn options_v5(b: &Broker) -> anyhow::Result<rumqttc::v5::MqttOptions> {
    let mut o = rumqttc::v5::MqttOptions::new(&b.client_id, &b.host, b.port);
    o.set_keep_alive(b.keep_alive);
    if let Some(user) = &b.username {
        o.set_credentials(user, b.password.clone().unwrap_or_default());
    }
    if let Some(t) = transport(b)? {
        o.set_transport(t);
    }
    Ok(o)
}

fn transport(b: &Broker) -> anyhow::Result<Option<Transport>> {
    Ok(if b.tls {
        Some(Transport::tls_with_config(
            crate::tls::client_config(b)?.into(),
        ))
    } else {
        None
    })
}
