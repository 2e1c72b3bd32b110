//! A component, configured by the `ECCI_*` variables like a Python container, written with
//! the blocking API (no async): announces itself to its controller, answers every task
//! with its result until the controller says `exit`.
//!
//! ```text
//! ECCI_LOCAL_BROKER_IP=127.0.0.1 ECCI_LOCAL_BROKER_PORT=1883 ECCI_LOCAL_BROKER_ID=b1 \
//! ECCI_APP_ID=demo ECCI_CONTAINER_NAME=worker1 ECCI_APP_TYPE=component \
//! ECCI_APP_CONTROLLER_CONTAINER="{'ctrl': 'b1'}" ECCI_PUB_TARGETS="{'ctrl': 'b1'}" \
//!   cargo run -p examples --example component
//! ```
#![expect(clippy::print_stdout, reason = "an example shows what happens")]

use std::time::Duration;

use ecci_client::Targets;
use ecci_client::blocking::Client;
use serde::{Deserialize, Serialize};

/// What the controller sends.
#[derive(Debug, Serialize, Deserialize)]
struct Task {
    id: u32,
    numbers: Vec<i64>,
}

/// What this component answers.
#[derive(Debug, Serialize, Deserialize)]
struct TaskResult {
    id: u32,
    sum: i64,
}

fn main() -> Result<(), ecci_client::Error> {
    let client = Client::from_env()?;
    println!("{} waiting for start", client.as_async().name());
    client.wait_started(Duration::from_secs(300))?;
    println!("started");

    while !client.is_exit_requested() {
        let Some(message) = client.recv_data_timeout(Duration::from_millis(200))? else {
            continue;
        };
        let task: Task = match message.decode() {
            Ok(task) => task,
            Err(e) => {
                println!("not a task from {}: {e}", message.sender());
                continue;
            }
        };
        let sum = task.numbers.iter().sum();
        println!("task {} from {}: sum {sum}", task.id, message.sender());
        client
            .publish(
                &TaskResult { id: task.id, sum },
                Targets::exact(message.sender()),
            )?
            .wait()?;
    }
    println!("exit requested");
    client.close();
    Ok(())
}
