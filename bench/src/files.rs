//! `files`: a file from container A to container B end to end, through the embedded
//! broker and the local fileManager (LocalStore), with the upload and download legs
//! timed separately and the peak RSS of sender and receiver, next to `curl` PUT and GET
//! against the same store in the same run.
//!
//! Sender and receiver are child processes (this binary again, with
//! `ECCI_BENCH_FILES_ROLE` set), so that each one's peak RSS (`VmHWM`) is its own. They
//! report it from `/proc/self/status` just before they exit, with their timings, on one
//! `RESULT` line.
//!
//! Targets: each leg at least 80 % of curl's rate; peak RSS at most 40 MiB on both sides.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecci_client::Client;
use ecci_files::local::LocalFileManager;
use ecci_files::sigv4::Method;
use ecci_proto::config::{Config, ContainerType};
use ecci_transport::broker::Broker;
use ecci_transport::{MqttConfig, MqttTransport};

use crate::table::{Runs, SPREAD_NOTE, Table};

const MIB: u64 = 1024 * 1024;
const SIZES: &[(&str, u64)] = &[("100 MiB", 100 * MIB), ("1 GiB", 1024 * MIB)];
const APP: &str = "bench";
/// Runs per size; the table shows the fastest of each.
const REPEAT: usize = 3;
const ROLE: &str = "ECCI_BENCH_FILES_ROLE";
const TIMEOUT: Duration = Duration::from_secs(600);
/// The targets.
const MIN_VS_CURL: f64 = 0.8;
const MAX_RSS_MIB: f64 = 40.0;

pub(crate) fn run() -> Result<(), String> {
    match std::env::var(ROLE).as_deref() {
        Ok("sender") => return child(sender),
        Ok("receiver") => return child(receiver),
        Ok(other) => return Err(format!("{ROLE}={other:?}: not sender or receiver")),
        Err(_) => {}
    }
    let version = Command::new("curl").arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        return Err(
            "curl is missing: install it (apt-get install curl); it is the reference".into(),
        );
    }
    // Removed at the end, whatever happens.
    let dir = tempfile::Builder::new()
        .prefix("ecci-bench-files-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let broker = rt
        .block_on(Broker::start())
        .map_err(|e| format!("embedded broker: {e}"))?;
    let fm = rt.block_on(async {
        let transport = Arc::new(MqttTransport::start(MqttConfig::new(
            "127.0.0.1",
            broker.port(),
        )));
        LocalFileManager::start_local(
            transport,
            APP.parse().map_err(|e| format!("{e}"))?,
            "b1".parse().map_err(|e| format!("{e}"))?,
            dir.path().join("store"),
        )
        .await
        .map_err(|e| format!("fileManager: {e}"))
    })?;
    let mut table = Table::new(&[
        "size",
        "leg",
        "who",
        "seconds",
        "MiB/s",
        "vs curl",
        "peak RSS MiB",
        "runs",
        "spread",
        "targets",
    ]);
    let mut failures = Vec::new();
    for (label, size) in SIZES {
        let source = dir.path().join("source.bin");
        write_source(&source, *size)?;

        // Interleaved repetitions, best of each: the machine is shared, and a run that
        // another process slowed down says nothing about either client.
        let (mut curl_put, mut curl_get) = (f64::MAX, f64::MAX);
        let fresh = || Measured {
            seconds: f64::MAX,
            rss_mib: 0.0,
        };
        let (mut sent, mut received) = (fresh(), fresh());
        let (mut sent_sha, mut received_sha) = (fresh(), fresh());
        // Seconds of every run: curl, ecci, ecci + sha256; upload then download.
        let mut runs: [[Runs; 3]; 2] = Default::default();
        for _ in 0..REPEAT {
            let (put, get) = curl_round(&fm, dir.path(), &source)?;
            curl_put = curl_put.min(put);
            curl_get = curl_get.min(get);
            runs[0][0].push(put);
            runs[1][0].push(get);
            let (s, r) = ecci_round(&fm, broker.port(), dir.path(), &source, *size, false)?;
            runs[0][1].push(s.seconds);
            runs[1][1].push(r.seconds);
            sent.best_of(s);
            received.best_of(r);
            let (s, r) = ecci_round(&fm, broker.port(), dir.path(), &source, *size, true)?;
            runs[0][2].push(s.seconds);
            runs[1][2].push(r.seconds);
            sent_sha.best_of(s);
            received_sha.best_of(r);
        }
        let _ = std::fs::remove_file(&source);

        let mib = *size as f64 / MIB as f64;
        for ((leg, ours, with_sha, reference), runs) in [
            ("upload (PUT)", &sent, &sent_sha, curl_put),
            ("download (GET)", &received, &received_sha, curl_get),
        ]
        .into_iter()
        .zip(&runs)
        {
            let ratio = reference / ours.seconds;
            let mut missed = Vec::new();
            if ratio < MIN_VS_CURL {
                missed.push(format!("{:.0} % of curl", ratio * 100.0));
            }
            if ours.rss_mib > MAX_RSS_MIB {
                missed.push(format!("peak RSS {:.1} MiB", ours.rss_mib));
            }
            let mut sha_missed = Vec::new();
            if with_sha.rss_mib > MAX_RSS_MIB {
                sha_missed.push(format!("peak RSS {:.1} MiB", with_sha.rss_mib));
            }
            let mut verdict = |missed: &[String]| {
                if missed.is_empty() {
                    "met".to_owned()
                } else {
                    failures.push(format!("files, {label} {leg}: {}", missed.join(", ")));
                    format!("missed: {}", missed.join(", "))
                }
            };
            let (verdict, sha_verdict) = (verdict(&missed), verdict(&sha_missed));
            let row = |who: &str, seconds: f64, rss: Option<f64>, runs: &Runs, verdict: &str| {
                vec![
                    (*label).into(),
                    leg.into(),
                    who.into(),
                    format!("{seconds:.2}"),
                    format!("{:.0}", mib / seconds),
                    rss.map_or(String::new(), |_| {
                        format!("{:.0} %", reference / seconds * 100.0)
                    }),
                    rss.map_or(String::new(), |r| format!("{r:.1}")),
                    runs.count(),
                    runs.spread(),
                    verdict.to_owned(),
                ]
            };
            table.row(row("curl", reference, None, &runs[0], "(reference)"));
            table.row(row(
                "ecci",
                ours.seconds,
                Some(ours.rss_mib),
                &runs[1],
                &verdict,
            ));
            table.row(row(
                "ecci + sha256",
                with_sha.seconds,
                Some(with_sha.rss_mib),
                &runs[2],
                &sha_verdict,
            ));
        }
    }
    table.print();
    println!(
        "\nupload: reqPutURL → PUT → reqTransfer acknowledged, as the sender sees it; download: \
         offer → file renamed in place. ecci: the default options; ecci + sha256: with the \
         optional end-to-end checksum (sender hashes, receiver verifies; information, not a \
         target). curl: the same store, PUT -T and GET -o. Best of {REPEAT} runs each. \
         {SPREAD_NOTE}"
    );
    rt.block_on(fm.shutdown())
        .map_err(|e| format!("fileManager: {e}"))?;
    drop(broker);
    println!(
        "Targets: each leg ≥ {:.0} % of curl, peak RSS ≤ {MAX_RSS_MIB} MiB; {}.",
        MIN_VS_CURL * 100.0,
        if failures.is_empty() {
            "all met"
        } else {
            "see the targets column"
        }
    );
    failures.into_iter().for_each(crate::missed);
    Ok(())
}

/// Writes `size` pseudo-random bytes (not compressible, not all zeros).
fn write_source(path: &Path, size: u64) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("source: {e}"))?;
    let mut out = std::io::BufWriter::new(file);
    let mut block = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut written = 0;
    while written < size {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = (size - written).min(MIB) as usize;
        out.write_all(&block[..n])
            .map_err(|e| format!("source: {e}"))?;
        written += n as u64;
    }
    out.flush().map_err(|e| format!("source: {e}"))?;
    out.get_ref().sync_all().map_err(|e| format!("source: {e}"))
}

/// Runs curl quietly with `args` and returns how long it took, in seconds.
fn curl(args: &[&str]) -> Result<f64, String> {
    let start = Instant::now();
    let status = Command::new("curl")
        .args(["-sS", "-f", "--http1.1"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("curl: {e}"))?;
    if !status.success() {
        return Err(format!("curl failed: {status}"));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// A child process, killed and reaped if the suite gives up on it.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn(role: &str, port: u16, args: &[&str]) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    Command::new(exe)
        .arg("files")
        .env(ROLE, role)
        .env("ECCI_BENCH_ARG", args.join("\n"))
        .env("ECCI_BENCH_PORT", port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .map(Child)
        .map_err(|e| format!("spawning the {role}: {e}"))
}

/// Reads the child's stdout until a line starting with `prefix`; returns the line.
fn wait_line(child: &mut Child, prefix: &str) -> Result<String, String> {
    let child = &mut child.0;
    let out = child.stdout.as_mut().ok_or("no stdout")?;
    // One byte at a time: a buffer could swallow a later line meant for the next call.
    let mut reader = BufReader::with_capacity(1, out);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("child: {e}"))?;
        if n == 0 {
            let status = child.wait().map_err(|e| format!("child: {e}"))?;
            return Err(format!("a child ended ({status}) before saying {prefix}"));
        }
        if line.starts_with(prefix) {
            return Ok(line.trim().to_owned());
        }
    }
}

/// What a child measured.
struct Measured {
    seconds: f64,
    rss_mib: f64,
}

impl Measured {
    /// Keeps the fastest time and the highest peak RSS.
    fn best_of(&mut self, other: Measured) {
        self.seconds = self.seconds.min(other.seconds);
        self.rss_mib = self.rss_mib.max(other.rss_mib);
    }
}

/// curl PUT then GET of `source` against the fileManager's store; seconds of each.
fn curl_round(fm: &LocalFileManager, dir: &Path, source: &Path) -> Result<(f64, f64), String> {
    let store = fm.store().ok_or("the fileManager has no local store")?;
    let url = |method| {
        store
            .presign(method, APP, "curl-ref", Duration::from_secs(3600))
            .map_err(|e| format!("presign: {e}"))
    };
    let put = curl(&["-T", &source.to_string_lossy(), url(Method::Put)?.expose()])?;
    let out = dir.join("curl-out.bin");
    let get = curl(&["-o", &out.to_string_lossy(), url(Method::Get)?.expose()])?;
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(store.object_path(APP, "curl-ref").unwrap_or_default());
    Ok((put, get))
}

/// One transfer from the sender child to the receiver child; what each measured.
fn ecci_round(
    fm: &LocalFileManager,
    port: u16,
    dir: &Path,
    source: &Path,
    size: u64,
    sha256: bool,
) -> Result<(Measured, Measured), String> {
    let out_dir = dir.join("received");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{e}"))?;
    let mut receiver = spawn("receiver", port, &[out_dir.to_string_lossy().as_ref()])?;
    wait_line(&mut receiver, "READY")?;
    let sha = if sha256 { "sha256" } else { "plain" };
    let mut sender = spawn("sender", port, &[source.to_string_lossy().as_ref(), sha])?;
    let sent = result(&mut sender)?;
    let received = result(&mut receiver)?;
    let got = std::fs::metadata(out_dir.join("payload.bin"))
        .map_err(|e| format!("received file: {e}"))?
        .len();
    if got != size {
        return Err(format!("received {got} bytes of {size}"));
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    if let Some(store) = fm.store() {
        let _ = std::fs::remove_file(store.object_path(APP, "payload.bin").unwrap_or_default());
    }
    Ok((sent, received))
}

fn result(child: &mut Child) -> Result<Measured, String> {
    let line = wait_line(child, "RESULT")?;
    let status = child.0.wait().map_err(|e| format!("child: {e}"))?;
    if !status.success() {
        return Err(format!("a child failed: {status}"));
    }
    let mut fields = line.split_whitespace().skip(1);
    let mut next = || -> Result<f64, String> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("bad result line {line:?}"))
    };
    Ok(Measured {
        seconds: next()?,
        rss_mib: next()?,
    })
}

/// Runs a child role and prints its result line, or fails.
fn child(role: fn(&Config, &[String]) -> Result<f64, String>) -> Result<(), String> {
    // `main` takes only suite names as arguments: the role's come through the environment.
    let args: Vec<String> = std::env::var("ECCI_BENCH_ARG")
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let port: u16 = std::env::var("ECCI_BENCH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or("ECCI_BENCH_PORT is not set")?;
    let me = if std::env::var(ROLE).as_deref() == Ok("sender") {
        "sender"
    } else {
        "receiver"
    };
    let config = Config::builder(
        "127.0.0.1",
        "b1".parse().map_err(|e| format!("{e}"))?,
        APP.parse().map_err(|e| format!("{e}"))?,
        me.parse().map_err(|e| format!("{e}"))?,
    )
    .port(port)
    .container_type(ContainerType::Cloud)
    .pub_target(
        "receiver".parse().map_err(|e| format!("{e}"))?,
        "b1".parse().map_err(|e| format!("{e}"))?,
    )
    .build()
    .map_err(|e| format!("{e}"))?;
    let seconds = role(&config, &args)?;
    println!("RESULT {seconds} {}", peak_rss_mib()?);
    Ok(())
}

/// This process's peak resident set size (`VmHWM`), in MiB.
fn peak_rss_mib() -> Result<f64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("{e}"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(kib / 1024.0)
}

fn small_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

fn sender(config: &Config, args: &[String]) -> Result<f64, String> {
    let source = args.first().ok_or("sender: no source path")?.clone();
    small_runtime()?.block_on(async {
        let mut options = ecci_client::ClientOptions::default();
        options.files.sha256 = args.get(1).is_some_and(|a| a == "sha256");
        let client = Client::builder(config.clone())
            .options(options)
            .connect()
            .await
            .map_err(|e| format!("{e}"))?;
        let start = Instant::now();
        let handle = client
            .files()
            .send_file(&source, "payload.bin", "receiver")
            .map_err(|e| format!("send: {e}"))?;
        tokio::time::timeout(TIMEOUT, handle)
            .await
            .map_err(|_| "send timed out")?
            .map_err(|e| format!("send: {e:?}"))?;
        let seconds = start.elapsed().as_secs_f64();
        client.close().await;
        Ok(seconds)
    })
}

fn receiver(config: &Config, args: &[String]) -> Result<f64, String> {
    let dir = PathBuf::from(args.first().ok_or("receiver: no directory")?);
    small_runtime()?.block_on(async {
        let client = Client::connect(config.clone())
            .await
            .map_err(|e| format!("{e}"))?;
        println!("READY");
        let offer = tokio::time::timeout(TIMEOUT, client.files().next_offer())
            .await
            .map_err(|_| "no offer in time")?
            .map_err(|e| format!("{e}"))?;
        let start = Instant::now();
        offer
            .download_into(&dir)
            .await
            .map_err(|e| format!("download: {e:?}"))?;
        let seconds = start.elapsed().as_secs_f64();
        client.close().await;
        Ok(seconds)
    })
}
