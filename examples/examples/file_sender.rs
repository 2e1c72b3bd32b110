//! The Python SDK README's file sender, ported: sends `./test.py` as the file `test` to
//! `containerB` through the platform's fileManager, configured by the `ECCI_*` variables
//! like the Python container (`ECCI_CONTAINER_TYPE` says where the requests go).
//!
//! Python needs two threads and a busy loop over `get_sub_put_file_dict()`; here one call
//! sends and blocks until the fileManager has the transfer.
//!
//! ```text
//! ECCI_LOCAL_BROKER_IP=127.0.0.1 ECCI_LOCAL_BROKER_PORT=1883 ECCI_LOCAL_BROKER_ID=b1 \
//! ECCI_APP_ID=demo ECCI_CONTAINER_NAME=containerA ECCI_CONTAINER_TYPE=cloud \
//! ECCI_PUB_TARGETS="{'containerB': 'b1'}" \
//!   cargo run -p examples --example file_sender -- [PATH] [NAME] [TARGET]
//! ```
//!
//! With `--contents` it sends the in-memory object `['2', '33']` instead of a file
//! (Python: `putHandler(filename, 'containerB', contents=['2', '33'])`).
#![expect(clippy::print_stdout, reason = "an example shows what happens")]

use ecci_client::blocking::Client;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let contents = args.iter().any(|a| a == "--contents");
    args.retain(|a| a != "--contents");
    let mut args = args.into_iter();
    let filepath = args.next().unwrap_or_else(|| "./test.py".to_owned());
    let filename = args.next().unwrap_or_else(|| "test".to_owned());
    let target = args.next().unwrap_or_else(|| "containerB".to_owned());

    let client = Client::from_env()?;
    let sent = if contents {
        client.send_object(&vec!["2", "33"], &filename, target.as_str())?
    } else {
        client.send_file(&filepath, &filename, target.as_str())?
    };
    println!(
        "sent {:?} ({} bytes, sha256 {}) to {:?}",
        sent.file_name,
        sent.bytes,
        sent.sha256.as_deref().unwrap_or("-"),
        sent.targets
    );
    client.close();
    Ok(())
}
