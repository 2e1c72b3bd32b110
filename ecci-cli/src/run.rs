//! What `ecci dev`, `ecci watch` and `ecci send` do once their arguments are read.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ecci_files::local::{LocalFileManager, LocalStore};

use ecci_proto::envelope::Envelope;
use ecci_proto::pickle::Protocol;
use ecci_proto::topic::{AppTopic, PLATFORM_PREFIX};
use ecci_transport::broker::Broker;
use ecci_transport::{Event, Events, Message, MqttConfig, MqttTransport, Priority, QoS, Transport};
use serde_json::json;

use crate::args::{BrokerAddr, DevArgs, Payload, SendArgs, WatchArgs};
use crate::show::{self, Style, chain};
use crate::web;

/// A failure after the arguments were accepted: one line, exit code 1.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure(message.into())
    }
}

/// How long the first connection may take before a one-shot command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes whole lines to stdout; a closed stdout (`| head`) ends the command quietly.
struct Out(io::Stdout);

impl Out {
    fn line(&mut self, s: &str) -> io::Result<()> {
        let mut lock = self.0.lock();
        writeln!(lock, "{s}")?;
        lock.flush()
    }
}

fn mqtt_config(broker: &BrokerAddr, credentials: &Option<(String, String)>) -> MqttConfig {
    let mut config = MqttConfig::new(&broker.host, broker.port);
    config.credentials.clone_from(credentials);
    config
}

/// Waits for the first connection: `Ok` on connect, the reason when the first attempt fails.
async fn connected(
    events: &mut Events,
    broker: &BrokerAddr,
    timeout: Duration,
) -> Result<(), Failure> {
    let wait = async {
        loop {
            match events.recv().await {
                Some(Event::Connected) => return Ok(()),
                Some(Event::ConnectFailed(e)) => {
                    return Err(Failure::new(format!(
                        "cannot connect to {broker}: {}",
                        chain(&e)
                    )));
                }
                Some(_) => {}
                None => return Err(Failure::new("the connection ended")),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(format!(
                "no connection to {broker} within {timeout:?}"
            )))
        })
}

/// Ctrl-C (SIGINT), listened for from creation on, so a signal that arrives before the
/// view starts waiting is not missed.
#[derive(Debug)]
struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> Result<Self, Failure> {
        Ok(Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| Failure::new(format!("cannot listen for Ctrl-C: {e}")))?,
        })
    }

    /// Resolves at the first Ctrl-C since [`Interrupt::new`].
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Subscribes to every filter, failing with the first refusal.
async fn subscribe_all(transport: &dyn Transport, filters: &[String]) -> Result<(), Failure> {
    for filter in filters {
        transport
            .subscribe(filter, QoS::ExactlyOnce)
            .await
            .map_err(|e| Failure::new(format!("cannot subscribe to {filter:?}: {}", chain(&e))))?;
    }
    Ok(())
}

/// Prints every message until Ctrl-C, `count` messages, or a closed stdout. Platform
/// messages of other apps are skipped when `only_app` is set.
async fn view(
    interrupt: &mut Interrupt,
    events: &mut Events,
    out: &mut Out,
    style: &Style,
    count: Option<u64>,
    only_app: Option<&str>,
) -> Result<(), Failure> {
    let mut shown = 0u64;
    if count == Some(0) {
        return Ok(());
    }
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = interrupt.recv() => return Ok(()),
        };
        let line = match event {
            Some(Event::Message(m)) => {
                if let Some(app) = only_app {
                    let platform = m.topic.starts_with(PLATFORM_PREFIX)
                        && m.topic.as_bytes().get(PLATFORM_PREFIX.len()) == Some(&b'/');
                    if platform && show::json_app_id(&m.payload).is_some_and(|a| a != app) {
                        continue;
                    }
                }
                show::line(&m.topic, &m.payload, style)
            }
            Some(Event::Disconnected(e)) => {
                note(&format!("disconnected: {}; reconnecting", chain(&e)));
                continue;
            }
            Some(Event::ConnectFailed(e)) => {
                note(&format!("cannot reconnect: {}; retrying", chain(&e)));
                continue;
            }
            Some(Event::Connected) => {
                note("connected");
                continue;
            }
            Some(_) => continue,
            None => return Err(Failure::new("the connection ended")),
        };
        if out.line(&line).is_err() {
            return Ok(());
        }
        shown += 1;
        if count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
    }
}

/// A status line on stderr.
fn note(s: &str) {
    let _ = writeln!(io::stderr().lock(), "ecci: {s}");
}

/// Quotes `s` for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-.:/,@%+=".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else if !s.contains(['"', '$', '`', '\\', '!']) {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(crate) async fn dev(args: DevArgs) -> Result<(), Failure> {
    let mut broker = Broker::start_on(args.port)
        .await
        .map_err(|e| Failure::new(format!("cannot listen on 127.0.0.1:{}: {e}", args.port)))?;
    let addr = BrokerAddr {
        host: "127.0.0.1".into(),
        port: broker.port(),
    };

    let files = FilesDir::new(args.files_dir.clone())?;
    let result = match start_file_manager(&addr, &args, &files).await {
        Ok(fm) => {
            let result = serve_dev(&args, &addr, &files, fm.store()).await;
            let stopped = fm.shutdown().await;
            result.and(
                stopped
                    .map_err(|e| Failure::new(format!("stopping the fileManager: {}", chain(&e)))),
            )
        }
        Err(e) => Err(e),
    };
    broker.stop().await;
    files.remove();
    result
}

/// Where `ecci dev`'s fileManager keeps objects: a directory given, or a temporary one
/// removed on exit.
struct FilesDir {
    path: PathBuf,
    /// Set when the directory is a temporary one (tempfile's: an unpredictable name).
    temporary: Option<tempfile::TempDir>,
}

impl FilesDir {
    fn new(given: Option<PathBuf>) -> Result<FilesDir, Failure> {
        let Some(path) = given else {
            let dir = tempfile::Builder::new()
                .prefix("ecci-dev-")
                .tempdir()
                .map_err(|e| {
                    Failure::new(format!("cannot create a temporary files directory: {e}"))
                })?;
            return Ok(FilesDir {
                path: dir.path().to_owned(),
                temporary: Some(dir),
            });
        };
        std::fs::create_dir_all(&path).map_err(|e| {
            Failure::new(format!(
                "cannot create the files directory {}: {e}",
                path.display()
            ))
        })?;
        Ok(FilesDir {
            path,
            temporary: None,
        })
    }

    fn remove(self) {
        if let Some(dir) = self.temporary {
            let _ = dir.close();
        }
    }
}

/// The fileManager plugin of broker `args.broker_id` for `args.app`, over its own connection.
async fn start_file_manager(
    addr: &BrokerAddr,
    args: &DevArgs,
    files: &FilesDir,
) -> Result<LocalFileManager, Failure> {
    let transport = Arc::new(MqttTransport::start(mqtt_config(addr, &None)));
    LocalFileManager::start_local(
        transport,
        args.app.clone(),
        args.broker_id.clone(),
        &files.path,
    )
    .await
    .map_err(|e| Failure::new(format!("cannot start the fileManager: {}", chain(&e))))
}

/// Prints the settings and shows what the platform receives, until Ctrl-C; serves the
/// web view meanwhile unless `--no-web`.
async fn serve_dev(
    args: &DevArgs,
    addr: &BrokerAddr,
    files: &FilesDir,
    store: Option<&LocalStore>,
) -> Result<(), Failure> {
    let mut filters = vec![
        format!("{}/+/log", args.pre_topic),
        format!("{PLATFORM_PREFIX}/+/con_cntr_ready"),
        format!("{PLATFORM_PREFIX}/+/send_data"),
    ];
    if args.all {
        filters.push("ECCI/#".into());
    }
    let transport = MqttTransport::start(mqtt_config(addr, &None));
    let mut events = transport
        .take_events()
        .ok_or_else(|| Failure::new("no event stream"))?;
    let mut web = None;
    let result = async {
        connected(&mut events, addr, CONNECT_TIMEOUT).await?;
        subscribe_all(&transport, &filters).await?;
        if let Some(port) = args.web {
            web = Some(WebView::start(port, args, addr).await?);
        }
        let store_addr = store.map(|s| s.addr());
        let Some(w) = web.as_mut() else {
            let collect = std::future::pending();
            return show_dev(
                args,
                addr,
                files,
                store_addr,
                None,
                &filters,
                &mut events,
                collect,
            )
            .await;
        };
        let page = w.server.addr();
        let collect = async {
            web::collect(&mut w.state, &mut w.events, store, &w.snapshots).await;
            note("the web view's connection ended; the page is no longer updated");
            std::future::pending::<()>().await;
        };
        show_dev(
            args,
            addr,
            files,
            store_addr,
            Some(page),
            &filters,
            &mut events,
            collect,
        )
        .await
    }
    .await;
    if let Some(w) = web {
        w.stop().await;
    }
    transport.close().await;
    result
}

/// The web view: its server, and the connection and model that feed it.
struct WebView {
    server: web::Server,
    transport: MqttTransport,
    events: Events,
    state: web::State,
    snapshots: tokio::sync::watch::Sender<Arc<str>>,
}

impl WebView {
    /// Connects (subscribed to the app traffic and the platform topics) and serves the page
    /// on 127.0.0.1:`port`.
    async fn start(port: u16, args: &DevArgs, addr: &BrokerAddr) -> Result<WebView, Failure> {
        let filters = [
            "ECCI/#".to_owned(),
            format!("{}/+/log", args.pre_topic),
            format!("{PLATFORM_PREFIX}/+/con_cntr_ready"),
            format!("{PLATFORM_PREFIX}/+/send_data"),
        ];
        let transport = MqttTransport::start(mqtt_config(addr, &None));
        let Some(mut events) = transport.take_events() else {
            transport.close().await;
            return Err(Failure::new("no event stream"));
        };
        let subscribed = async {
            connected(&mut events, addr, CONNECT_TIMEOUT).await?;
            subscribe_all(&transport, &filters).await
        };
        if let Err(e) = subscribed.await {
            transport.close().await;
            return Err(e);
        }
        let state = web::State::new(web::Limits::default(), &args.pre_topic);
        let first: Arc<str> = Arc::from(state.snapshot(0).to_string());
        let (snapshots, rx) = tokio::sync::watch::channel(first);
        let server = match web::Server::start(port, rx).await {
            Ok(server) => server,
            Err(e) => {
                transport.close().await;
                return Err(Failure::new(format!(
                    "cannot serve the web view on 127.0.0.1:{port}: {e} (--web-port N, or --no-web)"
                )));
            }
        };
        Ok(WebView {
            server,
            transport,
            events,
            state,
            snapshots,
        })
    }

    async fn stop(self) {
        self.server.stop().await;
        self.transport.close().await;
    }
}

/// Prints the header (settings, where files are kept, how to try it), then the live view.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, each argument a part of the header"
)]
async fn show_dev(
    args: &DevArgs,
    addr: &BrokerAddr,
    files: &FilesDir,
    store: Option<std::net::SocketAddr>,
    page: Option<std::net::SocketAddr>,
    filters: &[String],
    events: &mut Events,
    collect: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    // Listen for Ctrl-C before the header says we are ready: a SIGINT that arrives
    // between the two would otherwise kill the process without cleaning up.
    let mut interrupt = Interrupt::new()?;
    let (b, app) = (&args.broker_id, &args.app);
    let files_dir = files.path.display().to_string();
    let store = store.map_or_else(|| "-".to_owned(), |s| format!("http://{s}"));
    let page = page.map(|p| format!("http://{p}/"));
    let mut out = Out(io::stdout());
    let exports = [
        ("ECCI_LOCAL_BROKER_IP", addr.host.clone()),
        ("ECCI_LOCAL_BROKER_PORT", addr.port.to_string()),
        ("ECCI_LOCAL_BROKER_ID", b.to_string()),
        ("ECCI_APP_ID", app.to_string()),
        ("ECCI_CONTAINER_TYPE", "cloud".into()),
    ];
    let header = if args.json {
        let settings: serde_json::Map<_, _> = exports
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        vec![
            json!({
                "broker": addr.to_string(),
                "settings": settings,
                "files": { "dir": files_dir, "temporary": files.temporary.is_some(), "store": store },
                "watching": filters,
                "web": page,
            })
            .to_string(),
        ]
    } else {
        let q = |s: &str| shell_quote(s);
        let mut lines = vec![format!(
            "# ecci dev: broker on {addr}, broker id {b}, app {app}; Ctrl-C stops it."
        )];
        if let Some(page) = &page {
            lines.push(format!("# Live web view: {page}"));
        }
        lines.push(format!(
            "# fileManager for app {app} on broker {b}: files kept in {files_dir}{}, served on {store}.",
            if files.temporary.is_some() { " (removed on exit)" } else { "" }
        ));
        lines.push("# Settings for every container (each also needs ECCI_CONTAINER_NAME):".into());
        lines.extend(exports.iter().map(|(k, v)| format!("export {k}={}", q(v))));
        lines.extend([
            "# A controller and its components, each in a shell with the exports above:".to_owned(),
            format!(
                "#   ECCI_CONTAINER_NAME=ctrl ECCI_APP_TYPE=controller ECCI_PUB_TARGETS={} cargo run -p examples --example controller",
                q(&format!("{{'worker1': '{b}', 'worker2': '{b}'}}"))
            ),
            format!(
                "#   ECCI_CONTAINER_NAME=worker1 ECCI_APP_TYPE=component ECCI_APP_CONTROLLER_CONTAINER={} ECCI_PUB_TARGETS={} cargo run -p examples --example component",
                q(&format!("{{'ctrl': '{b}'}}")),
                q(&format!("{{'ctrl': '{b}'}}"))
            ),
            "#   (worker2 likewise)".to_owned(),
            "# A file through the fileManager, each in a shell with the exports above:".to_owned(),
            "#   ECCI_CONTAINER_NAME=containerB cargo run -p examples --example file_receiver -- test ./received.py".to_owned(),
            format!(
                "#   ECCI_CONTAINER_NAME=containerA ECCI_PUB_TARGETS={} cargo run -p examples --example file_sender -- ./test.py test containerB",
                q(&format!("{{'containerB': '{b}'}}"))
            ),
            format!("# Watching {}:", filters.join(", ")),
        ]);
        lines
    };
    for l in header {
        if out.line(&l).is_err() {
            return Ok(());
        }
    }

    let style = Style {
        json: args.json,
        max_len: args.max_len,
        pre_topic: args.pre_topic.clone(),
    };
    tokio::select! {
        result = view(&mut interrupt, events, &mut out, &style, None, None) => result,
        () = collect => Ok(()),
    }
}

/// The filters `ecci watch` subscribes to.
pub(crate) fn watch_filters(args: &WatchArgs) -> Vec<String> {
    let b = args.broker_id.as_ref().map_or("+", |b| b.as_str());
    let app = &args.app;
    let mut filters = vec![format!("ECCI/{b}/{app}/#")];
    filters.extend(
        args.mountpoints
            .iter()
            .map(|m| format!("{m}ECCI/{b}/{app}/#")),
    );
    filters.push(format!("{PLATFORM_PREFIX}/#"));
    for t in &args.topics {
        if !filters.contains(t) {
            filters.push(t.clone());
        }
    }
    filters
}

pub(crate) async fn watch(args: WatchArgs) -> Result<(), Failure> {
    let filters = watch_filters(&args);
    let transport = MqttTransport::start(mqtt_config(&args.broker, &args.credentials));
    let mut events = transport
        .take_events()
        .ok_or_else(|| Failure::new("no event stream"))?;
    let mut interrupt = Interrupt::new()?;
    let result = async {
        connected(&mut events, &args.broker, CONNECT_TIMEOUT).await?;
        subscribe_all(&transport, &filters).await?;
        note(&format!(
            "watching {} on {}",
            filters.join(", "),
            args.broker
        ));
        let style = Style {
            json: args.json,
            max_len: args.max_len,
            pre_topic: ecci_proto::topic::DEFAULT_LOG_PRE_TOPIC.to_owned(),
        };
        let mut out = Out(io::stdout());
        view(
            &mut interrupt,
            &mut events,
            &mut out,
            &style,
            args.count,
            Some(args.app.as_str()),
        )
        .await
    }
    .await;
    transport.close().await;
    result
}

pub(crate) async fn send(args: SendArgs) -> Result<(), Failure> {
    let (envelope, priority) = match &args.payload {
        Payload::Data(value) => (Envelope::data(value.clone()), Priority::Bulk),
        Payload::Cmd(name) => (Envelope::cmd(name), Priority::Control),
    };
    let topic = AppTopic::app_message(
        args.broker_id.clone(),
        args.app.clone(),
        args.from.clone(),
        args.to.clone(),
    )
    .to_string();
    let payload = envelope.to_pickle(Protocol::default());
    let size = payload.len();
    let timeout = Duration::from_secs(args.timeout_secs);

    let mut config = mqtt_config(&args.broker, &args.credentials);
    config.connect_timeout = timeout.min(config.connect_timeout);
    let transport = MqttTransport::start(config);
    let mut events = transport
        .take_events()
        .ok_or_else(|| Failure::new("no event stream"))?;
    let result = async {
        connected(&mut events, &args.broker, timeout).await?;
        let message =
            Message::new(topic.as_str(), payload, QoS::ExactlyOnce).with_priority(priority);
        let receipt = transport
            .publish(message)
            .await
            .map_err(|e| Failure::new(format!("cannot publish on {topic}: {}", chain(&e))))?;
        match tokio::time::timeout(timeout, receipt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::new(format!(
                "publish on {topic} failed: {}",
                chain(&e)
            ))),
            Err(_) => Err(Failure::new(format!(
                "the broker did not acknowledge the message on {topic} within {timeout:?}"
            ))),
        }
    }
    .await;
    transport.close().await;
    result?;
    let mut out = Out(io::stdout());
    let _ = out.line(&format!(
        "sent [{}] {} → {} on {topic} ({size} bytes, acknowledged)",
        envelope.kind, args.from, args.to
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("127.0.0.1"), "127.0.0.1");
        assert_eq!(shell_quote("{'a': 'b'}"), r#""{'a': 'b'}""#);
        assert_eq!(shell_quote("it's $x"), r"'it'\''s $x'");
        assert_eq!(shell_quote(""), "\"\"");
        assert_eq!(shell_quote("a b"), "\"a b\"");
    }

    #[test]
    fn filters() {
        let args = WatchArgs {
            broker: BrokerAddr {
                host: "h".into(),
                port: 1,
            },
            app: "app".parse().expect("app"),
            broker_id: None,
            mountpoints: vec!["bridge/+/".into()],
            topics: vec!["x/#".into(), "toEdgeAI/#".into()],
            credentials: None,
            json: false,
            count: None,
            max_len: 10,
        };
        assert_eq!(
            watch_filters(&args),
            ["ECCI/+/app/#", "bridge/+/ECCI/+/app/#", "toEdgeAI/#", "x/#"]
        );
    }
}
