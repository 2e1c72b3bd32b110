//! The Python SDK README's logger example, in Rust.
//!
//! Python:
//! ```text
//! logger = Logger(broker_ip, broker_port, pre_topic, broker_id, app_id, container_name)
//! logger = logger.initialize()
//! logger.debug("a debug message")
//! ...
//! logger.critical("a critical message")
//! ```
//!
//! Here the settings come from the `ECCI_*` variables, as in a container on the platform:
//!
//! ```text
//! ECCI_LOCAL_BROKER_IP=127.0.0.1 ECCI_LOCAL_BROKER_PORT=1883 ECCI_LOCAL_BROKER_ID=broker_id \
//! ECCI_APP_ID=app_id ECCI_CONTAINER_NAME=container_name \
//!     cargo run -p examples --example logger
//! ```
//!
//! and a subscriber (`mosquitto_sub -v -t 'toEdgeAI/+/log'`) sees, one message each:
//! `{"app_id": "app_id", "container_name": "container_name", "agent_id": null, "log_info":
//! {"time": "2026-11-24 11:17:22,826", "name": "logger", "level": "DEBUG", "message": "a debug message"}}`

use std::process::ExitCode;

fn main() -> ExitCode {
    let guard = match ecci_logger::init_from_env() {
        Ok(guard) => guard,
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            #[expect(clippy::print_stderr, reason = "an example explains its failure")]
            {
                eprintln!("logger example: {text}");
            }
            return ExitCode::FAILURE;
        }
    };
    log::debug!("a debug message");
    log::info!("an info message");
    log::warn!("a warning message");
    log::error!("an error message");
    ecci_logger::critical!("a critical message");
    // Rust extras: any text survives, and key-values travel in "kv".
    log::info!(frame = 42, label = "person"; "it's a \"quoted\"\nmulti-line message: 猫");

    // Wait (at most 2 s) until the broker acknowledged every record.
    match guard.shutdown() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "an example explains its failure")]
            {
                eprintln!("logger example: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
