//! rumqttc options from a [`Broker`] (shared by the device side and the uplink).

use crate::config::Broker;
use rumqttc::{MqttOptions, Transport};

/// Base options: address, client id, keep-alive, credentials, TLS.
pub fn options(b: &Broker) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(&b.client_id, &b.host, b.port);
    o.set_keep_alive(b.keep_alive);
    if let Some(user) = &b.username {
        o.set_credentials(user, b.password.clone().unwrap_or_default());
    }
    if b.tls {
        o.set_transport(Transport::tls_with_config(
            crate::tls::client_config(b)?.into(),
        ));
    }
    Ok(o)
}
