//! Configuration errors say which variable is wrong and how, in their Display; a broker host
//! that does not resolve fails `connect` at once, naming `ECCI_LOCAL_BROKER_IP`, while a
//! broker that refuses connections (it may come up) is retried.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ecci_client::{Client, ClientOptions, Error};
use ecci_proto::config::Config;
use ecci_transport::broker::Broker;

fn from_env(vars: &[(&str, &str)]) -> Result<Config, Error> {
    let mut env: HashMap<&str, &str> = [
        ("ECCI_LOCAL_BROKER_IP", "127.0.0.1"),
        ("ECCI_LOCAL_BROKER_ID", "b1"),
        ("ECCI_APP_ID", "app"),
        ("ECCI_CONTAINER_NAME", "me"),
    ]
    .into_iter()
    .collect();
    env.extend(vars.iter().copied());
    Ok(Config::from_lookup(|k| {
        env.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| (*v).to_owned())
    })?)
}

#[track_caller]
fn check(vars: &[(&str, &str)], expected: &str) {
    let err = from_env(vars).expect_err("the configuration is refused");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(err.to_string(), expected);
}

#[test]
fn config_errors_name_the_variable_and_the_problem() {
    check(
        &[("ECCI_LOCAL_BROKER_IP", "")],
        "ECCI_LOCAL_BROKER_IP is unset or empty",
    );
    check(
        &[("ECCI_LOCAL_BROKER_PORT", "18x3")],
        "ECCI_LOCAL_BROKER_PORT: \"18x3\" is not a port number",
    );
    check(
        &[("ECCI_CONTAINER_TYPE", "fog")],
        "ECCI_CONTAINER_TYPE: \"fog\" is not one of cloud, edge",
    );
    check(
        &[("ECCI_PUB_TARGETS", "{'a': ")],
        "ECCI_PUB_TARGETS is not a Python dict literal of strings",
    );
}

fn config(host: &str, port: u16) -> Config {
    Config::builder(
        host,
        "b1".parse().unwrap(),
        "app".parse().unwrap(),
        "me".parse().unwrap(),
    )
    .port(port)
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_broker_host_fails_at_once_naming_the_variable() {
    let started = Instant::now();
    let err = Client::connect(config("no-such-broker.invalid", 1883))
        .await
        .expect_err("the host does not exist");
    // Well within the 30 s the client waits for a broker that may still come up.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::UnresolvableHost { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "ECCI_LOCAL_BROKER_IP: cannot resolve the broker host \"no-such-broker.invalid\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_until_the_broker_comes_up() {
    // A free port, with nothing listening on it yet: connection refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let options = ClientOptions {
        subscribe_timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    let connecting = tokio::spawn(
        Client::builder(config("127.0.0.1", port))
            .options(options)
            .connect(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!connecting.is_finished(), "a refusal is retried, not fatal");
    let _broker = Broker::start_on(port).await.unwrap();
    let client = tokio::time::timeout(Duration::from_secs(30), connecting)
        .await
        .expect("connects once the broker is up")
        .unwrap()
        .unwrap();
    client.close().await;
}
