//! The generator's own ceiling: as fast as a bare broker (no subscriber) acknowledges. Every
//! other measure's rates are read against this one.

use tokio::runtime::Runtime;

use crate::broker::{Broker, BrokerTuning};
use crate::load::{self, Load, Sent};

pub fn run(rt: &Runtime, n: u64, tuning: BrokerTuning) -> anyhow::Result<Sent> {
    let broker = Broker::start("gen", tuning)?;
    let l = Load {
        devices: 50,
        conns: 4,
        total: n,
        rate: None,
        tst_base: load::tst_base(),
    };
    rt.block_on(load::run(broker.port(), &l, None))
}
