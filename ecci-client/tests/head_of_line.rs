//! Unread data must not hold up what comes behind it: the readiness handshake and the
//! commands still move while the data queue is full, and no data is lost.

mod common;

use std::time::Duration;

use common::*;
use ecci_client::ClientOptions;
use ecci_transport::memory::Hub;

const QUEUE: usize = 4;
/// More than the data queue holds, but no more than it and its parked buffer hold.
const SENT: usize = 2 * QUEUE - 1;

#[tokio::test(start_paused = true)]
async fn a_full_data_queue_does_not_block_the_start() {
    let hub = Hub::new();
    let options = ClientOptions {
        data_queue: QUEUE,
        ..ClientOptions::default()
    };
    // The usual order: the component waits for its start before it reads data.
    let (worker, _w) = on_hub_with(&hub, component("worker", "b1", ("ctrl", "b1")), options).await;
    connected(&worker).await;
    // A peer that is already running sends data before the controller is up.
    let (peer, _p) = on_hub(&hub, plain("peer", "b1", &[("worker", "b1")])).await;
    for i in 0..SENT {
        peer.publish(&i, "worker").await.unwrap().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(worker.data().len(), QUEUE);

    let (ctrl, _c) = on_hub(&hub, controller("ctrl", "b1", &[("worker", "b1")], None)).await;
    ctrl.wait_started(Duration::from_secs(5)).await.unwrap();
    worker.wait_started(Duration::from_secs(5)).await.unwrap();

    // A plain command from the peer overtakes the unread data too.
    peer.publish_cmd("pause", "worker")
        .await
        .unwrap()
        .await
        .unwrap();
    // The readiness commands the handshake saw come first.
    loop {
        let cmd = tokio::time::timeout(Duration::from_secs(5), worker.recv_cmd())
            .await
            .expect("the command arrives while the data queue is full")
            .unwrap();
        if cmd.sender() == "peer" {
            assert_eq!(cmd.contents.cmd_name(), Some("pause"));
            break;
        }
    }

    // Every data message arrives, in order.
    for i in 0..SENT {
        let got = worker.recv_data().await.unwrap();
        assert_eq!(got.decode::<usize>().unwrap(), i);
    }
    assert!(worker.data().is_empty());
    assert!(worker.errors().is_empty());
}
