//! Runnable examples of the ECCI SDK, in `examples/`; run one with
//! `cargo run -p examples --example NAME`. Each reads the `ECCI_*` variables
//! like its Python counterpart:
//!
//! - `logger`: the seed README's logger example: ships five records, one per
//!   Python level, to `toEdgeAI/{ECCI_LOCAL_BROKER_ID}/log`.
//! - `controller`: a global controller that waits for its components through
//!   the readiness handshake, sends them work and collects the results.
//! - `component`: a component (blocking API, no tokio in sight) that announces
//!   itself, waits for `start`, and answers the controller's work.
