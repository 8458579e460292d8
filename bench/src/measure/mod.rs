//! The measures of issue 7, one module each.

pub mod drain;
pub mod footprint;
pub mod generator;
pub mod hub;
pub mod latency;
pub mod nmea;
pub mod scale;
pub mod sustained;
