//! The memory bound, measured: decoding a payload of `n` bytes never makes the
//! process hold more than `DECODED_PER_INPUT_BYTE · n + DECODED_BASE` bytes more
//! than before, whether the payload is refused or decoded. Memory is the
//! process's peak resident set (`VmHWM`, reset through `/proc/self/clear_refs`),
//! so this binary runs its cases one after the other in a single test.

use bytes::Bytes;
use ecci_proto::pickle::{
    DECODED_BASE, DECODED_PER_INPUT_BYTE, DecodeError, DecodeLimits, Value, decode, decode_bytes,
};

/// A `/proc/self/status` field in bytes.
fn status_kib(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `f` and returns its result and how much the peak resident set rose above
/// the resident set before it, or `None` where Linux's counters are missing.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS:");
    let out = f();
    let peak = status_kib("VmHWM:");
    let rise = match (reset, before, peak) {
        (true, Some(before), Some(peak)) => Some(peak.saturating_sub(before)),
        _ => None,
    };
    (out, rise)
}

fn binunicode(s: &[u8]) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend(u32::try_from(s.len()).expect("small").to_le_bytes());
    out.extend(s);
    out
}

/// `[x] * refs` where `x` is one 1 MB string, through the memo (what CPython
/// writes for a list holding one string 250 times).
fn one_string_many_times(refs: usize) -> Vec<u8> {
    let mut p = b"\x80\x04]\x94(".to_vec();
    p.extend(binunicode(&vec![b'x'; 1 << 20]));
    p.push(0x94); // MEMOIZE: index 1
    for _ in 1..refs {
        p.extend(b"h\x01");
    }
    p.extend(b"e.");
    p
}

/// Nested: a list holding the 1 MB string twice, referenced `refs` times.
fn nested_pairs(refs: usize) -> Vec<u8> {
    let mut p = b"\x80\x04](".to_vec();
    p.extend(binunicode(&vec![b'y'; 1 << 20]));
    p.extend(b"\x94h\x00\x86\x94"); // (s, s) as memo 1
    for _ in 1..refs {
        p.extend(b"h\x01");
    }
    p.extend(b"e.");
    p
}

/// The same with `bytes`.
fn one_bytes_many_times(refs: usize) -> Vec<u8> {
    let mut p = b"\x80\x04](B\x00\x00\x10\x00".to_vec();
    p.extend(vec![7u8; 1 << 20]);
    p.push(0x94);
    for _ in 1..refs {
        p.extend(b"h\x00");
    }
    p.extend(b"e.");
    p
}

/// `[None] * n`, the densest legitimate pickle.
fn nones(n: usize) -> Vec<u8> {
    let mut p = b"\x80\x04]".to_vec();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        p.push(b'(');
        p.extend(std::iter::repeat_n(b'N', chunk.len()));
        p.push(b'e');
    }
    p.push(b'.');
    p
}

/// A 480×640×3 uint8 frame as numpy 2 pickles it with protocol 4.
fn frame() -> Vec<u8> {
    let mut p = b"\x80\x04\x8c\x16numpy._core.multiarray\x8c\x0c_reconstruct\x93\x8c\x05numpy\x8c\x07ndarray\x93K\x00\x85C\x01b\x87R(K\x01M\xe0\x01M\x80\x02K\x03\x87\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02u1\x89\x88\x87R(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x62\x89\x8e".to_vec();
    p.extend(((480 * 640 * 3) as u64).to_le_bytes());
    p.extend(vec![9u8; 480 * 640 * 3]);
    p.extend(b"t\x62.");
    p
}

type Case = (&'static str, fn() -> Vec<u8>, bool);

/// Name, payload builder, and whether the default limits accept it.
fn cases() -> Vec<Case> {
    vec![
        ("1 MB str x 250", || one_string_many_times(250), false),
        ("1 MB str x 2", || one_string_many_times(2), true),
        ("nested (1 MB str, same) x 125", || nested_pairs(125), false),
        ("1 MB bytes x 250", || one_bytes_many_times(250), false),
        ("[None] * 1M", || nones(1 << 20), true),
        ("480x640x3 frame", frame, true),
    ]
}

#[expect(clippy::print_stdout, reason = "the parent reads the figure")]
/// Decodes case `index` and prints the peak rise, in a process of its own so that
/// memory freed by an earlier case cannot hide this one's.
fn run_case(index: usize) {
    let (name, build, accepted) = cases().swap_remove(index);
    let payload = build();
    let n = payload.len();
    let payload = Bytes::from(payload);
    let limits = DecodeLimits::default();
    let (result, rise) = peak_during(|| decode_bytes(&payload, &limits).map(drop));
    match (&result, accepted) {
        (Ok(()), true) => {}
        (Err(DecodeError::TooLarge { max } | DecodeError::SharedTooLarge { max }), false) => {
            assert!(*max <= DECODED_PER_INPUT_BYTE * n + DECODED_BASE, "{name}");
        }
        other => panic!("{name}: {other:?}"),
    }
    println!("RISE {}", rise.map_or(-1, |r| r as i64));
}

#[test]
#[expect(clippy::print_stderr, reason = "the figures and skips are reported")]
fn no_payload_makes_the_decoder_hold_more_than_the_bound() {
    if let Ok(index) = std::env::var("ECCI_MEMORY_CASE") {
        run_case(index.parse().expect("case index"));
        return;
    }
    let bound = |n: usize| DECODED_PER_INPUT_BYTE * n + DECODED_BASE;
    let mut report = Vec::new();
    for (index, (name, build, _)) in cases().into_iter().enumerate() {
        let n = build().len();
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "no_payload_makes_the_decoder_hold_more_than_the_bound",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ECCI_MEMORY_CASE", index.to_string())
            .output()
            .expect("run the case");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rise: i64 = stdout
            .lines()
            .find_map(|l| l.split_once("RISE ").map(|(_, r)| r))
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name}: no RISE in {stdout}"));
        let Ok(rise) = usize::try_from(rise) else {
            eprintln!("skipped: no VmHWM/clear_refs, {name} checked against the budget only");
            continue;
        };
        report.push(format!(
            "{name}: input {n} B, peak rise {rise} B ({:.1}x)",
            rise as f64 / n as f64
        ));
        assert!(rise <= bound(n), "{name}: held {rise} B for {n} B of input");
    }
    // The frame decodes from a slice too (its pixels copied then).
    let v = decode(&frame(), &DecodeLimits::default()).expect("frame");
    assert_eq!(v.to_string(), "ndarray(uint8, 480×640×3)");
    assert!(matches!(v, Value::NdArray(_)));
    eprintln!("{}", report.join("\n"));
}
