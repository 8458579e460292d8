//! Operations: in-process metrics (and, with `[ops] listen`, the `/metrics` and `/healthz`
//! endpoint).

pub mod metrics;

pub use metrics::Metrics;
