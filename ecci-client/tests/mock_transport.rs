//! An interaction test of an app with `ecci_transport::mock::MockTransport` (mockall): "when
//! my app receives `('frame', n)` it publishes `('seen', n)` to `archive`, once, and nothing
//! else". The exact calls are the point here; for everything else the in-memory hub
//! (`tests/memory.rs`) is the better fake, since it behaves like a broker.

use std::sync::Arc;
use std::time::Duration;

use ecci_client::{Client, Error};
use ecci_proto::envelope::Envelope;
use ecci_proto::pickle::{DecodeLimits, Protocol, from_value, to_value};
use ecci_transport::mock::{self, MockTransport};
use ecci_transport::{Message, QoS, Transport};

/// The app under test: answers every `('frame', n)` with `('seen', n)` to `archive`.
async fn app(client: &Client) -> Result<(), Error> {
    let received = client.recv_data().await?;
    let (kind, n): (String, u32) = received.decode()?;
    if kind == "frame" {
        client.publish(&("seen", n), "archive").await?.await?;
    }
    Ok(())
}

/// The pickled data envelope carrying `contents`, as a peer sends it.
fn data(contents: &(&str, u32)) -> Vec<u8> {
    Envelope::data(to_value(contents).expect("encodable")).to_pickle(Protocol::default())
}

/// What a published data message carries.
fn contents(message: &Message) -> Option<(String, u32)> {
    let envelope = Envelope::from_pickle(&message.payload, &DecodeLimits::default()).ok()?;
    from_value(envelope.contents).ok()
}

#[tokio::test]
async fn publishes_seen_to_archive_when_it_receives_a_frame() {
    let (feed, events) = mock::events();
    let mut transport = MockTransport::new();
    // The client's own bookkeeping: any subscriptions, the event stream once, metrics.
    transport.expect_subscribe().returning(|_, _| Ok(()));
    transport
        .expect_take_events()
        .times(1)
        .return_once(move || Some(events));
    transport
        .expect_metrics()
        .returning(ecci_transport::Metrics::default);
    transport.expect_close().returning(|| ());
    // The interaction under test: exactly one publish, of ('seen', 7) to archive on b2, as
    // data at QoS 2.
    transport
        .expect_publish()
        .withf(|m: &Message| {
            m.topic == "ECCI/b2/app1/app/me/archive"
                && m.qos == QoS::ExactlyOnce
                && contents(m) == Some(("seen".to_owned(), 7))
        })
        .times(1)
        .returning(|_| Ok(mock::acked()));
    let transport: Arc<dyn Transport> = Arc::new(transport);

    let config = ecci_proto::config::Config::builder(
        "unused",
        "b1".parse().unwrap(),
        "app1".parse().unwrap(),
        "me".parse().unwrap(),
    )
    .pub_target("archive".parse().unwrap(), "b2".parse().unwrap())
    .build()
    .unwrap();
    let client = Client::builder(config)
        .transport(transport)
        .connect()
        .await
        .expect("connects");

    assert!(feed.message(Message::new(
        "ECCI/b1/app1/app/camera/me",
        data(&("frame", 7)),
        QoS::ExactlyOnce,
    )));
    tokio::time::timeout(Duration::from_secs(10), app(&client))
        .await
        .expect("the app answers in time")
        .expect("the app succeeds");
    client.close().await;
    // Dropping the mock (with the client) checks `times(1)`: one publish, no more.
}
