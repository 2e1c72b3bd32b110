//! A first container: it logs, waits for one data message and logs who sent what.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _logs = ecci_logger::init_from_env()?; // log::info! now reaches the platform
    let client = ecci_client::Client::from_env().await?; // connects, using the ECCI_* variables
    log::info!("up, waiting for a message");
    let msg = client.recv_data().await?; // sender and contents together
    log::info!("{} sent {}", msg.sender(), msg.contents.value()); // the value as Python's repr
    Ok(())
}
