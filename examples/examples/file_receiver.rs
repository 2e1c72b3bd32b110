//! The Python SDK README's file receiver, ported: waits for the file `test` and downloads it to
//! `./test.py`, configured by the `ECCI_*` variables like the Python container.
//!
//! Python busy-polls `get_sub_get_file_dict()`; here the offers arrive as they come, the
//! download goes through a temporary file renamed when complete (resumed if the connection
//! drops), and the sender's SHA-256 is checked when it sent one.
//!
//! ```text
//! ECCI_LOCAL_BROKER_IP=127.0.0.1 ECCI_LOCAL_BROKER_PORT=1883 ECCI_LOCAL_BROKER_ID=b1 \
//! ECCI_APP_ID=demo ECCI_CONTAINER_NAME=containerB \
//!   cargo run -p examples --example file_receiver -- [NAME] [DEST]
//! ```
//!
//! With `--contents` it decodes the file as an in-memory object instead
//! (Python: `download_contents(...)`).
#![expect(clippy::print_stdout, reason = "an example shows what happens")]

use ecci_client::blocking::Client;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let contents = args.iter().any(|a| a == "--contents");
    args.retain(|a| a != "--contents");
    let mut args = args.into_iter();
    let filename = args.next().unwrap_or_else(|| "test".to_owned());
    let filepath = args.next().unwrap_or_else(|| "./test.py".to_owned());

    let client = Client::from_env()?;
    loop {
        let offer = client.next_offer()?;
        if offer.file_name != filename {
            println!("ignoring {:?} from {}", offer.file_name, offer.sender);
            continue;
        }
        if contents {
            println!("{:?}", client.download_object(&offer)?);
        } else {
            let bytes = client.download_to(&offer, &filepath)?;
            println!("received {filename:?}: {bytes} bytes in {filepath}");
        }
        break;
    }
    client.close();
    Ok(())
}
