//! One Redis handle for a single server or a Redis Cluster: both are multiplexed, cheap to
//! clone, and reconnect by themselves; every query in the hub goes through [`Conn`].

use crate::config::RedisSettings;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

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
