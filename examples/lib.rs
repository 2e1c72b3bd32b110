//! Runnable examples of the ECCI SDK, one file each beside this one; run one with
//! `cargo run -p examples --example NAME`:
//!
//! - `logger`: the seed README's logger example: ships five records, one per Python level,
//!   to `toEdgeAI/{ECCI_LOCAL_BROKER_ID}/log`, configured by the `ECCI_*` variables.
