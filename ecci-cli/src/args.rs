//! The command line: `ecci dev | watch | send`, their options and their `--help` texts.
//!
//! Parsed with `lexopt` (no dependencies, ~1 kLoC, handles `--opt=value`, `--opt value`,
//! `-h` and non-UTF-8 arguments) rather than clap, whose default features pull in a dozen
//! crates and a derive macro for three subcommands. Every bad argument is a [`UsageError`]:
//! one line that names the argument, and exit code 2.
//!
//! `watch` and `send` take what a flag does not give from the `ECCI_*` variables `ecci dev`
//! prints (and a container has): the broker, its credentials, the app, the broker id and the
//! sender. A flag always wins; a bad variable is a usage error naming the variable.

use std::ffi::OsString;
use std::fmt;

use ecci_proto::{AppId, BrokerId, ContainerName};

pub(crate) const MAIN_HELP: &str = "\
ecci: a local ECCI platform, and tools to watch and talk to ECCI apps over MQTT

Usage: ecci <COMMAND> [OPTIONS]

Commands:
  dev     run a local platform: an MQTT broker, a fileManager and a live view of what the
          platform receives
  watch   print every message of an app on a broker, decoded safely
  send    publish one data or cmd message to a container

Options:
  -h, --help     print help (also: ecci <COMMAND> --help)
  -V, --version  print the version
";

pub(crate) const DEV_HELP: &str = "\
ecci dev: run a local ECCI platform for development

Starts an MQTT broker on 127.0.0.1 and the fileManager plugin on it (for APP on broker B,
serving presigned URLs from an object store on 127.0.0.1), prints the ECCI_* settings to
give containers (as `export` lines; with them the file_sender and file_receiver examples
work), and shows what the platform receives: log records, readiness reports
(con_cntr_ready) and send_data, and with --all the app's own traffic. Runs until Ctrl-C.
It also serves a live web view on 127.0.0.1 (its address printed at start): the app's
containers as a graph with their readiness, the messages between them with rates and
the latest of each decoded safely, logs, platform records, file transfers and errors.
Files sent are kept in a temporary directory removed on exit, or in --files-dir.

Usage: ecci dev [OPTIONS]

Options:
      --port N          the broker's port (default 0: a free one, printed)
      --app APP         the app id in the printed settings (default: demo)
      --broker-id B     the broker id in the printed settings (default: local)
      --pre-topic P     the log records' topic prefix (default: toEdgeAI)
      --files-dir DIR   keep the files sent in DIR (created if missing, kept on exit)
      --all             also show app traffic (ECCI/#), decoded safely
      --json            one JSON object per line instead of text
      --max-len N       cut shown contents after N characters (default: 400)
      --web-port N      serve the live web view on 127.0.0.1:N (default 0: a free one,
                        printed)
      --no-web          no web view
  -h, --help            print this help
";

pub(crate) const WATCH_HELP: &str = "\
ecci watch: print every message of an app on a broker, decoded safely

Subscribes to ECCI/+/APP/# (and MOUNTPOINTECCI/+/APP/# for each --mountpoint) and to
toEdgeAI/# (skipping platform messages whose app_id is another app). An ECCI message is shown as `sender → receiver [type] contents`, the contents
as a Python repr (never executing anything; a bad payload is shown as `undecodable: reason`);
a platform message as its JSON. Runs until Ctrl-C, or until --count messages were shown.

Usage: ecci watch [--broker HOST:PORT] [--app APP] [OPTIONS]

Options:
      --broker HOST:PORT     the broker (port default 1883; IPv6 as [::1]:1883)
                             (default: $ECCI_LOCAL_BROKER_IP:$ECCI_LOCAL_BROKER_PORT)
      --app APP              the app to watch (default: $ECCI_APP_ID)
      --broker-id B          only ECCI topics of broker B (default: every broker, +)
      --mountpoint M         also watch topics bridged under the prefix M (repeatable; may
                             contain + wildcards, e.g. bridge/+/)
      --topic FILTER         also subscribe to FILTER (repeatable)
      --username USER        user name (with --password)
                             (default: $ECCI_LOCAL_BROKER_USERNAME)
      --password PASS        password (with --username)
                             (default: $ECCI_LOCAL_BROKER_PASSWORD)
      --json                 one JSON object per line instead of text: for ECCI topics
                             topic, mountpoint, broker, app, kind, sender, receiver and
                             type and contents (the repr) or error; otherwise topic and
                             json (or error)
      --count N              exit 0 after N messages
      --max-len N            cut shown contents after N characters (default: 400)
  -h, --help                 print this help
";

pub(crate) const SEND_HELP: &str = "\
ecci send: publish one data or cmd message to a container

Publishes {'type': 'data', 'contents': DATA} or {'type': 'cmd', 'contents': {'cmd': NAME}}
as a pickle on ECCI/B/APP/app/FROM/TO at QoS 2, waits until the broker acknowledged it, and
exits 0.

Usage: ecci send --to NAME (--data LITERAL | --cmd NAME) [OPTIONS]

With the settings `ecci dev` prints exported, --to and the message are all it needs.

Options:
      --broker HOST:PORT     the broker (port default 1883; IPv6 as [::1]:1883)
                             (default: $ECCI_LOCAL_BROKER_IP:$ECCI_LOCAL_BROKER_PORT)
      --app APP              the app id (default: $ECCI_APP_ID)
      --broker-id B          the receiver's broker id (default: $ECCI_LOCAL_BROKER_ID)
      --from NAME            the sender's container name (default: $ECCI_CONTAINER_NAME)
      --to NAME              the receiver's container name
      --data LITERAL         the contents: a Python literal or JSON, e.g. \"{'a': [1, b'x', None]}\"
      --cmd NAME             send the command NAME (ready, start, exit, req_ready, …)
      --username USER        user name (with --password)
                             (default: $ECCI_LOCAL_BROKER_USERNAME)
      --password PASS        password (with --username)
                             (default: $ECCI_LOCAL_BROKER_PASSWORD)
      --timeout SECS         give up after SECS seconds without an acknowledgement (default: 10)
  -h, --help                 print this help
";

/// What to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Print this text and exit 0.
    Help(&'static str),
    Version,
    Dev(DevArgs),
    Watch(WatchArgs),
    Send(SendArgs),
}

/// A bad command line: one line naming the argument; exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError {
    /// `ecci` or `ecci send`.
    pub(crate) command: &'static str,
    pub(crate) message: String,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (see {} --help)",
            self.command, self.message, self.command
        )
    }
}

/// A broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug)]
pub(crate) struct DevArgs {
    pub(crate) port: u16,
    pub(crate) app: AppId,
    pub(crate) broker_id: BrokerId,
    pub(crate) pre_topic: String,
    pub(crate) all: bool,
    pub(crate) json: bool,
    pub(crate) max_len: usize,
    /// Where the fileManager keeps objects; a temporary directory when `None`.
    pub(crate) files_dir: Option<std::path::PathBuf>,
    /// The web view's port on 127.0.0.1 (0: a free one); `None` with `--no-web`.
    pub(crate) web: Option<u16>,
}

#[derive(Debug)]
pub(crate) struct WatchArgs {
    pub(crate) broker: BrokerAddr,
    pub(crate) app: AppId,
    pub(crate) broker_id: Option<BrokerId>,
    pub(crate) mountpoints: Vec<String>,
    pub(crate) topics: Vec<String>,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) json: bool,
    pub(crate) count: Option<u64>,
    pub(crate) max_len: usize,
}

/// What `ecci send` sends.
#[derive(Debug)]
pub(crate) enum Payload {
    /// `--data`, parsed.
    Data(ecci_proto::pickle::Value),
    Cmd(String),
}

#[derive(Debug)]
pub(crate) struct SendArgs {
    pub(crate) broker: BrokerAddr,
    pub(crate) app: AppId,
    pub(crate) broker_id: BrokerId,
    pub(crate) from: ContainerName,
    pub(crate) to: ContainerName,
    pub(crate) payload: Payload,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) timeout_secs: u64,
}

const DEFAULT_MAX_LEN: usize = 400;

/// The environment as the parser sees it: a variable's value, `None` when unset.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses the arguments after the program name; `env` supplies the `ECCI_*` defaults.
pub(crate) fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: Env<'_>,
) -> Result<Command, UsageError> {
    let mut p = lexopt::Parser::from_args(args);
    let top = |e: lexopt::Error| usage("ecci", e.to_string());
    use lexopt::Arg::{Long, Short, Value};
    match p.next().map_err(top)? {
        Some(Short('h') | Long("help")) => Ok(Command::Help(MAIN_HELP)),
        Some(Short('V') | Long("version")) => Ok(Command::Version),
        Some(Value(cmd)) => match cmd.to_str() {
            Some("dev") => dev(p),
            Some("watch") => watch(p, env),
            Some("send") => send(p, env),
            Some("help") => Ok(Command::Help(MAIN_HELP)),
            _ => Err(usage("ecci", format!("unknown command {cmd:?}"))),
        },
        Some(other) => Err(usage("ecci", lexopt_err(other.unexpected()))),
        None => Err(usage("ecci", "missing command (dev, watch or send)".into())),
    }
}

fn usage(command: &'static str, message: String) -> UsageError {
    UsageError { command, message }
}

fn lexopt_err(e: lexopt::Error) -> String {
    e.to_string()
}

/// Reads option values for one subcommand, turning every failure into a [`UsageError`].
struct Opts<'e> {
    p: lexopt::Parser,
    command: &'static str,
    env: Env<'e>,
}

impl Opts<'_> {
    fn err(&self, message: String) -> UsageError {
        usage(self.command, message)
    }

    fn next(&mut self) -> Result<Option<lexopt::Arg<'_>>, UsageError> {
        let command = self.command;
        self.p.next().map_err(|e| usage(command, lexopt_err(e)))
    }

    fn string(&mut self, option: &str) -> Result<String, UsageError> {
        let value = self.p.value().map_err(|e| self.err(lexopt_err(e)))?;
        value
            .into_string()
            .map_err(|v| self.err(format!("{option}: {v:?} is not valid UTF-8")))
    }

    fn parsed<T: std::str::FromStr>(&mut self, option: &str, what: &str) -> Result<T, UsageError>
    where
        T::Err: fmt::Display,
    {
        let s = self.string(option)?;
        s.parse()
            .map_err(|e| self.err(format!("{option}: {s:?} is not {what} ({e})")))
    }

    fn required<T>(&self, value: Option<T>, option: &str) -> Result<T, UsageError> {
        value.ok_or_else(|| self.err(format!("missing {option}")))
    }

    /// `value` (a flag's), else the variable `var` parsed by `parse`, else `None`. An empty
    /// variable counts as unset, as in `ecci_proto::config`.
    fn or_env<T>(
        &self,
        value: Option<T>,
        var: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, UsageError> {
        if value.is_some() {
            return Ok(value);
        }
        match (self.env)(var).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse(&v)
                .map(Some)
                .map_err(|e| self.err(format!("{var}={v:?}: {e}"))),
        }
    }

    /// `--broker`, else `ECCI_LOCAL_BROKER_IP` and `ECCI_LOCAL_BROKER_PORT`.
    fn broker(&self, flag: Option<BrokerAddr>) -> Result<BrokerAddr, UsageError> {
        use ecci_proto::config::vars;
        if let Some(addr) = flag {
            return Ok(addr);
        }
        let host = self.or_env(None, vars::LOCAL_BROKER_IP, |h| Ok(h.to_owned()))?;
        let Some(host) = host else {
            return Err(self.err(
                "missing --broker HOST:PORT (or ECCI_LOCAL_BROKER_IP, as `ecci dev` prints)".into(),
            ));
        };
        let port = self.or_env(None, vars::LOCAL_BROKER_PORT, |p| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| "not a port number".to_owned())
        })?;
        Ok(BrokerAddr {
            host,
            port: port.unwrap_or(ecci_proto::config::DEFAULT_PORT),
        })
    }

    /// A required value: the flag's, else the variable's.
    fn flag_or_env<T: std::str::FromStr>(
        &self,
        value: Option<T>,
        flag: &str,
        var: &str,
        what: &str,
    ) -> Result<T, UsageError>
    where
        T::Err: fmt::Display,
    {
        let value = self.or_env(value, var, |v| {
            v.parse().map_err(|e| format!("not {what} ({e})"))
        })?;
        value.ok_or_else(|| self.err(format!("missing {flag} (or {var})")))
    }

    /// The flags' credentials, else both variables' (only when both are set, as a
    /// container uses them).
    fn credentials(
        &self,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<Option<(String, String)>, UsageError> {
        use ecci_proto::config::vars;
        if username.is_none() && password.is_none() {
            let get = |var: &str| (self.env)(var).filter(|v| !v.is_empty());
            return Ok(get(vars::LOCAL_BROKER_USERNAME).zip(get(vars::LOCAL_BROKER_PASSWORD)));
        }
        match (username, password) {
            (Some(u), Some(p)) => Ok(Some((u, p))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.err("--username needs --password".into())),
            (None, Some(_)) => Err(self.err("--password needs --username".into())),
        }
    }
}

fn broker_addr(s: &str) -> Result<BrokerAddr, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing ']' after the IPv6 address".to_owned())?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("unexpected {after:?} after ']'")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("write an IPv6 address in brackets, as [::1]:1883".into());
            }
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        None => ecci_proto::config::DEFAULT_PORT,
        Some(p) => p
            .parse()
            .map_err(|_| format!("{p:?} is not a port number"))?,
    };
    Ok(BrokerAddr {
        host: host.to_owned(),
        port,
    })
}

/// A `--data` value: a literal that a Python peer can load (dict keys hashable, …).
fn data_literal(s: &str) -> Result<ecci_proto::pickle::Value, String> {
    let value =
        crate::literal::parse(s).map_err(|e| format!("not a Python literal or JSON: {e}"))?;
    value
        .check_encodable()
        .map_err(|e| format!("cannot be sent: {e}"))?;
    Ok(value)
}

/// An MQTT topic filter: not empty, no NUL, `#` only as the whole last level, `+` only as
/// a whole level.
fn valid_filter(filter: &str) -> bool {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let ok = match level {
            "#" => levels.peek().is_none(),
            "+" => true,
            other => !other.contains(['+', '#']),
        };
        if !ok {
            return false;
        }
    }
    !filter.is_empty() && !filter.contains('\0') && filter.len() <= usize::from(u16::MAX)
}

fn dev(p: lexopt::Parser) -> Result<Command, UsageError> {
    use lexopt::Arg::{Long, Short};
    let mut o = Opts {
        p,
        command: "ecci dev",
        env: &|_| None,
    };
    let mut args = DevArgs {
        port: 0,
        app: AppId::new("demo").map_err(|e| o.err(e.to_string()))?,
        broker_id: BrokerId::new("local").map_err(|e| o.err(e.to_string()))?,
        pre_topic: ecci_proto::topic::DEFAULT_LOG_PRE_TOPIC.to_owned(),
        all: false,
        json: false,
        max_len: DEFAULT_MAX_LEN,
        files_dir: None,
        web: Some(0),
    };
    while let Some(arg) = o.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(DEV_HELP)),
            Long("files-dir") => {
                let dir = o.p.value().map_err(|e| usage("ecci dev", lexopt_err(e)))?;
                if dir.is_empty() {
                    return Err(o.err("--files-dir: the directory is empty".into()));
                }
                args.files_dir = Some(dir.into());
            }
            Long("port") => args.port = o.parsed("--port", "a port number")?,
            Long("app") => args.app = o.parsed("--app", "an app id")?,
            Long("broker-id") => args.broker_id = o.parsed("--broker-id", "a broker id")?,
            Long("pre-topic") => {
                let s = o.string("--pre-topic")?;
                if s.is_empty() || s.contains(['+', '#', '\0']) {
                    return Err(o.err(format!("--pre-topic: {s:?} is not a topic prefix")));
                }
                args.pre_topic = s;
            }
            Long("all") => args.all = true,
            Long("json") => args.json = true,
            Long("max-len") => args.max_len = o.parsed("--max-len", "a number")?,
            Long("web-port") => args.web = Some(o.parsed("--web-port", "a port number")?),
            Long("no-web") => args.web = None,
            other => {
                let e = other.unexpected();
                return Err(o.err(lexopt_err(e)));
            }
        }
    }
    Ok(Command::Dev(args))
}

fn watch(p: lexopt::Parser, env: Env<'_>) -> Result<Command, UsageError> {
    use lexopt::Arg::{Long, Short};
    let mut o = Opts {
        p,
        command: "ecci watch",
        env,
    };
    let (mut broker, mut app, mut broker_id) = (None, None, None);
    let (mut mountpoints, mut topics) = (Vec::new(), Vec::new());
    let (mut username, mut password) = (None, None);
    let (mut json, mut count, mut max_len) = (false, None, DEFAULT_MAX_LEN);
    while let Some(arg) = o.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(WATCH_HELP)),
            Long("broker") => {
                let s = o.string("--broker")?;
                broker = Some(broker_addr(&s).map_err(|e| o.err(format!("--broker {s:?}: {e}")))?);
            }
            Long("app") => app = Some(o.parsed::<AppId>("--app", "an app id")?),
            Long("broker-id") => {
                broker_id = Some(o.parsed::<BrokerId>("--broker-id", "a broker id")?)
            }
            Long("mountpoint") => {
                let s = o.string("--mountpoint")?;
                if s.contains('#') || !valid_filter(&format!("{s}ECCI/+/app/#")) {
                    return Err(o.err(format!("--mountpoint: {s:?} is not a topic prefix")));
                }
                mountpoints.push(s);
            }
            Long("topic") => {
                let s = o.string("--topic")?;
                if !valid_filter(&s) {
                    return Err(o.err(format!("--topic: {s:?} is not a topic filter")));
                }
                topics.push(s);
            }
            Long("username") => username = Some(o.string("--username")?),
            Long("password") => password = Some(o.string("--password")?),
            Long("json") => json = true,
            Long("count") => count = Some(o.parsed("--count", "a number")?),
            Long("max-len") => max_len = o.parsed("--max-len", "a number")?,
            other => {
                let e = other.unexpected();
                return Err(o.err(lexopt_err(e)));
            }
        }
    }
    use ecci_proto::config::vars;
    Ok(Command::Watch(WatchArgs {
        broker: o.broker(broker)?,
        app: o.flag_or_env(app, "--app APP", vars::APP_ID, "an app id")?,
        broker_id,
        mountpoints,
        topics,
        credentials: o.credentials(username, password)?,
        json,
        count,
        max_len,
    }))
}

fn send(p: lexopt::Parser, env: Env<'_>) -> Result<Command, UsageError> {
    use lexopt::Arg::{Long, Short};
    let mut o = Opts {
        p,
        command: "ecci send",
        env,
    };
    let (mut broker, mut app, mut broker_id, mut from, mut to) = (None, None, None, None, None);
    let mut payload = None;
    let (mut username, mut password) = (None, None);
    let mut timeout_secs = 10;
    while let Some(arg) = o.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(SEND_HELP)),
            Long("broker") => {
                let s = o.string("--broker")?;
                broker = Some(broker_addr(&s).map_err(|e| o.err(format!("--broker {s:?}: {e}")))?);
            }
            Long("app") => app = Some(o.parsed::<AppId>("--app", "an app id")?),
            Long("broker-id") => {
                broker_id = Some(o.parsed::<BrokerId>("--broker-id", "a broker id")?)
            }
            Long("from") => from = Some(o.parsed::<ContainerName>("--from", "a container name")?),
            Long("to") => to = Some(o.parsed::<ContainerName>("--to", "a container name")?),
            Long(opt @ ("data" | "cmd")) => {
                let data = opt == "data";
                if payload.is_some() {
                    return Err(o.err("give one of --data and --cmd, once".into()));
                }
                let s = o.string(if data { "--data" } else { "--cmd" })?;
                payload = Some(if data {
                    Payload::Data(data_literal(&s).map_err(|e| o.err(format!("--data: {e}")))?)
                } else {
                    Payload::Cmd(s)
                });
            }
            Long("username") => username = Some(o.string("--username")?),
            Long("password") => password = Some(o.string("--password")?),
            Long("timeout") => timeout_secs = o.parsed("--timeout", "a number of seconds")?,
            other => {
                let e = other.unexpected();
                return Err(o.err(lexopt_err(e)));
            }
        }
    }
    use ecci_proto::config::vars;
    // As given, as `Config::from_env` reads it by default.
    let from = o.or_env(from, vars::CONTAINER_NAME, |v| {
        ContainerName::new(v).map_err(|e| format!("not a container name ({e})"))
    })?;
    Ok(Command::Send(SendArgs {
        broker: o.broker(broker)?,
        app: o.flag_or_env(app, "--app APP", vars::APP_ID, "an app id")?,
        broker_id: o.flag_or_env(
            broker_id,
            "--broker-id B",
            vars::LOCAL_BROKER_ID,
            "a broker id",
        )?,
        from: o.required(from, "--from NAME (or ECCI_CONTAINER_NAME)")?,
        to: o.required(to, "--to NAME")?,
        payload: o.required(payload, "--data LITERAL or --cmd NAME")?,
        credentials: o.credentials(username, password)?,
        timeout_secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` and shows the outcome: the command's debug form, or the error line.
    #[track_caller]
    fn check(args: &[&str], expected: &str) {
        check_env(args, &[], expected);
    }

    /// [`check`] with the variables `env` set.
    #[track_caller]
    fn check_env(args: &[&str], env: &[(&str, &str)], expected: &str) {
        let lookup = |k: &str| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let got = match parse(args.iter().map(OsString::from), &lookup) {
            Ok(Command::Help(text)) => format!("help: {}", text.lines().next().unwrap_or("")),
            Ok(c) => format!("{c:?}"),
            Err(e) => format!("error: {e}"),
        };
        assert!(
            got.starts_with(expected),
            "{args:?}\n  got: {got}\n want: {expected}…"
        );
    }

    #[test]
    fn commands() {
        check(
            &[],
            "error: ecci: missing command (dev, watch or send) (see ecci --help)",
        );
        check(&["--help"], "help: ecci: a local ECCI platform");
        check(&["frob"], "error: ecci: unknown command \"frob\"");
        check(&["--frob"], "error: ecci: invalid option '--frob'");
        check(&["dev", "--help"], "help: ecci dev:");
        check(&["watch", "-h"], "help: ecci watch:");
        check(&["send", "--help"], "help: ecci send:");
        check(&["dev"], "Dev(DevArgs { port: 0, app: \"demo\"");
        check(&["dev", "--port=1884", "--all"], "Dev(DevArgs { port: 1884");
        check(
            &["dev", "--files-dir", "/tmp/x y"],
            "Dev(DevArgs { port: 0, app: \"demo\", broker_id: \"local\", pre_topic: \"toEdgeAI\", all: false, json: false, max_len: 400, files_dir: Some(\"/tmp/x y\"), web: Some(0) })",
        );
        check(&["dev", "--web-port", "8088"], "Dev(DevArgs { port: 0,");
        check(
            &["dev", "--no-web"],
            "Dev(DevArgs { port: 0, app: \"demo\", broker_id: \"local\", pre_topic: \"toEdgeAI\", all: false, json: false, max_len: 400, files_dir: None, web: None })",
        );
        check(
            &["dev", "--web-port", "x"],
            "error: ecci dev: --web-port: \"x\" is not a port number",
        );
        check(
            &["dev", "--files-dir", ""],
            "error: ecci dev: --files-dir: the directory is empty",
        );
        check(
            &["dev", "--files-dir"],
            "error: ecci dev: missing argument for option '--files-dir'",
        );
        check(
            &["dev", "--port", "x"],
            "error: ecci dev: --port: \"x\" is not a port number",
        );
        check(
            &["dev", "--port"],
            "error: ecci dev: missing argument for option '--port'",
        );
        check(
            &["dev", "--all=yes"],
            "error: ecci dev: unexpected argument for option '--all'",
        );
        check(
            &["dev", "extra"],
            "error: ecci dev: unexpected argument \"extra\"",
        );
        check(
            &["dev", "--app", "a/b"],
            "error: ecci dev: --app: \"a/b\" is not an app id",
        );
        check(
            &["watch", "--app", "a"],
            "error: ecci watch: missing --broker HOST:PORT (or ECCI_LOCAL_BROKER_IP, as `ecci dev` prints)",
        );
        check(
            &["watch", "--broker", "h:99999", "--app", "a"],
            "error: ecci watch: --broker \"h:99999\": \"99999\" is not a port number",
        );
        check(
            &["watch", "--broker", "::1", "--app", "a"],
            "error: ecci watch: --broker \"::1\": write an IPv6 address in brackets",
        );
        check(
            &["watch", "--broker", "h", "--app", "a", "--username", "u"],
            "error: ecci watch: --username needs --password",
        );
        check(
            &["watch", "--broker", "[::1]:1", "--app", "a"],
            "Watch(WatchArgs { broker: BrokerAddr { host: \"::1\", port: 1 }",
        );
        check(
            &["watch", "--broker", "h", "--app", "a"],
            "Watch(WatchArgs { broker: BrokerAddr { host: \"h\", port: 1883 }",
        );
        let send = [
            "send",
            "--broker",
            "h:1",
            "--app",
            "a",
            "--broker-id",
            "b",
            "--from",
            "x",
            "--to",
            "y",
        ];
        check(
            &send,
            "error: ecci send: missing --data LITERAL or --cmd NAME",
        );
        check(
            &[&send[..], &["--cmd", "start", "--data", "1"]].concat(),
            "error: ecci send: give one of --data and --cmd, once",
        );
        check(&[&send[..], &["--cmd", "start"]].concat(), "Send(SendArgs");
        check(
            &["send", "--to", "a+b"],
            "error: ecci send: --to: \"a+b\" is not a container name",
        );
    }

    /// What `ecci dev` prints, as a shell that ran its `export` lines has it.
    const DEV: &[(&str, &str)] = &[
        ("ECCI_LOCAL_BROKER_IP", "127.0.0.1"),
        ("ECCI_LOCAL_BROKER_PORT", "41883"),
        ("ECCI_LOCAL_BROKER_ID", "local"),
        ("ECCI_APP_ID", "demo"),
        ("ECCI_CONTAINER_TYPE", "cloud"),
    ];

    #[test]
    fn defaults_from_ecci_variables() {
        check_env(
            &["send", "--to", "worker1", "--cmd", "start"],
            DEV,
            "error: ecci send: missing --from NAME (or ECCI_CONTAINER_NAME)",
        );
        let me = [DEV, &[("ECCI_CONTAINER_NAME", "ctrl")]].concat();
        check_env(
            &["send", "--to", "worker1", "--cmd", "start"],
            &me,
            "Send(SendArgs { broker: BrokerAddr { host: \"127.0.0.1\", port: 41883 }, app: \"demo\", broker_id: \"local\", from: \"ctrl\", to: \"worker1\", payload: Cmd(\"start\"), credentials: None,",
        );
        // Flags override every variable.
        check_env(
            &[
                "send",
                "--broker",
                "h:1",
                "--app",
                "a",
                "--broker-id",
                "b",
                "--from",
                "x",
                "--to",
                "y",
                "--cmd",
                "go",
            ],
            &me,
            "Send(SendArgs { broker: BrokerAddr { host: \"h\", port: 1 }, app: \"a\", broker_id: \"b\", from: \"x\",",
        );
        // A --broker without a port gets 1883, not ECCI_LOCAL_BROKER_PORT of another host.
        check_env(
            &["watch", "--broker", "other"],
            DEV,
            "Watch(WatchArgs { broker: BrokerAddr { host: \"other\", port: 1883 }, app: \"demo\",",
        );
        check_env(
            &["watch"],
            &[("ECCI_LOCAL_BROKER_IP", "h"), ("ECCI_APP_ID", "demo")],
            "Watch(WatchArgs { broker: BrokerAddr { host: \"h\", port: 1883 }, app: \"demo\", broker_id: None,",
        );
        // Credentials: both variables, or the flags.
        let auth = [
            DEV,
            &[
                ("ECCI_LOCAL_BROKER_USERNAME", "u"),
                ("ECCI_LOCAL_BROKER_PASSWORD", "p"),
            ],
        ]
        .concat();
        check_env(&["watch"], &auth, "Watch(WatchArgs {");
        let parsed = parse(["watch"].iter().map(OsString::from), &|k: &str| {
            auth.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        let Ok(Command::Watch(w)) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(w.credentials, Some(("u".to_owned(), "p".to_owned())));
        // An empty variable is unset; a bad one is named.
        check_env(
            &["watch"],
            &[("ECCI_LOCAL_BROKER_IP", ""), ("ECCI_APP_ID", "demo")],
            "error: ecci watch: missing --broker HOST:PORT",
        );
        check_env(
            &["watch"],
            &[("ECCI_LOCAL_BROKER_IP", "h"), ("ECCI_APP_ID", "a/b")],
            "error: ecci watch: ECCI_APP_ID=\"a/b\": not an app id",
        );
        check_env(
            &["watch", "--app", "a/b"],
            &[("ECCI_LOCAL_BROKER_IP", "h")],
            "error: ecci watch: --app: \"a/b\" is not an app id",
        );
        check_env(
            &["watch", "--app", "x"],
            &[
                ("ECCI_LOCAL_BROKER_IP", "h"),
                ("ECCI_LOCAL_BROKER_PORT", "99999"),
            ],
            "error: ecci watch: ECCI_LOCAL_BROKER_PORT=\"99999\": not a port number",
        );
        // A bad variable a flag replaces does not matter.
        check_env(
            &["watch", "--app", "x", "--broker", "h:7"],
            &[
                ("ECCI_LOCAL_BROKER_IP", "h"),
                ("ECCI_LOCAL_BROKER_PORT", "x"),
                ("ECCI_APP_ID", "a/b"),
            ],
            "Watch(WatchArgs { broker: BrokerAddr { host: \"h\", port: 7 }, app: \"x\"",
        );
    }
}
