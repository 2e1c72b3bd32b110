//! The built `ecci` binary against an embedded broker started in the test.
//!
//! Long-running commands (`dev`, `watch`) run as child processes whose stdout is read line by
//! line with a bounded wait; they are killed (and reaped) when the test ends.

use std::process::Stdio;
use std::time::Duration;

use ecci_client::Client;
use ecci_logger::{Connection, LoggerConfig};
use ecci_proto::config::Config;
use ecci_transport::broker::Broker;
use ecci_transport::{Message, MqttConfig, MqttTransport, QoS, Transport};
use log::Log;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

const ECCI: &str = env!("CARGO_BIN_EXE_ecci");

/// How long a test waits for something that should happen at once.
const WAIT: Duration = Duration::from_secs(20);

/// A running `ecci` child with its output read by line.
struct Running {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
}

/// `ecci` with `args` and, of the `ECCI_*` variables, only `env`: the tests do not depend
/// on what the shell that runs them exported.
fn ecci_command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut command = Command::new(ECCI);
    command.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("ECCI_")) {
            command.env_remove(k);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

impl Running {
    fn start(args: &[&str]) -> Running {
        Running::start_env(args, &[])
    }

    fn start_env(args: &[&str], env: &[(String, String)]) -> Running {
        let mut child = ecci_command(args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("ecci starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Stdout lines up to and including the first one `pred` accepts.
    async fn stdout_until(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        read_until(&mut self.stdout, pred, "stdout").await
    }

    async fn stderr_until(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        read_until(&mut self.stderr, pred, "stderr").await
    }

    async fn stop(mut self) {
        self.child.kill().await.expect("killed");
    }
}

async fn read_until<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    pred: impl Fn(&str) -> bool,
    what: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let done = pred(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Ok(Ok(None)) => panic!("{what} ended; read so far: {seen:#?}"),
            Ok(Err(e)) => panic!("reading {what}: {e}"),
            Err(_) => panic!("no matching {what} line within {WAIT:?}; read so far: {seen:#?}"),
        }
    }
}

/// Runs a one-shot `ecci` command to its end: exit code, stdout, stderr.
async fn ecci(args: &[&str]) -> (i32, String, String) {
    ecci_env(args, &[]).await
}

/// [`ecci`] with the `ECCI_*` variables `env`.
async fn ecci_env(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        WAIT,
        ecci_command(args, env)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ecci ends in time")
    .expect("ecci runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn broker() -> (Broker, String) {
    let b = Broker::start().await.expect("embedded broker");
    let addr = format!("127.0.0.1:{}", b.port());
    (b, addr)
}

/// Starts `ecci watch` on `addr` with `extra` options and waits until it subscribed.
async fn watch(addr: &str, extra: &[&str]) -> Running {
    let mut args = vec!["watch", "--broker", addr, "--app", "demo"];
    args.extend_from_slice(extra);
    let mut w = Running::start(&args);
    w.stderr_until(|l| l.starts_with("ecci: watching")).await;
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_then_watch_sees_it() {
    let (broker, addr) = broker().await;
    let mut w = watch(&addr, &[]).await;

    let send = [
        "send",
        "--broker",
        &addr,
        "--app",
        "demo",
        "--broker-id",
        "b1",
        "--from",
        "cli",
        "--to",
        "worker1",
    ];
    let (code, out, err) = ecci(&[&send[..], &["--data", "{'a': [1, b'x', None]}"]].concat()).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "sent [data] cli → worker1 on ECCI/b1/demo/app/cli/worker1 (42 bytes, acknowledged)\n"
    );
    let lines = w.stdout_until(|_| true).await;
    assert_eq!(lines, ["cli → worker1 [data] {'a': [1, b'x', None]}"]);

    let (code, _, err) =
        ecci(&[&send[..], &["--data", r#"{"k": [true, null, 1.5]}"#]].concat()).await;
    assert_eq!(code, 0, "{err}");
    let lines = w.stdout_until(|_| true).await;
    assert_eq!(lines, ["cli → worker1 [data] {'k': [True, None, 1.5]}"]);

    // A hostile payload is a line saying why, and the watcher keeps going.
    publish_raw(
        broker.port(),
        "ECCI/b1/demo/app/evil/worker1",
        b"not a pickle",
    )
    .await;
    let lines = w.stdout_until(|_| true).await;
    assert!(
        lines[0].starts_with("evil → worker1 undecodable: payload is not a valid data-only pickle"),
        "{lines:?}"
    );

    let (code, _, err) = ecci(&[&send[..], &["--cmd", "start"]].concat()).await;
    assert_eq!(code, 0, "{err}");
    let lines = w.stdout_until(|_| true).await;
    assert_eq!(lines, ["cli → worker1 [cmd] {'cmd': 'start'}"]);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_and_count() {
    let (_broker, addr) = broker().await;
    let mut w = watch(&addr, &["--json", "--count", "1"]).await;
    let (code, _, err) = ecci(&[
        "send",
        "--broker",
        &addr,
        "--app",
        "demo",
        "--broker-id",
        "b1",
        "--from",
        "a",
        "--to",
        "b",
        "--cmd",
        "exit",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let lines = w.stdout_until(|_| true).await;
    let v: serde_json::Value = serde_json::from_str(&lines[0]).expect("one JSON object");
    assert_eq!(v["sender"], "a");
    assert_eq!(v["receiver"], "b");
    assert_eq!(v["type"], "cmd");
    assert_eq!(v["contents"], "{'cmd': 'exit'}");
    // --count 1: it exits 0 by itself.
    let status = tokio::time::timeout(WAIT, w.child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_prints_exports_and_shows_log_records() {
    let mut dev = Running::start(&["dev", "--app", "demo", "--broker-id", "local", "--all"]);
    let header = dev.stdout_until(|l| l.starts_with("# Watching")).await;
    assert!(
        header.contains(&"export ECCI_LOCAL_BROKER_IP=127.0.0.1".to_owned()),
        "{header:#?}"
    );
    assert!(header.contains(&"export ECCI_LOCAL_BROKER_ID=local".to_owned()));
    assert!(header.contains(&"export ECCI_APP_ID=demo".to_owned()));
    let port: u16 = header
        .iter()
        .find_map(|l| l.strip_prefix("export ECCI_LOCAL_BROKER_PORT="))
        .expect("port export")
        .parse()
        .expect("a port");
    assert_ne!(port, 0);

    // A container's logger pointed at the printed settings.
    let config = LoggerConfig::new(
        Connection::Mqtt(MqttConfig::new("127.0.0.1", port)),
        "local".parse().expect("broker id"),
        "demo".parse().expect("app id"),
        "worker1".parse().expect("container name"),
    );
    let (logger, guard) = ecci_logger::start(config).expect("logger");
    logger.log(
        &log::Record::builder()
            .level(log::Level::Warn)
            .target("cli_test")
            .args(format_args!("hello from the logger"))
            .build(),
    );
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .expect("joined")
        .expect("flushed");
    let lines = dev
        .stdout_until(|l| l.contains("hello from the logger"))
        .await;
    let last = lines.last().expect("a line");
    assert!(
        last.ends_with(" WARNING worker1 cli_test: hello from the logger"),
        "{last}"
    );

    // A readiness report, and (--all) app traffic.
    let report =
        br#"{"app_id": "demo", "container_name": "ctrl", "agent_id": null, "ready_type": "app"}"#;
    publish_raw(port, "toEdgeAI/local/con_cntr_ready", report).await;
    let lines = dev
        .stdout_until(|l| l.starts_with("toEdgeAI/local/con_cntr_ready"))
        .await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some(
            r#"toEdgeAI/local/con_cntr_ready {"app_id": "demo", "container_name": "ctrl", "agent_id": null, "ready_type": "app"}"#
        )
    );
    let addr = format!("127.0.0.1:{port}");
    let (code, _, err) = ecci(&[
        "send",
        "--broker",
        &addr,
        "--app",
        "demo",
        "--broker-id",
        "local",
        "--from",
        "ctrl",
        "--to",
        "worker1",
        "--cmd",
        "start",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let lines = dev.stdout_until(|l| l.contains('→')).await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("ctrl → worker1 [cmd] {'cmd': 'start'}")
    );
    interrupt(dev).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2_naming_them() {
    #[track_caller]
    fn check(result: (i32, String, String), expected: &str) {
        let (code, out, err) = result;
        assert_eq!(code, 2, "stderr: {err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
    let send = [
        "send",
        "--broker",
        "127.0.0.1:1",
        "--app",
        "demo",
        "--broker-id",
        "b",
        "--from",
        "x",
        "--to",
        "y",
    ];
    check(ecci(&[]).await, "ecci: missing command");
    check(ecci(&["frob"]).await, "unknown command \"frob\"");
    check(ecci(&["dev", "--port", "70000"]).await, "--port");
    check(ecci(&["dev", "--nope"]).await, "invalid option '--nope'");
    check(ecci(&["watch", "--app", "demo"]).await, "missing --broker");
    check(
        ecci(&["watch", "--broker", "h:x", "--app", "demo"]).await,
        "--broker \"h:x\"",
    );
    check(
        ecci(&["watch", "--broker", "h", "--app", "a/b"]).await,
        "--app",
    );
    check(ecci(&send).await, "missing --data LITERAL or --cmd NAME");
    check(
        ecci(&[&send[..], &["--data", "{'a': "]].concat()).await,
        "--data: not a Python literal or JSON",
    );
    check(
        ecci(&[&send[..], &["--cmd"]].concat()).await,
        "missing argument for option '--cmd'",
    );
    check(ecci(&["send", "--from", "a#"]).await, "--from");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_for_everything() {
    for (args, first) in [
        (&["--help"][..], "ecci: a local ECCI platform"),
        (&["-h"][..], "ecci: a local ECCI platform"),
        (&["help"][..], "ecci: a local ECCI platform"),
        (&["dev", "--help"][..], "ecci dev:"),
        (&["watch", "--help"][..], "ecci watch:"),
        (&["send", "-h"][..], "ecci send:"),
        // Help wins over the missing required options.
        (&["send", "--app", "x", "--help"][..], "ecci send:"),
    ] {
        let (code, out, err) = ecci(args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.starts_with(first), "{args:?}: {out}");
        assert!(out.contains("Usage: ecci"), "{args:?}: {out}");
    }
    let (code, out, _) = ecci(&["--version"]).await;
    assert_eq!(
        (code, out.trim()),
        (0, concat!("ecci ", env!("CARGO_PKG_VERSION")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_no_broker_fails_clearly() {
    // A port nobody listens on: bound, read, released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (code, out, err) = ecci(&[
        "send",
        "--broker",
        &addr,
        "--app",
        "demo",
        "--broker-id",
        "b",
        "--from",
        "x",
        "--to",
        "y",
        "--cmd",
        "start",
    ])
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.starts_with(&format!(
            "ecci send: cannot connect to {addr}: network error"
        )),
        "{err}"
    );
}

/// Publishes `payload` on `topic` through a transport of the test's own, and waits for the ack.
async fn publish_raw(port: u16, topic: &str, payload: &[u8]) {
    let t = MqttTransport::start(MqttConfig::new("127.0.0.1", port));
    let receipt = t
        .publish(Message::new(topic, payload.to_vec(), QoS::ExactlyOnce))
        .await
        .expect("queued");
    tokio::time::timeout(WAIT, receipt)
        .await
        .expect("in time")
        .expect("acknowledged");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_bridged_topics_and_only_its_apps_platform_messages() {
    let (broker, addr) = broker().await;
    let mut w = watch(&addr, &["--mountpoint", "bridge/+/"]).await;
    // pickle.dumps({'type': 'cmd', 'contents': {'cmd': 'ready'}}) as CPython 3.11 writes it.
    let cmd = b"\x80\x04\x95*\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04type\x94\x8c\x03cmd\x94\x8c\x08contents\x94}\x94h\x02\x8c\x05ready\x94su.";
    publish_raw(broker.port(), "bridge/e1/ECCI/b1/demo/app/w1/ctrl", cmd).await;
    assert_eq!(
        w.stdout_until(|_| true).await,
        ["w1 → ctrl [cmd] {'cmd': 'ready'}"]
    );
    // Another app's report is skipped; this app's is shown.
    publish_raw(
        broker.port(),
        "toEdgeAI/b1/con_cntr_ready",
        br#"{"app_id": "other"}"#,
    )
    .await;
    publish_raw(broker.port(), "ECCI/b1/other/app/x/y", cmd).await;
    publish_raw(
        broker.port(),
        "toEdgeAI/b1/con_cntr_ready",
        br#"{"app_id": "demo"}"#,
    )
    .await;
    assert_eq!(
        w.stdout_until(|_| true).await,
        [r#"toEdgeAI/b1/con_cntr_ready {"app_id": "demo"}"#]
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_used_and_a_refusal_is_clear() {
    let (broker, addr) = broker().await;
    broker.require_credentials("user", "secret");
    let send = [
        "send",
        "--broker",
        &addr,
        "--app",
        "demo",
        "--broker-id",
        "b",
        "--from",
        "x",
        "--to",
        "y",
        "--cmd",
        "start",
        "--username",
        "user",
    ];
    let (code, _, err) = ecci(&[&send[..], &["--password", "secret"]].concat()).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ecci(&[&send[..], &["--password", "wrong"]].concat()).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "ecci send: cannot connect to {addr}: broker refused the connection with return code"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_json_starts_with_the_settings() {
    let mut dev = Running::start(&["dev", "--json", "--broker-id", "b9"]);
    let first = dev.stdout_until(|_| true).await;
    let v: serde_json::Value = serde_json::from_str(&first[0]).expect("JSON");
    assert_eq!(v["settings"]["ECCI_LOCAL_BROKER_ID"], "b9");
    assert_eq!(v["settings"]["ECCI_APP_ID"], "demo");
    let port: u16 = v["settings"]["ECCI_LOCAL_BROKER_PORT"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("port");
    publish_raw(
        port,
        "toEdgeAI/b9/send_data",
        br#"{"type": "data", "data": [1]}"#,
    )
    .await;
    let line = dev.stdout_until(|_| true).await;
    let v: serde_json::Value = serde_json::from_str(&line[0]).expect("JSON");
    assert_eq!(v["topic"], "toEdgeAI/b9/send_data");
    assert_eq!(v["json"]["data"], serde_json::json!([1]));
    interrupt(dev).await;
}

/// With the settings `ecci dev` prints exported, `ecci watch` needs no option and
/// `ecci send` only the receiver and the message; flags still override them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_watch_take_the_settings_dev_prints() {
    let mut dev = Running::start(&["dev", "--app", "demo", "--broker-id", "local"]);
    let header = dev.stdout_until(|l| l.starts_with("# Watching")).await;
    let mut env = exports(&header);
    assert!(
        env.iter().any(|(k, _)| k == "ECCI_LOCAL_BROKER_PORT"),
        "{env:?}"
    );
    let mut w = Running::start_env(&["watch"], &env);
    w.stderr_until(|l| l.starts_with("ecci: watching")).await;

    // No sender yet: the error names the flag and the variable.
    let (code, _, err) = ecci_env(&["send", "--to", "worker1", "--cmd", "start"], &env).await;
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "ecci send: missing --from NAME (or ECCI_CONTAINER_NAME) (see ecci send --help)\n"
    );

    env.push(("ECCI_CONTAINER_NAME".into(), "ctrl".into()));
    let (code, out, err) = ecci_env(&["send", "--to", "worker1", "--data", "[1]"], &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("sent [data] ctrl → worker1 on ECCI/local/demo/app/ctrl/worker1 "),
        "{out}"
    );
    assert_eq!(
        w.stdout_until(|_| true).await,
        ["ctrl → worker1 [data] [1]"]
    );

    // Flags override: another sender, another broker id (the watcher sees every broker).
    let args = [
        "send",
        "--from",
        "cli",
        "--broker-id",
        "b2",
        "--to",
        "w",
        "--cmd",
        "exit",
    ];
    let (code, out, err) = ecci_env(&args, &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" on ECCI/b2/demo/app/cli/w "), "{out}");
    assert_eq!(
        w.stdout_until(|_| true).await,
        ["cli → w [cmd] {'cmd': 'exit'}"]
    );

    // A bad variable is named; a flag that replaces it wins.
    env.push(("ECCI_APP_ID".into(), "a/b".into()));
    let (code, _, err) = ecci_env(&["send", "--to", "w", "--cmd", "exit"], &env).await;
    assert_eq!(code, 2);
    assert!(
        err.starts_with("ecci send: ECCI_APP_ID=\"a/b\": not an app id"),
        "{err}"
    );
    let args = ["send", "--app", "demo", "--to", "w", "--cmd", "exit"];
    let (code, _, err) = ecci_env(&args, &env).await;
    assert_eq!(code, 0, "{err}");
    w.stop().await;
    interrupt(dev).await;
}

/// Sends SIGINT (Ctrl-C) to `dev` and waits for it to exit 0.
async fn interrupt(mut dev: Running) {
    let pid = dev.child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());
    let status = tokio::time::timeout(WAIT, dev.child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert!(status.success(), "{status}");
}

/// `VAR=value` of the printed `export` lines (values there need no unquoting).
fn exports(header: &[String]) -> Vec<(String, String)> {
    header
        .iter()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A client configured as a container given the printed settings and `extra` ones.
async fn container(exported: &[(String, String)], extra: &[(&str, &str)]) -> Client {
    let config = Config::from_lookup(|k| {
        extra
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| {
                exported
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
            })
    })
    .expect("the printed settings are a valid configuration");
    Client::connect(config).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_a_file_manager_a_file_goes_through() {
    let dir = tempfile::Builder::new()
        .prefix("ecci-cli-files-")
        .tempdir()
        .expect("temp dir");
    let objects = dir.path().join("objects");
    let objects_arg = objects.to_str().expect("a UTF-8 temp dir");
    let mut dev = Running::start(&["dev", "--broker-id", "local", "--files-dir", objects_arg]);
    let header = dev.stdout_until(|l| l.starts_with("# Watching")).await;
    let note = format!(
        "# fileManager for app demo on broker local: files kept in {objects_arg}, served on http://127.0.0.1:"
    );
    assert!(header.iter().any(|l| l.starts_with(&note)), "{header:#?}");
    assert!(
        header.iter().any(|l| l.contains("--example file_sender")),
        "{header:#?}"
    );
    let exported = exports(&header);
    assert!(
        exported.contains(&("ECCI_CONTAINER_TYPE".to_owned(), "cloud".to_owned())),
        "{exported:?}"
    );

    // The file_sender and file_receiver examples, with the printed settings.
    let sender = container(
        &exported,
        &[
            ("ECCI_CONTAINER_NAME", "containerA"),
            ("ECCI_PUB_TARGETS", "{'containerB': 'local'}"),
        ],
    )
    .await;
    let receiver = container(&exported, &[("ECCI_CONTAINER_NAME", "containerB")]).await;
    let src = dir.path().join("test.py");
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &bytes).expect("source written");
    let sent = sender
        .files()
        .send_file(&src, "test", "containerB")
        .expect("send starts");
    let sent = tokio::time::timeout(WAIT, sent)
        .await
        .expect("sent in time")
        .expect("sent");
    assert_eq!(sent.bytes, bytes.len() as u64);
    let offer = tokio::time::timeout(WAIT, receiver.files().next_offer())
        .await
        .expect("offered in time")
        .expect("an offer");
    assert_eq!(offer.file_name, "test");
    let dest = dir.path().join("received.py");
    let got = tokio::time::timeout(WAIT, offer.download_to(&dest))
        .await
        .expect("downloaded in time")
        .expect("downloaded");
    assert_eq!(got, bytes.len() as u64);
    assert!(
        std::fs::read(&dest).expect("received file") == bytes,
        "bytes differ"
    );
    sender.close().await;
    receiver.close().await;

    interrupt(dev).await;
    assert!(objects.is_dir(), "a --files-dir is kept on exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_temporary_files_dir_is_removed_on_ctrl_c() {
    let mut dev = Running::start(&["dev", "--json"]);
    let first = dev.stdout_until(|_| true).await;
    let header: serde_json::Value = serde_json::from_str(&first[0]).expect("JSON");
    let files = &header["files"];
    assert_eq!(files["temporary"], true, "{header}");
    let dir = std::path::PathBuf::from(files["dir"].as_str().expect("a dir"));
    assert!(
        files["store"]
            .as_str()
            .is_some_and(|s| s.starts_with("http://127.0.0.1:"))
    );
    assert!(dir.is_dir(), "{}", dir.display());
    interrupt(dev).await;
    assert!(!dir.exists(), "{} removed on exit", dir.display());
}
