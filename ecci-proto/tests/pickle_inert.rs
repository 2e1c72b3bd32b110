//! Nothing is ever called: pickles that make CPython run a command (creating a
//! marker file) decode here, under every policy, without the marker appearing,
//! and the call they ask for is recorded as data. The same pickles loaded by
//! CPython do create the marker, so this test can fail. And values nested as
//! deep as CPython pickles are decoded, dropped, compared, shown and encoded
//! without recursion trouble.

use std::process::Command;

use ecci_proto::pickle::{
    DecodeLimits, MAX_ENCODABLE_DEPTH, ObjectPolicy, Protocol, Value, decode, encode,
    encode_with_objects,
};

/// CPython writes one pickle per line (hex) that, when loaded, runs
/// `touch MARKER` through every class-building opcode that can call: `REDUCE`
/// (protocols 0–5), `INST`, `OBJ`, and a `BUILD` whose object is built by a
/// call. `NEWOBJ`/`NEWOBJ_EX` are added too (they call `cls.__new__`).
const WRITER: &str = r#"
import os, pickle, sys
marker = sys.argv[1]
cmd = "touch " + marker

class Evil:
    def __reduce__(self):
        return (os.system, (cmd,))

out = [pickle.dumps(Evil(), p) for p in range(6)]
q = repr(cmd).encode()
out.append(b"(S" + q + b"\nios\nsystem\n.")                   # INST
out.append(b"(cos\nsystem\nS" + q + b"\no.")                  # OBJ
out.append(b"cos\nsystem\n(S" + q + b"\ntR}b.")               # REDUCE then BUILD
out.append(b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd.encode() + b"\x85\x81.")  # NEWOBJ
out.append(b"\x80\x04cos\nsystem\n\x8c" + bytes([len(cmd)]) + cmd.encode() + b"\x85}\x92.")  # NEWOBJ_EX
for p in out:
    print(p.hex())
"#;

fn python() -> String {
    std::env::var("ECCI_PYTHON_NUMPY2")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

/// Whether `v` holds an object or a global named `os.system`/`posix.system`
/// whose arguments include `cmd`.
fn records_the_call(v: &Value, cmd: &str) -> bool {
    match v {
        Value::Object(o) => {
            let system =
                o.class.name == "system" && matches!(o.class.module.as_str(), "os" | "posix");
            let has_cmd = o.args.iter().any(|a| a.as_str() == Some(cmd));
            (system && has_cmd) || o.args.iter().any(|a| records_the_call(a, cmd))
        }
        _ => false,
    }
}

#[test]
fn no_code_path_calls_a_global() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let marker = dir.path().join("marker");
    let marker_str = marker.to_str().expect("utf-8 temp path").to_owned();
    let cmd = format!("touch {marker_str}");
    let out = Command::new(python())
        .args(["-c", WRITER, &marker_str])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pickles: Vec<Vec<u8>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            (0..line.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect();
    assert_eq!(pickles.len(), 11);

    for policy in [
        ObjectPolicy::Inert,
        ObjectPolicy::WellKnown,
        ObjectPolicy::Refuse,
    ] {
        let limits = DecodeLimits {
            objects: policy,
            ..DecodeLimits::default()
        };
        for (i, p) in pickles.iter().enumerate() {
            let result = decode(p, &limits);
            assert!(
                !marker.exists(),
                "pickle {i} ran its command under {policy:?}"
            );
            match (policy, result) {
                (ObjectPolicy::Inert, Ok(v)) => {
                    assert!(records_the_call(&v, &cmd), "pickle {i}: {v}");
                    // Showing, comparing and encoding it calls nothing either.
                    let _ = v.to_string();
                    assert_eq!(v, v.clone());
                    let _ = encode(&v, Protocol::V4);
                }
                (ObjectPolicy::Inert, Err(e)) => panic!("pickle {i}: {e}"),
                (_, Ok(v)) => panic!("pickle {i} decoded under {policy:?}: {v}"),
                (_, Err(_)) => {}
            }
        }
    }
    assert!(!marker.exists());

    // The same pickles are live: CPython runs the command (so this test can fail).
    let loader = "import pickle, sys\nfor line in sys.stdin.read().split():\n    \
                  pickle.loads(bytes.fromhex(line))\n";
    let mut child = Command::new(python())
        .args(["-c", loader])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(hex_lines(&pickles[..1]).as_bytes())
            .expect("write");
    }
    assert!(child.wait().expect("python3 ends").success());
    assert!(marker.exists(), "CPython did not run the reference pickle");
}

fn hex_lines(pickles: &[Vec<u8>]) -> String {
    pickles
        .iter()
        .map(|p| p.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect()
}

/// `depth` nested one-item lists around `leaf`, as a pickle (built iteratively).
fn nested_lists(depth: usize) -> Vec<u8> {
    let mut p = b"\x80\x04".to_vec();
    p.extend(std::iter::repeat_n(b']', depth));
    p.push(b'N');
    p.extend(std::iter::repeat_n(b'a', depth));
    p.push(b'.');
    p
}

/// `depth` nested inert objects `C(C(…))`.
fn nested_objects(depth: usize) -> Vec<u8> {
    let mut p = b"\x80\x04".to_vec();
    for _ in 0..depth {
        p.extend(b"\x8c\x08__main__\x8c\x01C\x93");
    }
    p.push(b'N');
    for _ in 0..depth {
        p.extend(b"\x85R");
    }
    p.push(b'.');
    p
}

#[test]
fn what_cpython_nests_decodes_and_drops_on_a_small_stack() {
    // CPython 3.11 pickles tuples 999 deep and lists 499 deep at its default
    // recursion limit; the decoder admits 1000. Dropping, comparing, showing and
    // encoding recurse per level: check them on a quarter of a default thread stack.
    let worker = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            let limits = DecodeLimits::default();
            for input in [
                nested_lists(MAX_ENCODABLE_DEPTH),
                nested_objects(MAX_ENCODABLE_DEPTH),
            ] {
                let v = decode(&input, &limits).expect("as deep as CPython pickles");
                assert_eq!(v, v.clone());
                assert!(v.to_string().len() > MAX_ENCODABLE_DEPTH);
                assert_eq!(v.check_encodable(), Ok(()));
                // (`Debug` recurses: compare without formatting.)
                let again = encode_with_objects(&v, Protocol::V4);
                assert!(decode(&again, &limits).as_ref() == Ok(&v));
                let _ = encode(&v, Protocol::V2);
                drop(v);
            }
            let too_deep = decode(&nested_lists(MAX_ENCODABLE_DEPTH + 1), &limits);
            assert_eq!(
                too_deep.map_err(|e| e.to_string()),
                Err("nesting deeper than 1000".to_owned())
            );
        })
        .expect("spawn");
    worker.join().expect("no stack overflow");
}
