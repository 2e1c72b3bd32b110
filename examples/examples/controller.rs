//! A controller, configured by the `ECCI_*` variables like a Python container: waits until
//! every component is ready (the readiness handshake), hands each one a task, collects the
//! results, reports the period to the platform and asks the components to exit.
//!
//! ```text
//! ECCI_LOCAL_BROKER_IP=127.0.0.1 ECCI_LOCAL_BROKER_PORT=1883 ECCI_LOCAL_BROKER_ID=b1 \
//! ECCI_APP_ID=demo ECCI_CONTAINER_NAME=ctrl ECCI_APP_TYPE=controller \
//! ECCI_PUB_TARGETS="{'worker1': 'b1', 'worker2': 'b1'}" \
//!   cargo run -p examples --example controller
//! ```
//!
//! Start the workers with the `component` example.
#![expect(clippy::print_stdout, reason = "an example shows what happens")]

use std::collections::BTreeMap;
use std::time::Duration;

use ecci_client::{Client, Targets};
use serde::{Deserialize, Serialize};

/// What a worker gets.
#[derive(Debug, Serialize, Deserialize)]
struct Task {
    id: u32,
    numbers: Vec<i64>,
}

/// What a worker answers.
#[derive(Debug, Serialize, Deserialize)]
struct TaskResult {
    id: u32,
    sum: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env().await?;
    println!("{} waiting for its components", client.name());

    // Messages that could not be used never stop the client; show them.
    let errors = client.errors();
    tokio::spawn(async move {
        while let Some(event) = errors.recv().await {
            println!("ignored: {event}: {}", event.error);
        }
    });

    client.wait_started(Duration::from_secs(300)).await?;
    println!("app started");

    let workers: Vec<String> = client
        .config()
        .pub_targets()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    for (id, worker) in (0u32..).zip(&workers) {
        let task = Task {
            id,
            numbers: (1..=i64::from(id) + 3).collect(),
        };
        client.publish(&task, worker).await?.await?;
    }

    let mut sums = BTreeMap::new();
    while sums.len() < workers.len() {
        let message = client.recv_data().await?;
        let result: TaskResult = message.decode()?;
        println!(
            "{} answered task {}: {}",
            message.sender(),
            result.id,
            result.sum
        );
        sums.insert(message.sender().to_string(), result.sum);
    }
    client.send_complete("tasks done").await?.await?;
    client.publish_cmd("exit", Targets::All).await?.await?;
    println!("done: {sums:?}");
    client.close().await;
    Ok(())
}
