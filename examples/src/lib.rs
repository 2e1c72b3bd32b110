//! Runnable examples of the ECCI SDK, in `examples/`; run one with
//! `cargo run -p examples --example NAME`. Each reads the `ECCI_*` variables
//! like its Python counterpart:
//!
//! - `first`: the README's first container: logs, waits for one data message and
//!   logs who sent what (as Python's repr).
//! - `logger`: the Python SDK README's logger example: ships one record per Python
//!   level and one with key-values to `toEdgeAI/{ECCI_LOCAL_BROKER_ID}/log`.
//! - `controller`: a global controller that waits for its components through
//!   the readiness handshake, sends them work and collects the results.
//! - `component`: a component (blocking API, no tokio in sight) that announces
//!   itself, waits for `start`, and answers the controller's work.
//! - `file_sender`: the Python SDK README's file sender: sends `./test.py` as the
//!   file `test` to `containerB` through the fileManager (`-- [PATH] [NAME]
//!   [TARGET]`, `--contents` for an in-memory object); needs
//!   `ECCI_CONTAINER_TYPE`.
//! - `file_receiver`: the Python SDK README's file receiver: waits for the file
//!   `test` and downloads it (`-- [NAME] [DEST]`, `--contents` to decode it as
//!   an object).
//! - `quickstart`: the whole flow in one process with nothing installed: an
//!   embedded broker and fileManager, a controller and two components, logs,
//!   messages and a file (`-- --platform HOST:PORT` runs its containers against
//!   `ecci dev` instead).
//!
//! `ecci dev` (the `ecci-cli` crate) runs a local broker and fileManager and
//! prints the variables and commands to run the others against it.
