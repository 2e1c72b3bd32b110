//! Tests for reading, building and querying a [`Config`].

use super::*;
use std::collections::HashMap;

const BASE: &[(&str, &str)] = &[
    ("ECCI_LOCAL_BROKER_IP", "10.0.0.1"),
    ("ECCI_LOCAL_BROKER_ID", "b1"),
    ("ECCI_APP_ID", "app"),
    ("ECCI_CONTAINER_NAME", "me"),
];

fn name(s: &str) -> ContainerName {
    ContainerName::new(s).expect("valid test name")
}

fn broker(s: &str) -> BrokerId {
    BrokerId::new(s).expect("valid test broker id")
}

/// The config that [`BASE`] alone yields, as a builder to extend.
fn base() -> ConfigBuilder {
    Config::builder(
        "10.0.0.1",
        broker("b1"),
        AppId::new("app").expect("valid app id"),
        name("me"),
    )
}

/// An error with its chain of sources, joined as `anyhow`'s `{:#}` would.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Reads [`BASE`] overridden by `vars` (an empty value unsets a variable); no warnings.
#[track_caller]
fn check(vars: &[(&str, &str)], expected: Result<ConfigBuilder, &str>) {
    check_warn(vars, expected, &[]);
}

/// As [`check`], with these warnings.
#[track_caller]
fn check_warn(vars: &[(&str, &str)], expected: Result<ConfigBuilder, &str>, warnings: &[&str]) {
    let mut env: HashMap<&str, &str> = BASE.iter().copied().collect();
    env.extend(vars.iter().copied());
    let mut got =
        Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).map_err(|e| chain(&e));
    let got_warnings: Vec<String> = got
        .as_mut()
        .map(|c| std::mem::take(&mut c.warnings))
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expected = expected
        .map(|b| b.build().expect("expected config builds"))
        .map_err(str::to_owned);
    assert_eq!(got, expected, "vars {vars:?}");
    assert_eq!(got_warnings, warnings, "vars {vars:?}");
}

#[test]
fn minimal_and_full() {
    check(&[], Ok(base()));
    check(
        &[
            ("ECCI_LOCAL_BROKER_PORT", "1884"),
            ("ECCI_LOCAL_BROKER_USERNAME", "user"),
            ("ECCI_LOCAL_BROKER_PASSWORD", "pw"),
            ("ECCI_CONTAINER_NAME", "edgeai_app_ctrl"),
            (
                "ECCI_PUB_TARGETS",
                "{'worker1': 'b1', \"worker2\": \"b2\",}",
            ),
            ("ECCI_SUB_OBJECTS", "['alias']"),
            ("ECCI_BRIDGE_MOUNTPOINTS", "['edge1/', 'edge2/']"),
            ("ECCI_CONTAINER_TYPE", "edge"),
            ("ECCI_APP_TYPE", "controller"),
            ("ECCI_APP_CONTROLLER_CONTAINER", "{'global': 'b0'}"),
            ("ECCI_AGENT_ID", "agent-7"),
        ],
        Ok(Config::builder(
            "10.0.0.1",
            broker("b1"),
            AppId::new("app").expect("valid app id"),
            name("edgeai_app_ctrl"),
        )
        .port(1884)
        .credentials(Credentials::new("user", "pw"))
        .pub_target(name("worker1"), broker("b1"))
        .pub_target(name("worker2"), broker("b2"))
        .sub_object(name("alias"))
        .bridge_mountpoint("edge1/")
        .bridge_mountpoint("edge2/")
        .container_type(ContainerType::Edge)
        .app_type(AppType::Controller)
        .controller(name("global"), broker("b0"))
        .agent_id("agent-7")),
    );
}

#[test]
fn required_variables() {
    for var in [
        "ECCI_LOCAL_BROKER_IP",
        "ECCI_LOCAL_BROKER_ID",
        "ECCI_APP_ID",
        "ECCI_CONTAINER_NAME",
    ] {
        check(&[(var, "")], Err(&format!("{var} is unset or empty")));
    }
    check(
        &[("ECCI_LOCAL_BROKER_ID", "b/1")],
        Err(
            "ECCI_LOCAL_BROKER_ID holds an invalid name: broker id \"b/1\" contains '/', which is not allowed in a topic segment",
        ),
    );
    check(
        &[("ECCI_APP_ID", "app+")],
        Err(
            "ECCI_APP_ID holds an invalid name: app id \"app+\" contains '+', which is not allowed in a topic segment",
        ),
    );
    check(
        &[("ECCI_CONTAINER_NAME", "me#")],
        Err(
            "ECCI_CONTAINER_NAME holds an invalid name: container name \"me#\" contains '#', which is not allowed in a topic segment",
        ),
    );
}

#[test]
fn port() {
    check(&[("ECCI_LOCAL_BROKER_PORT", "1884")], Ok(base().port(1884)));
    check(
        &[("ECCI_LOCAL_BROKER_PORT", " 8883\n")],
        Ok(base().port(8883)),
    );
    check(
        &[("ECCI_LOCAL_BROKER_PORT", "65535")],
        Ok(base().port(65535)),
    );
    check(&[("ECCI_LOCAL_BROKER_PORT", "")], Ok(base()));
    for bad in ["abc", "0", "65536", "-1", "18 83", "1883.0"] {
        check(
            &[("ECCI_LOCAL_BROKER_PORT", bad)],
            Err(&format!(
                "ECCI_LOCAL_BROKER_PORT: {bad:?} is not a port number"
            )),
        );
    }
}

#[test]
fn credentials_only_when_both_are_set() {
    let both = Credentials::new("u", "p");
    check(
        &[
            ("ECCI_LOCAL_BROKER_USERNAME", "u"),
            ("ECCI_LOCAL_BROKER_PASSWORD", "p"),
        ],
        Ok(base().credentials(both)),
    );
    check(&[("ECCI_LOCAL_BROKER_USERNAME", "u")], Ok(base()));
    check(&[("ECCI_LOCAL_BROKER_PASSWORD", "p")], Ok(base()));
    check(
        &[
            ("ECCI_LOCAL_BROKER_USERNAME", ""),
            ("ECCI_LOCAL_BROKER_PASSWORD", "p"),
        ],
        Ok(base()),
    );
}

#[test]
fn password_is_not_in_debug() {
    let env = |k: &str| match k {
        "ECCI_LOCAL_BROKER_USERNAME" => Some("user".to_owned()),
        "ECCI_LOCAL_BROKER_PASSWORD" => Some("hunter2-secret".to_owned()),
        _ => BASE
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned()),
    };
    let config = Config::from_lookup(env).expect("valid config");
    assert_eq!(
        config.credentials().map(Credentials::password),
        Some("hunter2-secret")
    );
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("user"), "{debug}");
}

#[test]
fn container_name_prefix() {
    // As given by default, as the newer Python `Client`.
    for given in ["edgeai_app_me", "edgeai_app1_w1", "edgeai_app_"] {
        check(
            &[("ECCI_CONTAINER_NAME", given)],
            Ok(Config::builder(
                "10.0.0.1",
                broker("b1"),
                AppId::new("app").expect("valid app id"),
                name(given),
            )),
        );
    }
    assert!(!EnvOptions::default().strip_platform_prefix);

    // Stripped on request, as the older `MqttClient`.
    let strip = EnvOptions {
        strip_platform_prefix: true,
    };
    let stripped = |given: &str| {
        let lookup = |k: &str| match k {
            "ECCI_CONTAINER_NAME" => Some(given.to_owned()),
            _ => BASE
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned()),
        };
        Config::from_lookup_with(&strip, lookup)
            .map(|c| c.container_name().to_string())
            .map_err(|e| chain(&e))
    };
    assert_eq!(stripped("edgeai_app_me").as_deref(), Ok("me"));
    assert_eq!(stripped("edgeai_3f9a_me").as_deref(), Ok("me"));
    assert_eq!(stripped("edgeai_app_worker_1").as_deref(), Ok("worker_1"));
    assert_eq!(
        stripped("edgeai_app_"),
        Err("ECCI_CONTAINER_NAME holds an invalid name: container name is empty".to_owned())
    );
}

#[test]
fn pub_targets() {
    check(&[("ECCI_PUB_TARGETS", "{}")], Ok(base()));
    check(&[("ECCI_PUB_TARGETS", "")], Ok(base()));
    check(
        &[("ECCI_PUB_TARGETS", "{'z': 'b2', 'a': 'b1', 'm': 'b2'}")],
        Ok(base()
            .pub_target(name("z"), broker("b2"))
            .pub_target(name("a"), broker("b1"))
            .pub_target(name("m"), broker("b2"))),
    );
    check(
        &[("ECCI_PUB_TARGETS", "{'w': 'b1', 'x': 'b1', 'w': 'b2'}")],
        Ok(base()
            .pub_target(name("w"), broker("b2"))
            .pub_target(name("x"), broker("b1"))),
    );
    check(
        &[("ECCI_PUB_TARGETS", "{'containerB': 'broker1' x}")],
        Err(
            "ECCI_PUB_TARGETS is not a Python dict literal of strings: expected ',' or '}' at offset 25, found 'x'",
        ),
    );
    check(
        &[("ECCI_PUB_TARGETS", "['a']")],
        Err(
            "ECCI_PUB_TARGETS is not a Python dict literal of strings: expected '{' at offset 0, found '['",
        ),
    );
    check_warn(
        &[("ECCI_PUB_TARGETS", "{'a': 1, 'b': 'b2'}  # two targets")],
        Ok(base()
            .pub_target(name("a"), broker("1"))
            .pub_target(name("b"), broker("b2"))),
        &[
            "ECCI_PUB_TARGETS: the value of \"a\" is the int 1, not a string; used as \"1\" (as in Python)",
        ],
    );
    check(
        &[("ECCI_PUB_TARGETS", "{'a': [1]}")],
        Err(
            "ECCI_PUB_TARGETS is not a Python dict literal of strings: expected a string, number, True, False or None at offset 6, found '['",
        ),
    );
    check(
        &[("ECCI_PUB_TARGETS", "{'a/b': 'b1'}")],
        Err(
            "ECCI_PUB_TARGETS holds an invalid name: container name \"a/b\" contains '/', which is not allowed in a topic segment",
        ),
    );
    check(
        &[("ECCI_PUB_TARGETS", "{'a': ''}")],
        Err("ECCI_PUB_TARGETS holds an invalid name: broker id is empty"),
    );
}

#[test]
fn sub_objects() {
    check(&[("ECCI_SUB_OBJECTS", "[]")], Ok(base()));
    check(
        &[("ECCI_SUB_OBJECTS", "('x', \"y\", 'x',)")],
        Ok(base().sub_object(name("x")).sub_object(name("y"))),
    );
    check(
        &[("ECCI_SUB_OBJECTS", "'x'")],
        Err(
            "ECCI_SUB_OBJECTS is not a Python list literal of strings: expected '[' or '(' at offset 0, found '\\''",
        ),
    );
    check(
        &[("ECCI_SUB_OBJECTS", "['x+']")],
        Err(
            "ECCI_SUB_OBJECTS holds an invalid name: container name \"x+\" contains '+', which is not allowed in a topic segment",
        ),
    );
}

#[test]
fn bridge_mountpoints() {
    check(&[("ECCI_BRIDGE_MOUNTPOINTS", "[]")], Ok(base()));
    check(
        &[("ECCI_BRIDGE_MOUNTPOINTS", "['edge/x/', 'cloud', 'edge/x/']")],
        Ok(base()
            .bridge_mountpoint("edge/x/")
            .bridge_mountpoint("cloud")),
    );
    check(
        &[("ECCI_BRIDGE_MOUNTPOINTS", "['']")],
        Err(
            "ECCI_BRIDGE_MOUNTPOINTS holds an invalid mountpoint: mountpoint is empty (leave it out instead)",
        ),
    );
    check(
        &[("ECCI_BRIDGE_MOUNTPOINTS", "['ok/', 'a/+/']")],
        Err(
            "ECCI_BRIDGE_MOUNTPOINTS holds an invalid mountpoint: mountpoint \"a/+/\" contains '+', which is not allowed in a topic",
        ),
    );
    check(
        &[("ECCI_BRIDGE_MOUNTPOINTS", "['#']")],
        Err(
            "ECCI_BRIDGE_MOUNTPOINTS holds an invalid mountpoint: mountpoint \"#\" contains '#', which is not allowed in a topic",
        ),
    );
    check(
        &[("ECCI_BRIDGE_MOUNTPOINTS", r"['a\x00']")],
        Err(
            "ECCI_BRIDGE_MOUNTPOINTS holds an invalid mountpoint: mountpoint \"a\\0\" contains '\\0', which is not allowed in a topic",
        ),
    );
    check(
        &[("ECCI_BRIDGE_MOUNTPOINTS", "['a'")],
        Err(
            "ECCI_BRIDGE_MOUNTPOINTS is not a Python list literal of strings: expected ',' or ']' at offset 4, found end of input",
        ),
    );
}

#[test]
fn container_and_app_type() {
    check(
        &[("ECCI_CONTAINER_TYPE", "cloud")],
        Ok(base().container_type(ContainerType::Cloud)),
    );
    check(
        &[("ECCI_CONTAINER_TYPE", "edge")],
        Ok(base().container_type(ContainerType::Edge)),
    );
    check(&[("ECCI_CONTAINER_TYPE", "")], Ok(base()));
    for bad in ["Cloud", "fog", " edge"] {
        check(
            &[("ECCI_CONTAINER_TYPE", bad)],
            Err(&format!(
                "ECCI_CONTAINER_TYPE: {bad:?} is not one of cloud, edge"
            )),
        );
    }
    check(
        &[("ECCI_APP_TYPE", "controller")],
        Ok(base().app_type(AppType::Controller)),
    );
    check(
        &[("ECCI_APP_TYPE", "component")],
        Ok(base().app_type(AppType::Component)),
    );
    check(&[("ECCI_APP_TYPE", "")], Ok(base()));
    for other in ["ctrl", "worker", "Controller"] {
        check_warn(
            &[("ECCI_APP_TYPE", other)],
            Ok(base()),
            &[&format!(
                "ECCI_APP_TYPE is {other:?}, neither controller nor component: this container takes no part in the readiness handshake (as in Python)"
            )],
        );
    }
}

#[test]
fn controller() {
    check(&[("ECCI_APP_CONTROLLER_CONTAINER", "{}")], Ok(base()));
    check(
        &[("ECCI_APP_CONTROLLER_CONTAINER", "{'ctrl': 'b0'}")],
        Ok(base().controller(name("ctrl"), broker("b0"))),
    );
    check(
        &[(
            "ECCI_APP_CONTROLLER_CONTAINER",
            "{'ctrl': 'b0', 'ctrl': 'b2'}",
        )],
        Ok(base().controller(name("ctrl"), broker("b2"))),
    );
    check_warn(
        &[("ECCI_APP_CONTROLLER_CONTAINER", "{'c1': 'b0', 'c2': 'b3'}")],
        Ok(base().controller(name("c2"), broker("b3"))),
        &[
            "ECCI_APP_CONTROLLER_CONTAINER has 2 entries, but a container has one controller; using the last, \"c2\" (as in Python)",
        ],
    );
    check(
        &[("ECCI_APP_CONTROLLER_CONTAINER", "{'c1': 'b0'")],
        Err(
            "ECCI_APP_CONTROLLER_CONTAINER is not a Python dict literal of strings: expected ',' or '}' at offset 11, found end of input",
        ),
    );
}

#[test]
fn agent_id() {
    check(
        &[("ECCI_AGENT_ID", "agent 1")],
        Ok(base().agent_id("agent 1")),
    );
    // Set but empty is "", as Python sends it; unset is None (JSON null).
    check(&[("ECCI_AGENT_ID", "")], Ok(base().agent_id("")));
    check(&[], Ok(base()));
}

#[test]
fn file_origins() {
    check(&[("ECCI_FILE_ORIGINS", "")], Ok(base()));
    check(
        &[(
            "ECCI_FILE_ORIGINS",
            "HTTP://MinIO:9000/, https://s3.example:443 http://[::1]:80,http://minio:9000",
        )],
        Ok(base()
            .file_origin("http://minio:9000")
            .file_origin("https://s3.example")
            .file_origin("http://[::1]")),
    );
    for (entry, reason) in [
        ("minio:9000", "no scheme://"),
        ("ftp://minio", "the scheme is not http or https"),
        (
            "http://minio:9000/bucket",
            "an origin has no path, query or user",
        ),
        ("http://user@minio", "an origin has no path, query or user"),
        ("http://minio:0", "bad port"),
        ("http://minio:99999", "bad port"),
        ("http://", "bad host"),
        ("http://mi*nio", "bad host"),
    ] {
        let expected = format!(
            "ECCI_FILE_ORIGINS: {entry:?} is not an origin like http://host:port ({reason})"
        );
        check(&[("ECCI_FILE_ORIGINS", entry)], Err(&expected));
    }
    // Spaces separate entries: `http://mi` is fine, `nio` is not.
    check(
        &[("ECCI_FILE_ORIGINS", "http://mi nio")],
        Err("ECCI_FILE_ORIGINS: \"nio\" is not an origin like http://host:port (no scheme://)"),
    );
}

#[test]
fn lookup_errors_propagate() {
    let lookup = |variable: &'static str| match variable {
        "ECCI_APP_TYPE" => Err(ConfigError::NotUnicode { variable }),
        _ => Ok(BASE
            .iter()
            .find(|(n, _)| *n == variable)
            .map(|(_, v)| (*v).to_owned())),
    };
    let err = load(&EnvOptions::default(), &lookup).expect_err("lookup fails");
    assert_eq!(err.to_string(), "ECCI_APP_TYPE is not valid unicode");
}

#[test]
fn builder_checks() {
    let built = |b: ConfigBuilder| b.build().map(|_| ()).map_err(|e| chain(&e));
    assert_eq!(built(base()), Ok(()));
    assert_eq!(
        built(Config::builder(
            "",
            broker("b1"),
            AppId::new("a").expect("valid"),
            name("me")
        )),
        Err("ECCI_LOCAL_BROKER_IP is unset or empty".to_owned())
    );
    assert_eq!(
        built(base().port(0)),
        Err("ECCI_LOCAL_BROKER_PORT: \"0\" is not a port number".to_owned())
    );
    assert_eq!(
        built(base().bridge_mountpoint("a/#")),
        Err("ECCI_BRIDGE_MOUNTPOINTS holds an invalid mountpoint: mountpoint \"a/#\" contains '#', which is not allowed in a topic".to_owned())
    );
    assert_eq!(
        built(base().bridge_mountpoint("")),
        Err("ECCI_BRIDGE_MOUNTPOINTS holds an invalid mountpoint: mountpoint is empty (leave it out instead)".to_owned())
    );
}

mod select {
    use super::*;

    fn config() -> Config {
        base()
            .pub_target(name("worker1"), broker("b1"))
            .pub_target(name("store"), broker("b2"))
            .pub_target(name("worker2"), broker("b2"))
            .pub_target(name("work"), broker("b3"))
            .build()
            .expect("valid config")
    }

    #[track_caller]
    fn check(selector: &[&str], expected: Result<&[&str], &str>) {
        let config = config();
        let got = config
            .select_targets(selector)
            .map(|ts| ts.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        assert_eq!(
            got,
            expected.map(<[&str]>::to_vec).map_err(str::to_owned),
            "selector {selector:?}"
        );
    }

    #[test]
    fn by_prefix() {
        check(&["worker"], Ok(&["worker1", "worker2"]));
        check(&["worker1"], Ok(&["worker1"]));
        check(&["work"], Ok(&["worker1", "worker2", "work"]));
        check(&["store", "worker2"], Ok(&["store", "worker2"]));
        check(&["worker2", "store"], Ok(&["store", "worker2"]));
        check(
            &["worker", "worker1", "w"],
            Ok(&["worker1", "worker2", "work"]),
        );
        check(&["nobody", "store"], Ok(&["store"]));
        check(&[""], Ok(&["worker1", "store", "worker2", "work"]));
        check(
            &["nobody"],
            Err(
                "no pub target starts with \"nobody\"; known targets: worker1, store, worker2, work",
            ),
        );
        check(
            &["x", "Worker"],
            Err(
                "no pub target starts with \"x\" or \"Worker\"; known targets: worker1, store, worker2, work",
            ),
        );
        check(
            &["worker10"],
            Err(
                "no pub target starts with \"worker10\"; known targets: worker1, store, worker2, work",
            ),
        );
        // No names: every target, as a publish without targets.
        check(&[], Ok(&["worker1", "store", "worker2", "work"]));
    }

    #[test]
    fn without_targets() {
        let config = base().build().expect("valid config");
        let err = config
            .select_targets(&["a".to_owned()])
            .expect_err("nothing to select");
        assert_eq!(
            err.to_string(),
            "no pub target starts with \"a\"; known targets: none"
        );
        assert_eq!(config.select_targets::<&str>(&[]), Ok(Vec::new()));
    }

    #[test]
    fn grouped_by_broker() {
        let config = config();
        let targets = config
            .select_targets(&["worker", "store", "work"])
            .expect("matches");
        let groups: Vec<(&str, Vec<&str>)> = targets_by_broker(targets)
            .into_iter()
            .map(|(b, names)| (b.as_str(), names.iter().map(|n| n.as_str()).collect()))
            .collect();
        assert_eq!(
            groups,
            [
                ("b1", vec!["worker1"]),
                ("b2", vec!["store", "worker2"]),
                ("b3", vec!["work"])
            ]
        );
        assert!(targets_by_broker(&[]).is_empty());
        let dup = [
            Target::new(name("a"), broker("b1")),
            Target::new(name("a"), broker("b1")),
        ];
        assert_eq!(targets_by_broker(&dup), [(&broker("b1"), vec![&name("a")])]);
    }
}

mod round_trip {
    use super::*;
    use proptest::prelude::*;

    fn valid_name() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9_. '\"\\\\\u{e9}-]{1,10}").expect("valid regex")
    }

    fn py_str(s: &str, double: bool) -> String {
        let q = if double { '"' } else { '\'' };
        let mut out = String::from(q);
        for c in s.chars() {
            if c == q || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push(q);
        out
    }

    proptest! {
        /// Any dict of valid names, written as Python would accept it, reads back
        /// as the same targets in the same order.
        #[test]
        fn pub_targets_read_back(
            entries in proptest::collection::vec((valid_name(), valid_name(), any::<(bool, bool)>()), 0..6),
            space in "[ \t\n]{0,2}",
            trailing_comma in any::<bool>(),
        ) {
            let body: Vec<String> = entries
                .iter()
                .map(|(n, b, (dn, db))| format!("{space}{}{space}:{space}{}", py_str(n, *dn), py_str(b, *db)))
                .collect();
            let comma = if trailing_comma && !entries.is_empty() { "," } else { "" };
            let literal = format!("{space}{{{}{comma}{space}}}{space}", body.join(","));
            let mut expected = base();
            for (n, b, _) in &entries {
                expected = expected.pub_target(name(n), broker(b));
            }
            let env: HashMap<&str, &str> = BASE.iter().copied().chain([("ECCI_PUB_TARGETS", literal.as_str())]).collect();
            let got = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()));
            prop_assert_eq!(got, Ok(expected.build().expect("valid")), "literal {:?}", literal);
        }
    }
}

mod readiness_role {
    use super::*;
    use crate::readiness::{Peer, Role};

    fn peer(n: &str, b: &str) -> Peer {
        Peer::new(name(n), broker(b))
    }

    #[track_caller]
    fn check(builder: ConfigBuilder, expected: Result<Option<Role>, &str>) {
        let config = builder.build().expect("valid config");
        let got = config.readiness_role().map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned));
    }

    #[test]
    fn roles() {
        check(base(), Ok(None));
        check(base().pub_target(name("w1"), broker("b1")), Ok(None));
        check(
            base()
                .app_type(AppType::Component)
                .controller(name("ctrl"), broker("cloud")),
            Ok(Some(Role::Component {
                controller: peer("ctrl", "cloud"),
            })),
        );
        check(
            base().app_type(AppType::Component),
            Err("ECCI_APP_TYPE is component but ECCI_APP_CONTROLLER_CONTAINER is empty"),
        );
        // The global controller: no controller of its own.
        check(
            base()
                .app_type(AppType::Controller)
                .pub_target(name("w1"), broker("b1"))
                .pub_target(name("w2"), broker("b2")),
            Ok(Some(Role::Controller {
                targets: vec![peer("w1", "b1"), peer("w2", "b2")],
                upstream: None,
            })),
        );
        // A local controller reports to its own.
        check(
            base()
                .app_type(AppType::Controller)
                .pub_target(name("w1"), broker("b1"))
                .controller(name("top"), broker("cloud")),
            Ok(Some(Role::Controller {
                targets: vec![peer("w1", "b1")],
                upstream: Some(peer("top", "cloud")),
            })),
        );
    }

    #[test]
    fn from_the_environment() {
        let vars: HashMap<&str, &str> = BASE
            .iter()
            .copied()
            .chain([
                ("ECCI_APP_TYPE", "component"),
                ("ECCI_APP_CONTROLLER_CONTAINER", "{'ctrl': 'cloud'}"),
            ])
            .collect();
        let config =
            Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())).expect("valid config");
        assert_eq!(
            config.readiness_role(),
            Ok(Some(Role::Component {
                controller: peer("ctrl", "cloud"),
            }))
        );
    }
}

#[test]
fn identity_reads_only_what_names_the_container_and_its_broker() {
    let identity = |vars: &[(&str, &str)]| {
        let mut env: HashMap<&str, &str> = BASE.iter().copied().collect();
        env.extend(vars.iter().copied());
        Config::identity_from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).map_err(|e| chain(&e))
    };
    // Wrong values of the variables a logger does not need are not looked at.
    let not_needed = [
        ("ECCI_PUB_TARGETS", "{'unclosed"),
        ("ECCI_SUB_OBJECTS", "nope"),
        ("ECCI_BRIDGE_MOUNTPOINTS", "[1]"),
        ("ECCI_CONTAINER_TYPE", "fog"),
        ("ECCI_APP_TYPE", "boss"),
        ("ECCI_APP_CONTROLLER_CONTAINER", "{'a': 'b', 'c': 'd'}"),
    ];
    assert_eq!(identity(&not_needed), Ok(base().build().unwrap()));
    // The identity variables are read, and checked, as by `from_lookup`.
    assert_eq!(
        identity(&[("ECCI_LOCAL_BROKER_PORT", "1884"), ("ECCI_AGENT_ID", "g")]),
        Ok(base().port(1884).agent_id("g").build().unwrap())
    );
    assert_eq!(
        identity(&[("ECCI_LOCAL_BROKER_PORT", "x")]),
        Err("ECCI_LOCAL_BROKER_PORT: \"x\" is not a port number".to_owned())
    );
    // And the full read still refuses what the identity read ignores.
    let full: HashMap<&str, &str> = BASE.iter().copied().chain(not_needed).collect();
    assert!(Config::from_lookup(|k| full.get(k).map(|v| (*v).to_owned())).is_err());
}

/// Config parity with the Python SDK: each case is read by `Config::from_lookup` and by
/// CPython with wire.md §1's rules (`ast.literal_eval` of the literals, a broker id used
/// as `str(value)`, the last controller entry, a handshake only for `controller` or
/// `component`, the container name and agent id as given), and both must agree; the
/// values that look like mistakes must carry a warning.
#[test]
fn parity_with_the_python_sdk() {
    // (variables over BASE, how many warnings)
    let cases: &[(&[(&str, &str)], usize)] = &[
        (&[], 0),
        (&[("ECCI_PUB_TARGETS", "{'a': 1}")], 1),
        (&[("ECCI_PUB_TARGETS", "{'a': 1, 'b': 2.5, 'c': 'b3'}")], 2),
        (
            &[(
                "ECCI_PUB_TARGETS",
                "{'w1': 'b1', 'w2': 'b2'}  # the workers",
            )],
            0,
        ),
        (
            &[("ECCI_PUB_TARGETS", "{'w1': 'b1', # first\n 'w2': 'b2'}")],
            0,
        ),
        (&[("ECCI_PUB_TARGETS", "{'w': 'b1', 'w': 'b2'}")], 0),
        (&[("ECCI_APP_TYPE", "worker")], 1),
        (&[("ECCI_APP_TYPE", "Component")], 1),
        (
            &[
                ("ECCI_APP_TYPE", "component"),
                ("ECCI_APP_CONTROLLER_CONTAINER", "{'ctrl': 'b0'}"),
            ],
            0,
        ),
        (
            &[
                ("ECCI_APP_TYPE", "component"),
                ("ECCI_APP_CONTROLLER_CONTAINER", "{'c1': 'b0', 'c2': 'b9'}"),
            ],
            1,
        ),
        (
            &[(
                "ECCI_APP_CONTROLLER_CONTAINER",
                "{'c1': 7, 'c2': 'b9', 'c3': 'b8'}",
            )],
            2,
        ),
        (&[("ECCI_CONTAINER_NAME", "edgeai_app1_w1")], 0),
        (&[("ECCI_AGENT_ID", "")], 0),
        (&[("ECCI_AGENT_ID", "agent-7")], 0),
    ];
    let script = r#"
import ast, json, sys
out = []
for env in json.load(sys.stdin):
    targets = ast.literal_eval(env.get("ECCI_PUB_TARGETS") or "{}")
    ctrl = [[k, str(v)] for k, v in ast.literal_eval(env.get("ECCI_APP_CONTROLLER_CONTAINER") or "{}").items()]
    app_type = env.get("ECCI_APP_TYPE")
    out.append({
        "name": env["ECCI_CONTAINER_NAME"],
        "targets": [[k, str(v)] for k, v in targets.items()],
        "controller": ctrl[-1] if ctrl else None,
        "app_type": app_type if app_type in ("controller", "component") else None,
        "agent_id": env.get("ECCI_AGENT_ID"),
    })
json.dump(out, sys.stdout)
"#;
    let envs: Vec<HashMap<&str, &str>> = cases
        .iter()
        .map(|(vars, _)| BASE.iter().chain(vars.iter()).copied().collect())
        .collect();
    let input = serde_json::to_vec(&envs).expect("cases as JSON");
    let output = crate::testutil::python(script, &input);
    let python: Vec<serde_json::Value> =
        serde_json::from_slice(&output).expect("python3 prints JSON");
    assert_eq!(python.len(), cases.len());
    for ((env, (vars, warnings)), py) in envs.iter().zip(cases).zip(python) {
        let config = Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()))
            .unwrap_or_else(|e| panic!("{vars:?}: python starts, rust refuses: {}", chain(&e)));
        let pair = |t: &Target| serde_json::json!([t.name.as_str(), t.broker.as_str()]);
        let ours = serde_json::json!({
            "name": config.container_name().as_str(),
            "targets": config.pub_targets().iter().map(pair).collect::<Vec<_>>(),
            "controller": config.controller().map(pair),
            "app_type": config.app_type().map(AppType::as_str),
            "agent_id": config.agent_id(),
        });
        assert_eq!(ours, py, "vars {vars:?}");
        assert_eq!(
            config.warnings().len(),
            *warnings,
            "vars {vars:?}: {:?}",
            config.warnings()
        );
    }
}
