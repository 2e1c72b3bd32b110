//! A real mosquitto, started, stopped and restarted by a test itself, for the fault, TLS and
//! soak tests of every crate (one copy, here, beside the other test kits).
//!
//! The binary is `mosquitto` on `PATH` or in `/usr/sbin` (the Debian package). Without it,
//! [`Mosquitto::start`] prints `skipped: …` to stderr and returns `None` so the test can
//! return at once, unless `ECCI_REQUIRE_BROKER=1` (as in CI) makes that a failure.
//!
//! The default configuration keeps mosquitto's defaults (`max_inflight_messages 20`,
//! `max_queued_messages 1000`) plus `persistence true`, as Debian's packaged config has it:
//! across a broker restart, MQTT can only keep a subscription, and the messages queued for
//! it, in a persistent session that the broker saves.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::MqttConfig;

/// A mosquitto child process on a free loopback port, with its own directory (config,
/// persistence, log); killed and cleaned up when dropped.
///
/// ```no_run
/// # async fn demo() {
/// use ecci_transport::mosquitto::Mosquitto;
/// let Some(mut broker) = Mosquitto::start() else { return }; // no mosquitto here
/// let config = broker.mqtt_config();
/// broker.down().await; // SIGTERM: it saves its sessions
/// broker.up();
/// # }
/// ```
#[derive(Debug)]
pub struct Mosquitto {
    binary: PathBuf,
    /// Removed when the broker is dropped (after the child is killed).
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// The mosquitto binary, if installed; when not, `skipped: …` on stderr
    /// ([`skip::missing`](crate::skip::missing)).
    ///
    /// # Panics
    /// When it is missing and `ECCI_REQUIRE_BROKER=1`.
    pub fn find() -> Option<PathBuf> {
        let candidates = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        let found = candidates
            .into_iter()
            .chain([PathBuf::from("/usr/sbin")])
            .map(|d| d.join("mosquitto"))
            .find(|p| p.is_file());
        if found.is_none() {
            crate::skip::missing(
                "ECCI_REQUIRE_BROKER",
                "no mosquitto binary on PATH or in /usr/sbin (install the mosquitto package)",
            );
        }
        found
    }

    /// A broker with the default configuration (anonymous access, persistence), not started
    /// yet: write files into [`dir`](Self::dir) and call [`configure`](Self::configure) before
    /// [`up`](Self::up) to change it.
    ///
    /// # Panics
    /// When no port or temporary directory can be had.
    pub fn prepare() -> Option<Mosquitto> {
        let binary = Mosquitto::find()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::Builder::new()
            .prefix("mosquitto-")
            .tempdir()
            .expect("temp dir");
        // Started as root, mosquitto drops to its own user, which must be able to save here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let m = Mosquitto {
            binary,
            dir,
            port,
            child: None,
        };
        m.configure(&format!(
            "allow_anonymous true\npersistence true\npersistence_location {}/\n",
            m.dir.path().display()
        ));
        Some(m)
    }

    /// A running broker with the default configuration.
    pub fn start() -> Option<Mosquitto> {
        let mut m = Mosquitto::prepare()?;
        m.up();
        Some(m)
    }

    /// Replaces the configuration after the `listener {port} 127.0.0.1` line with `lines`
    /// (mosquitto.conf syntax); takes effect at the next [`up`](Self::up).
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn configure(&self, lines: &str) {
        let config = format!("listener {} 127.0.0.1\n{lines}", self.port);
        std::fs::write(self.dir.path().join("mosquitto.conf"), config)
            .expect("write mosquitto.conf");
    }

    /// The broker's own directory (config, persistence, log), readable by mosquitto's user.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The listener's port (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running.
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process and waits (at most 10 s) until it accepts connections.
    ///
    /// # Panics
    /// When it cannot be started or does not listen in time; the panic shows its log.
    pub fn up(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log")).expect("log file");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                panic!("mosquitto did not listen within 10 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What mosquitto logged since the last [`up`](Self::up).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// SIGTERM, as a service manager stops it: it saves its sessions and exits. Waits for it.
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .expect("kill");
            assert!(status.success());
            tokio::task::spawn_blocking(move || child.wait())
                .await
                .expect("join")
                .expect("wait");
        }
    }

    /// SIGKILL: a crash; nothing saved since the last autosave is kept.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Transport settings for this broker: plain TCP, reconnect delays capped at 500 ms.
    pub fn mqtt_config(&self) -> MqttConfig {
        let mut c = MqttConfig::new("127.0.0.1", self.port);
        c.backoff.max = Duration::from_millis(500);
        c
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
