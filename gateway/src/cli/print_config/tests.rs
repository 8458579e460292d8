use super::template;
use crate::config::raw::*;
use crate::config::Settings;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::path::Path;

/// The field names serde knows for struct `T`: a deserializer that only listens.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// The template's text from `[section]` (or `# [[section]]`) to the next section.
fn section<'a>(t: &'a str, header: &str) -> &'a str {
    let start = t.find(header).unwrap_or_else(|| panic!("{header} missing"));
    let rest = &t[start + header.len()..];
    let end = rest
        .find("\n[")
        .or_else(|| rest.find("\n# [["))
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_key_of_the_config_is_in_the_template() {
    let t = template();
    assert_eq!(
        fields_of::<RawConfig>(),
        [
            "gateway",
            "redis",
            "devices_mqtt",
            "uplink",
            "buffer",
            "ops",
            "serial",
            "mqtt",
            "tak"
        ]
    );
    let sections: [(&str, &[&str]); 9] = [
        ("\n[gateway]", fields_of::<RawGateway>()),
        ("\n[redis]", fields_of::<RawRedis>()),
        ("\n[devices_mqtt]", fields_of::<RawDevicesMqtt>()),
        ("\n[[uplink]]", fields_of::<RawUplink>()),
        ("\n[buffer]", fields_of::<RawBuffer>()),
        ("\n[ops]", fields_of::<RawOps>()),
        ("\n# [[serial]]", fields_of::<RawSerial>()),
        ("\n# [[mqtt]]", fields_of::<RawMqtt>()),
        ("\n# [[tak]]", fields_of::<RawTak>()),
    ];
    for (header, fields) in sections {
        assert!(!fields.is_empty(), "{header}");
        let body = section(&t, header);
        for f in fields {
            assert!(
                body.contains(&format!("\n{f} = ")) || body.contains(&format!("\n# {f} = ")),
                "{header}: key {f} missing from the template"
            );
        }
    }
}

#[test]
fn template_loads_with_the_real_loader() {
    let s =
        Settings::parse(Path::new("gateway.toml"), &template()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.gateway_id, "veh-0042");
    assert_eq!(s.prefix, RawRedis::default().prefix.get_ref().as_str());
    assert_eq!(s.uplink.inflight as i64, *default_inflight().get_ref());
}

#[test]
fn uncommented_defaults_are_valid_keys_and_values() {
    // Uncomment every `# key = value` line of the tables (not the [[serial]]/[[mqtt]] examples,
    // which need profiles): serde must accept every key and value.
    let t = template();
    let cut = t.find("# [[serial]]").unwrap();
    let text: String = t[..cut]
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(kv)
                if kv.contains(" = ")
                    && kv.chars().next().is_some_and(|c| c.is_ascii_lowercase()) =>
            {
                kv.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let raw: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(raw.uplink.list()[0].keep_alive, default_keep_alive());
    assert_eq!(
        raw.uplink.list()[0].batch_max_events.get_ref(),
        default_batch_max().get_ref()
    );
    assert_eq!(
        raw.buffer.max_events.get_ref(),
        RawBuffer::default().max_events.get_ref()
    );
}
