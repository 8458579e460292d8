//! One Redis handle for a single server or a Redis Cluster: both are multiplexed, cheap to
//! clone, and reconnect by themselves; every query in the hub goes through [`Conn`].

use crate::config::RedisSettings;
use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Connections the store opens (each multiplexed; to each node on a cluster).
///
/// More than one for Redis's sake, not ours: with `appendfsync always` Redis fsyncs once per
/// turn of its event loop in which anything was written, and a turn reads at most 16 KiB
/// from each connection (`PROTO_IOBUF_LEN`). A batch's script calls are 50–120 KiB, so on
/// one connection a turn finishes about one call and every call costs an fsync of its own;
/// over eight, one turn finishes several and they share it. Measured (`outpost-bench hub`,
/// one receiver, one Redis, `perf trace -s` of Redis): 1,809 fsyncs for 1,200 batches on one
/// connection, 531 on eight (README, round 9).
pub const CONNECTIONS: usize = 8;

/// The store's [`CONNECTIONS`], handed out in turn. Commands that must follow one another
/// are awaited one after the other, so they need not share a connection.
#[derive(Clone)]
pub struct Conns {
    all: Arc<[Conn]>,
    next: Arc<AtomicUsize>,
}

impl Conns {
    /// Opens every connection (once; the caller retries).
    /// They are opened at once: one after another, a Redis over TLS or a cluster (each
    /// connection learns the slot map) would cost eight handshakes in a row at start-up.
    pub async fn connect(s: &RedisSettings) -> redis::RedisResult<Conns> {
        let all = try_join_all((0..CONNECTIONS).map(|_| Conn::connect(s))).await?;
        Ok(Conns {
            all: all.into(),
            next: Arc::default(),
        })
    }

    /// The next connection (a cheap clone of its handle).
    pub fn next(&self) -> Conn {
        let i = self.next.fetch_add(1, Relaxed);
        self.all[i % self.all.len()].clone()
    }
}

/// A single server's connection manager or a cluster connection.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects once (the caller retries with backoff).
    pub async fn connect(s: &RedisSettings) -> redis::RedisResult<Conn> {
        if s.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(s.urls.clone())
                .connection_timeout(Duration::from_secs(5))
                .response_timeout(Duration::from_secs(10))
                .build()?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        } else {
            let client = redis::Client::open(s.urls[0].as_str())?;
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_number_of_retries(1);
            Ok(Conn::Single(
                ConnectionManager::new_with_config(client, cfg).await?,
            ))
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
