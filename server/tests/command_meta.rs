//! COMMAND introspection against Redis 7.0.15: every command and subcommand Tandem
//! lists is described exactly as Redis describes it (RESP2 and RESP3), the list holds
//! subcommands (`client|id`...), and the subcommands COMMAND leaves out are the ones
//! Tandem does not serve.

mod common;
use common::*;

/// Drops the `notes` of key specs (Redis's prose, not carried by Tandem) from a reply.
fn without_notes(r: R) -> R {
    match r {
        R::Map(kv) => R::Map(
            kv.into_iter()
                .filter(|(k, _)| *k != R::bulk("notes"))
                .map(|(k, v)| (k, without_notes(v)))
                .collect(),
        ),
        R::Arr(items) => {
            // RESP2 maps are flat arrays of pairs: drop a "notes" key and its value.
            let mut out = Vec::with_capacity(items.len());
            let mut it = items.into_iter().peekable();
            while let Some(x) = it.next() {
                if x == R::bulk("notes") && matches!(it.peek(), Some(R::Bulk(_))) {
                    it.next();
                    continue;
                }
                out.push(without_notes(x));
            }
            R::Arr(out)
        }
        R::Set(items) => R::Set(items.into_iter().map(without_notes).collect()),
        other => other,
    }
}

fn names(r: R) -> Vec<String> {
    let R::Arr(items) = r else {
        panic!("not an array: {r:?}")
    };
    items
        .into_iter()
        .map(|x| match x {
            R::Bulk(b) => String::from_utf8(b).expect("utf8"),
            other => panic!("not a bulk: {other:?}"),
        })
        .collect()
}

#[test]
fn command_info_of_every_listed_command_and_subcommand_matches_redis_in_resp2_and_resp3() {
    let mut p = Pair::start();
    let listed = names(p.a.cmd("COMMAND LIST"));
    assert!(listed.len() > 190, "{}", listed.len());
    assert!(
        listed.iter().any(|n| n == "client|id"),
        "subcommands listed"
    );
    assert!(listed.iter().any(|n| n == "config|get"));
    let theirs = names(p.b.cmd("COMMAND LIST"));
    for n in &listed {
        assert!(theirs.contains(n), "{n} is not a Redis 7.0.15 command");
    }
    for proto in ["2", "3"] {
        p.a.cmd(&format!("HELLO {proto}"));
        p.b.cmd(&format!("HELLO {proto}"));
        for n in &listed {
            let ra = p.a.cmd_args(&[b"COMMAND", b"INFO", n.as_bytes()]);
            let rb = without_notes(p.b.cmd_args(&[b"COMMAND", b"INFO", n.as_bytes()]));
            if n.contains('|') {
                assert_eq!(ra, rb, "COMMAND INFO {n} (RESP{proto})");
                continue;
            }
            // A container lists only the subcommands Tandem serves: compare the
            // rest of the entry, and each listed subcommand by itself above.
            let (R::Arr(mut a), R::Arr(mut b)) = (ra, rb) else {
                panic!("COMMAND INFO {n}: not arrays")
            };
            let (R::Arr(mut ea), R::Arr(mut eb)) = (a.remove(0), b.remove(0)) else {
                panic!("COMMAND INFO {n}: entries not arrays")
            };
            assert_eq!(ea.len(), 10, "{n}");
            let (sa, sb) = (ea.pop(), eb.pop());
            assert_eq!(ea, eb, "COMMAND INFO {n} (RESP{proto})");
            let count = |s: Option<R>| match s {
                Some(R::Arr(v) | R::Set(v)) => v.len(),
                other => panic!("{n}: subcommands {other:?}"),
            };
            let (ca, cb) = (count(sa), count(sb));
            assert!(ca <= cb, "{n}: {ca} subcommands vs Redis's {cb}");
        }
    }
    // Unknown names: a null in the same place as Redis's.
    p.same(&[
        b"COMMAND",
        b"INFO",
        b"get",
        b"nosuchcommand",
        b"client|nosuch",
    ]);
}

#[test]
fn command_count_list_filters_and_getkeys_match_redis_for_what_tandem_serves() {
    let mut p = Pair::start();
    let count = match p.a.cmd("COMMAND COUNT") {
        R::Int(n) => n as usize,
        other => panic!("{other:?}"),
    };
    let top = names(p.a.cmd("COMMAND LIST"))
        .into_iter()
        .filter(|n| !n.contains('|'))
        .count();
    assert_eq!(count, top, "COUNT counts top-level commands, as Redis does");
    // Filters run over subcommands too.
    let by_pattern = names(p.a.cmd("COMMAND LIST FILTERBY PATTERN client|*"));
    assert!(
        by_pattern.iter().any(|n| n == "client|list"),
        "{by_pattern:?}"
    );
    assert!(by_pattern.iter().all(|n| n.starts_with("client|")));
    let ours: std::collections::BTreeSet<String> =
        names(p.a.cmd("COMMAND LIST FILTERBY ACLCAT dangerous"))
            .into_iter()
            .collect();
    let theirs: std::collections::BTreeSet<String> =
        names(p.b.cmd("COMMAND LIST FILTERBY ACLCAT dangerous"))
            .into_iter()
            .collect();
    assert!(ours.contains("flushall") && ours.contains("config|set"));
    assert!(ours.is_subset(&theirs), "{:?}", ours.difference(&theirs));
    p.same(&[b"COMMAND", b"LIST", b"FILTERBY", b"MODULE", b"x"]);
    p.same(&[b"COMMAND", b"LIST", b"FILTERBY", b"NOPE", b"x"]);
    for args in [
        &[&b"COMMAND"[..], b"GETKEYS", b"SET", b"a", b"b"][..],
        &[b"COMMAND", b"GETKEYS", b"MSET", b"a", b"1", b"b", b"2"],
        &[
            b"COMMAND",
            b"GETKEYS",
            b"ZUNIONSTORE",
            b"d",
            b"2",
            b"x",
            b"y",
        ],
        &[b"COMMAND", b"GETKEYS", b"PING"],
        &[b"COMMAND", b"GETKEYS", b"NOSUCH", b"x"],
        &[b"COMMAND", b"GETKEYS", b"GET"],
        &[b"COMMAND", b"GETKEYSANDFLAGS", b"SET", b"a", b"b"],
        &[
            b"COMMAND",
            b"GETKEYSANDFLAGS",
            b"LMOVE",
            b"s",
            b"d",
            b"LEFT",
            b"RIGHT",
        ],
        &[
            b"COMMAND",
            b"GETKEYSANDFLAGS",
            b"MSET",
            b"a",
            b"1",
            b"b",
            b"2",
        ],
        &[
            b"COMMAND",
            b"GETKEYSANDFLAGS",
            b"ZUNIONSTORE",
            b"d",
            b"2",
            b"x",
            b"y",
        ],
        &[b"COMMAND", b"GETKEYSANDFLAGS", b"RENAME", b"a", b"b"],
        &[b"COMMAND", b"GETKEYSANDFLAGS", b"PING"],
        &[b"COMMAND", b"GETKEYSANDFLAGS"],
        &[b"COMMAND", b"COUNT", b"x"],
        &[b"COMMAND", b"NOPE"],
    ] {
        p.same(args);
    }
}

/// The subcommands COMMAND leaves out are exactly those their container refuses as
/// unknown: nothing listed is missing and nothing served is hidden.
#[test]
fn subcommands_left_out_of_command_list_are_the_unserved_ones() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let listed = names(c.cmd("COMMAND LIST"));
    let missing = tandem_server::commands::meta_types::MISSING_SUBCOMMANDS;
    for full in missing {
        assert!(!listed.iter().any(|n| n == full), "{full} listed");
        let (container, sub) = full.split_once('|').expect("container|sub");
        let r = c.cmd_args(&[container.as_bytes(), sub.as_bytes(), b"x", b"y", b"z"]);
        assert!(
            matches!(&r, R::Err(e) if e.contains("nknown subcommand '")),
            "{full} is served now ({r:?}): take it off MISSING_SUBCOMMANDS"
        );
    }
    // Side-effect free probes of every listed subcommand: none is unknown.
    for full in listed.iter().filter(|n| n.contains('|')) {
        let (container, sub) = full.split_once('|').expect("container|sub");
        if matches!(
            full.as_str(),
            "client|kill" | "client|pause" | "client|reply" | "debug|x"
        ) || [
            "flush",
            "reset",
            "resetstat",
            "rewrite",
            "set",
            "no-evict",
            "setname",
            "unpause",
        ]
        .contains(&sub)
        {
            // Probed with too many arguments: an arity error, never "unknown".
            let args: Vec<&[u8]> = [container.as_bytes(), sub.as_bytes()]
                .into_iter()
                .chain(std::iter::repeat_n(&b"zz"[..], 12))
                .collect();
            let r = c.cmd_args(&args);
            assert!(
                !matches!(&r, R::Err(e) if e.contains("nknown subcommand '")),
                "{full}: {r:?}"
            );
            continue;
        }
        let r = c.cmd_args(&[container.as_bytes(), sub.as_bytes()]);
        assert!(
            !matches!(&r, R::Err(e) if e.contains("nknown subcommand '")),
            "{full}: {r:?}"
        );
    }
}

/// Cluster and module commands answer as a standalone, module-less Redis 7.0 does.
#[test]
fn cluster_and_module_commands_answer_as_a_standalone_redis() {
    let mut p = Pair::start();
    for line in [
        "CLUSTER INFO",
        "CLUSTER HELP",
        "CLUSTER SLOTS",
        "CLUSTER NOSUCH",
        "CLUSTER",
        "ASKING",
        "ASKING x",
        "READONLY",
        "READWRITE",
        "MODULE LIST",
        "MODULE LOAD /nonexistent.so",
        "MODULE LOADEX /nonexistent.so",
        "MODULE UNLOAD x",
        "MODULE NOSUCH",
        "MODULE",
        "RESTORE-ASKING k 0 garbage",
        "RESTORE-ASKING k",
    ] {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        p.same(&args);
    }
    // RESTORE-ASKING restores like RESTORE.
    let dump = p.b.cmd("DUMP nosuch");
    assert_eq!(dump, R::Nil);
    p.same(&[b"SET", b"src", b"hello"]);
    let R::Bulk(payload) = p.a.cmd("DUMP src") else {
        panic!("DUMP")
    };
    p.same(&[b"RESTORE-ASKING", b"dst", b"0", &payload]);
    p.same(&[b"GET", b"dst"]);
}

#[test]
fn memory_subcommands_answer_with_measured_figures() {
    let mut p = Pair::start();
    for line in [
        "MEMORY PURGE",
        "MEMORY STATS x",
        "MEMORY DOCTOR x",
        "MEMORY MALLOC-STATS x",
        "MEMORY NOSUCH",
        "MEMORY USAGE",
    ] {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        p.same(&args);
    }
    for i in 0..100 {
        p.a.cmd(&format!("SET k{i} {}", "v".repeat(100)));
    }
    let R::Arr(stats) = p.a.cmd("MEMORY STATS") else {
        panic!("MEMORY STATS is a map")
    };
    let get = |name: &str| {
        stats
            .chunks(2)
            .find(|kv| kv[0] == R::bulk(name))
            .map(|kv| kv[1].clone())
    };
    assert_eq!(get("keys.count"), Some(R::Int(100)));
    assert_eq!(
        get("db.0"),
        Some(R::Arr(vec![R::bulk("keys"), R::Int(100)]))
    );
    let Some(R::Int(total)) = get("total.allocated") else {
        panic!("total.allocated")
    };
    assert!(total > 100 * 100, "{total}");
    let Some(R::Int(per_key)) = get("keys.bytes-per-key") else {
        panic!("keys.bytes-per-key")
    };
    assert!(per_key >= 100, "{per_key}");
    assert!(matches!(p.a.cmd("MEMORY DOCTOR"), R::Bulk(b) if b.starts_with(b"used memory")));
}

/// COMMAND GETKEYSANDFLAGS for every command and subcommand Tandem serves, each with
/// argument lists cut from a few fillers made to hit key counts (valid, zero,
/// negative, too large), keywords (STORE, KEYS, STREAMS, LIMIT, GET) and arities:
/// the keys, their flags and the errors are Redis 7.0.15's. The same extraction
/// feeds the ACL key checks.
#[test]
fn getkeys_and_flags_match_redis_for_every_command_and_argument_shape() {
    const FILLERS: [[&str; 7]; 6] = [
        ["k1", "k2", "k3", "k4", "k5", "k6", "k7"],
        ["2", "k1", "k2", "v", "STORE", "dst", "x"],
        ["1", "k1", "STREAMS", "a", "b", "0", "0"],
        ["0", "KEYS", "a", "b", "GET", "c", "d"],
        ["-1", "x", "LIMIT", "0", "1", "STORE", "y"],
        ["", "0", "5000", "KEYS", "a", "b", "99999999999"],
    ];
    let mut p = Pair::start();
    let mut calls: Vec<Vec<String>> = Vec::new();
    for m in tandem_server::commands::meta::META {
        if tandem_server::commands::lookup(m.name.as_bytes()).is_none() {
            continue;
        }
        let mut names: Vec<Vec<String>> = vec![vec![m.name.to_string()]];
        for s in m.subs {
            let (c, sub) = s.name.split_once('|').expect("container|sub");
            if tandem_server::commands::meta_types::implemented(s.name) {
                names.push(vec![c.to_string(), sub.to_string()]);
            }
        }
        for words in names {
            for filler in FILLERS {
                for n in 0..=filler.len() {
                    let mut call = vec!["COMMAND".to_string(), "GETKEYSANDFLAGS".to_string()];
                    call.extend(words.iter().cloned());
                    call.extend(filler[..n].iter().map(|s| s.to_string()));
                    calls.push(call);
                }
            }
        }
    }
    assert!(calls.len() > 5000, "{} calls", calls.len());
    let mut differ = Vec::new();
    for call in &calls {
        let args: Vec<&[u8]> = call.iter().map(|s| s.as_bytes()).collect();
        let (ours, theirs) = (p.a.cmd_args(&args), p.b.cmd_args(&args));
        if ours != theirs {
            differ.push(format!("{call:?}: {ours:?} vs {theirs:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ from Redis 7.0.15, first ones:\n{}",
        differ.len(),
        calls.len(),
        differ[..differ.len().min(20)].join("\n")
    );
}
