//! The blocking client: plain threads, no async in the test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecci_client::blocking::Client;
use ecci_client::{Error, Targets};
use ecci_proto::config::Config;
use ecci_transport::memory::Hub;

fn blocking(hub: &Hub, config: Config) -> Client {
    let transport = Arc::new(hub.transport());
    Client::with_builder(|| ecci_client::Client::builder(config).transport(transport)).unwrap()
}

#[test]
fn python_style_controller_and_component() {
    let hub = Hub::new();
    let g = blocking(&hub, controller("g", "cloud", &[("c1", "edge")], None));
    let c1 = blocking(&hub, component("c1", "edge", ("g", "cloud")));

    // The component on its own thread, as a Python container would be.
    let worker = std::thread::spawn(move || -> Result<Vec<i64>, Error> {
        c1.wait_started(WAIT)?;
        let mut seen = Vec::new();
        loop {
            let m = c1.recv_data()?;
            let n: i64 = m.decode()?;
            seen.push(n);
            // The controller's SDK acknowledges it end to end (on by default).
            let confirmed = c1
                .publish(&(n * n), Targets::exact(m.sender()))?
                .delivered()?;
            assert_eq!(confirmed, ecci_client::Confirmation::Received);
            if seen.len() == 3 {
                break;
            }
        }
        c1.wait_exit(WAIT)?;
        assert!(c1.is_exit_requested());
        Ok(seen)
    });

    g.wait_started(WAIT).unwrap();
    let mut squares = Vec::new();
    for n in [2, 3, 4] {
        let d = g.publish(&n, "c1").unwrap();
        assert_eq!(d.targets(), ["c1"]);
        d.wait_timeout(WAIT).unwrap();
        let reply = g.recv_data_timeout(WAIT).unwrap().expect("a reply in time");
        assert_eq!(reply.sender(), "c1");
        squares.push(reply.decode::<i64>().unwrap());
    }
    assert_eq!(squares, [4, 9, 16]);
    g.publish_cmd("exit", "c1").unwrap().wait().unwrap();
    assert_eq!(worker.join().unwrap().unwrap(), [2, 3, 4]);

    // The controller heard the component's `ready` among its commands.
    let cmd = g.recv_cmd_timeout(WAIT).unwrap().expect("the ready");
    assert_eq!(
        (cmd.sender().as_str(), cmd.contents.cmd_name()),
        ("c1", Some("ready"))
    );
    assert!(g.try_recv_error().is_none());
    assert_eq!(g.metrics().data, 3);
    g.close();
    assert!(matches!(g.recv_data(), Err(Error::Closed)));
    assert!(g.status().closed);
}

#[test]
fn blocking_errors_are_the_async_ones() {
    let hub = Hub::new();
    let c = blocking(&hub, plain("me", "b", &[("you", "b")]));
    assert!(matches!(c.publish(&1, "nobody"), Err(Error::Target(_))));
    assert!(matches!(
        c.wait_started(Duration::from_secs(1)),
        Err(Error::NoHandshake)
    ));
    let nothing = c.recv_cmd_timeout(Duration::from_millis(1)).unwrap();
    assert!(nothing.is_none());
    // Dropping the last clone closes the client cleanly.
    let clone = c.clone();
    drop(c);
    assert!(!clone.status().closed);
    drop(clone);
}
