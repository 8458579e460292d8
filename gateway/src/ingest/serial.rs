//! Serial devices (`[[serial]]`): GNSS receivers (NMEA) and cellular modems (AT) on a
//! tokio-serial port, and gpsd over TCP. Unplug and replug are routine: end-of-file, a read
//! error or a silent port closes it, the device goes offline, and the port is reopened with
//! backoff; a missing port is a logged retry, never a crash.

use super::lines::{LineDecoder, MAX_LINE};
use crate::config::profile::{FlowControl, Parity, ProfileSerial};
use crate::config::{DecoderKind, SerialDevice};
use crate::context::Context;
use crate::decode::at_modem::AtPoller;
use crate::decode::framer::{FramerOptions, FramerStats, LineFramer};
use crate::event::{Body, Event, Presence, PresenceState, TsSrc};
use crate::store::IngestItem;
use crate::util::{backoff::Backoff, input_hash, ratelimit::LogGate};
use chrono::{DateTime, Datelike, Utc};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{info, instrument, warn};

/// How often a talking device refreshes its presence in Redis when it produces no event
/// (no fix, or the policy holds fixes back).
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);

/// Runs one `[[serial]]` device until cancelled.
#[instrument(skip_all, fields(device = %dev.device))]
pub async fn run(ctx: Context, dev: SerialDevice) -> anyhow::Result<()> {
    if dev.profile.decoder == DecoderKind::MeshtasticSerial {
        // A radio speaks framed protobufs, not lines; the downlink reaches it by its name.
        let ends = ctx.radios.attach(&dev.device);
        return super::meshtastic_serial::run(ctx, dev, ends).await;
    }
    // At most 5 s: a replugged receiver should be picked up quickly; a missing port costs an
    // open() attempt every few seconds, nothing more.
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
    let mut gate = LogGate::new(Duration::from_secs(60));
    let mut state = DeviceState::new(&dev);
    loop {
        let opened = if dev.profile.decoder == DecoderKind::Gpsd {
            open_gpsd(&dev).await.map(Port::Tcp)
        } else {
            open_serial(&dev).map(Port::Serial)
        };
        match opened {
            Ok(port) => {
                backoff.reset();
                info!(path = %dev.path.display(), "device port open");
                let reason = match port {
                    Port::Serial(p) => session(&ctx, &dev, &mut state, p).await,
                    Port::Tcp(p) => session(&ctx, &dev, &mut state, p).await,
                };
                if ctx.token.is_cancelled() {
                    break;
                }
                warn!(path = %dev.path.display(), %reason, "device port closed; reopening");
                state.went_offline(&ctx).await;
            }
            Err(e) => {
                if let Some(s) = gate.check("open") {
                    warn!(path = %dev.path.display(), error = %e, suppressed = s, "cannot open device port; retrying");
                }
                state.went_offline(&ctx).await;
            }
        }
        tokio::select! {
            _ = ctx.token.cancelled() => break,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    Ok(())
}

enum Port {
    Serial(tokio_serial::SerialStream),
    Tcp(tokio::net::TcpStream),
}

pub(super) fn open_serial(dev: &SerialDevice) -> anyhow::Result<tokio_serial::SerialStream> {
    use tokio_serial::SerialPortBuilderExt;
    let s = dev.profile.raw.serial.clone().unwrap_or_default();
    let b = tokio_serial::new(dev.path.to_string_lossy(), dev.baud)
        .data_bits(match *s.data_bits.get_ref() {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .parity(match s.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Odd => tokio_serial::Parity::Odd,
            Parity::Even => tokio_serial::Parity::Even,
        })
        .stop_bits(if *s.stop_bits.get_ref() == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .flow_control(match s.flow_control {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::Software => tokio_serial::FlowControl::Software,
            FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
        });
    Ok(b.open_native_async()?)
}

/// gpsd: `path` is gpsd's `host:port` (default: the profile's `[gpsd]`, else 127.0.0.1:2947).
async fn open_gpsd(dev: &SerialDevice) -> anyhow::Result<tokio::net::TcpStream> {
    let path = dev.path.to_string_lossy();
    let addr = if path.is_empty() {
        let g = dev.profile.raw.gpsd.clone().unwrap_or_default();
        format!("{}:{}", g.host, g.port)
    } else {
        path.into_owned()
    };
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&addr),
    )
    .await??;
    s.write_all(crate::decode::gpsd::WATCH.as_bytes()).await?;
    Ok(s)
}

/// What a device keeps across reopenings.
pub(super) struct DeviceState {
    dev: SerialDevice,
    lines: Option<LineDecoder>,
    /// Whether the store was told this device is present (an outage then emits one offline).
    pub(super) present: bool,
    pub(super) last_refresh: Option<Instant>,
    framer_seen: FramerStats,
    clock_warned: bool,
    pub(super) gate: LogGate,
}

impl DeviceState {
    pub(super) fn new(dev: &SerialDevice) -> Self {
        DeviceState {
            dev: dev.clone(),
            // Rollover repair needs a trustworthy clock: only when it is set (2024 or later).
            lines: LineDecoder::for_profile(
                &dev.profile,
                &dev.device,
                Some(Utc::now().date_naive()).filter(|d| d.year() >= 2024),
            ),
            present: false,
            last_refresh: None,
            framer_seen: FramerStats::default(),
            clock_warned: false,
            gate: LogGate::default(),
        }
    }

    pub(super) fn item(&self, events: Vec<Event>, rx: DateTime<Utc>) -> IngestItem {
        let json: Vec<String> = events.iter().map(|e| e.to_json()).collect();
        let hash = input_hash(&[self.dev.device.as_bytes(), json.join("\n").as_bytes()]);
        IngestItem {
            dev: self.dev.device.clone(),
            profile: self.dev.profile.name.clone(),
            presence_timeout: self.dev.profile.presence_timeout,
            events,
            dedup_key: None,
            input_hash: Some(hash),
            maybe_duplicate: false,
            slot: None,
            rx,
            topic: String::new(),
        }
    }

    /// The device is gone (unplugged, silent, port missing): offline at once, once.
    pub(super) async fn went_offline(&mut self, ctx: &Context) {
        if !self.present {
            return;
        }
        let now = Utc::now();
        let off = Event {
            dev: self.dev.device.clone(),
            body: Body::Presence(Presence {
                state: PresenceState::Offline,
                last_seen: now,
            }),
            ts: now,
            ts_src: TsSrc::Gateway,
        };
        let mut items = vec![self.item(vec![off], now)];
        if super::accept(ctx, &mut items).await.is_some() {
            self.present = false;
            self.last_refresh = None;
        }
    }

    /// The receive time: the gateway clock, or GPS time when the clock is unset (before 2024;
    /// gateways without an RTC battery boot in 1970).
    fn rx_for(&mut self, events: &[Event]) -> DateTime<Utc> {
        let now = Utc::now();
        if now.year() >= 2024 {
            return now;
        }
        match events.iter().find(|e| e.ts_src == TsSrc::Gps) {
            Some(e) => {
                if !self.clock_warned {
                    warn!(clock = %now, gps = %e.ts, "gateway clock is unset (before 2024); using GPS time for rx");
                    self.clock_warned = true;
                }
                e.ts
            }
            None => now,
        }
    }

    /// Decodes complete lines; returns events and drop reasons.
    fn decode_lines(&mut self, lines: &[String], drops: &mut Vec<(String, u64)>) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(dec) = self.lines.as_mut() else {
            return events;
        };
        for l in lines {
            for r in dec.line(l, Utc::now()) {
                match r {
                    Ok(d) => {
                        for f in &d.dropped {
                            let reason = f.reason();
                            if let Some(s) = self.gate.check(&reason) {
                                warn!(reason = %reason, error = %f, suppressed = s, "malformed field dropped; report kept");
                            }
                            drops.push((reason, 1));
                        }
                        events.extend(d.events);
                    }
                    Err(e) => {
                        drops.push((e.reason().to_string(), 1));
                        if let Some(s) = self.gate.check(e.reason()) {
                            warn!(reason = e.reason(), error = %e, suppressed = s, "device line dropped");
                        }
                    }
                }
            }
        }
        events
    }

    /// Framer drops since the last call, as counted reasons.
    fn framer_drops(&mut self, now: FramerStats, drops: &mut Vec<(String, u64)>) {
        let before = std::mem::replace(&mut self.framer_seen, now);
        for (name, a, b) in [
            ("line_overlong", before.overlong, now.overlong),
            ("line_bad_utf8", before.bad_utf8, now.bad_utf8),
            ("line_noise", before.noise, now.noise),
        ] {
            if b > a {
                drops.push((name.to_string(), b - a));
            }
        }
    }
}

/// One open port: read, frame, decode, store; poll the modem if it is one. Returns why it
/// ended (end of file, silence, an error) or an empty reason on shutdown.
async fn session<P: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Context,
    dev: &SerialDevice,
    st: &mut DeviceState,
    port: P,
) -> String {
    let (mut rd, mut wr) = tokio::io::split(port);
    let mut framer = LineFramer::<MAX_LINE>::new(FramerOptions {
        ascii_only: true,
        // A serial port may be opened mid-line; gpsd's TCP stream starts at a line.
        drop_first_partial: dev.profile.decoder != DecoderKind::Gpsd,
    });
    st.framer_seen = FramerStats::default();
    let serial = dev.profile.raw.serial.clone().unwrap_or_default();
    let no_data = no_data_timeout(dev, &serial);
    let mut modem = (dev.profile.decoder == DecoderKind::AtModem).then(|| {
        let cfg = dev
            .profile
            .raw
            .at_modem
            .as_ref()
            .map(|a| a.get_ref().clone())
            .unwrap_or_default();
        AtPoller::new(
            dev.device.clone(),
            cfg.poller_config(),
            std::time::Instant::now(),
        )
    });
    let mut buf = [0u8; 2048];
    let mut last_data = Instant::now();
    loop {
        if let Some(m) = modem.as_mut() {
            if let Some(cmd) = m.next_command(std::time::Instant::now()) {
                if let Err(e) = wr.write_all(cmd).await {
                    return format!("write: {e}");
                }
            }
        }
        let wake = modem
            .as_ref()
            .map(|m| Instant::from_std(m.wake_at()))
            .unwrap_or_else(|| last_data + no_data)
            .min(last_data + no_data);
        let mut lines: Vec<String> = Vec::new();
        let mut events = Vec::new();
        tokio::select! {
            _ = ctx.token.cancelled() => return String::new(),
            _ = tokio::time::sleep_until(wake) => {
                if last_data.elapsed() >= no_data {
                    return format!("no data for {no_data:?}");
                }
                if let Some(m) = modem.as_mut() {
                    events.extend(m.on_tick(std::time::Instant::now(), Utc::now()));
                }
            }
            r = rd.read(&mut buf) => match r {
                Ok(0) => return "end of file (unplugged?)".into(),
                Err(e) => return format!("read: {e}"),
                Ok(n) => {
                    last_data = Instant::now();
                    framer.push(&buf[..n], |l| lines.push(l.to_string()));
                }
            }
        }
        let mut drops = Vec::new();
        st.framer_drops(framer.stats(), &mut drops);
        match modem.as_mut() {
            Some(m) => {
                for l in &lines {
                    events.extend(m.on_line(l, std::time::Instant::now(), Utc::now()));
                }
            }
            None => events.extend(st.decode_lines(&lines, &mut drops)),
        }
        for (r, n) in &drops {
            ctx.metrics.add_drop(r, *n);
        }
        let _ = ctx.store.count_drops(&drops).await;
        let talking = !lines.is_empty() || !events.is_empty();
        let refresh_due = st
            .last_refresh
            .is_none_or(|t| t.elapsed() >= PRESENCE_REFRESH);
        if events.is_empty() && !(talking && refresh_due) {
            continue;
        }
        let rx = st.rx_for(&events);
        let mut items = vec![st.item(events, rx)];
        if super::accept(ctx, &mut items).await.is_none() {
            return String::new(); // shutting down during a Redis outage
        }
        st.present = true;
        st.last_refresh = Some(Instant::now());
    }
}

/// How long a port may stay silent before it is treated as unplugged. A modem only talks when
/// polled: give it three poll intervals.
fn no_data_timeout(dev: &SerialDevice, serial: &ProfileSerial) -> Duration {
    match dev.profile.decoder {
        DecoderKind::AtModem => {
            let interval = dev
                .profile
                .raw
                .at_modem
                .as_ref()
                .map(|a| a.get_ref().interval)
                .unwrap_or(Duration::from_secs(30));
            (interval * 3).max(serial.no_data_timeout)
        }
        _ => serial.no_data_timeout,
    }
}
