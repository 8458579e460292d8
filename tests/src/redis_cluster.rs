//! A real 3-master Redis Cluster on free loopback ports: three [`RedisServer`]s with
//! `--cluster-enabled yes` joined by `redis-cli --cluster create` (no replicas). Each node
//! has its own temp dir and the shipped durability settings (AOF, `appendfsync always`).

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::{wait_until, RedisServer};

/// Three masters covering all 16384 slots; killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes and creates the cluster; returns once every node reports `cluster_state:ok`.
    pub fn new() -> anyhow::Result<Self> {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(RedisServer::with_args(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ])?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("run redis-cli --cluster create (is redis-tools installed?)")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let me = RedisCluster { nodes };
        let ok = wait_until(Duration::from_secs(20), || {
            me.nodes.iter().all(|n| {
                n.conn()
                    .ok()
                    .and_then(|mut c| {
                        redis::cmd("CLUSTER")
                            .arg("INFO")
                            .query::<String>(&mut c)
                            .ok()
                    })
                    .is_some_and(|i| i.contains("cluster_state:ok"))
            })
        });
        if !ok {
            bail!("redis cluster did not reach cluster_state:ok within 20 s");
        }
        Ok(me)
    }

    /// `redis://127.0.0.1:<port>/` of every node (the hub's `[redis] urls`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port()))
            .collect()
    }

    /// A cluster client for assertions.
    pub fn client(&self) -> anyhow::Result<redis::cluster::ClusterClient> {
        Ok(redis::cluster::ClusterClient::new(self.urls())?)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Deletes every key on every node (between tests sharing one cluster).
    pub fn flush(&self) -> anyhow::Result<()> {
        for n in &self.nodes {
            let _: () = redis::cmd("FLUSHALL").query(&mut n.conn()?)?;
        }
        Ok(())
    }
}
