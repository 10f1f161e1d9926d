//! Command family: COMMAND (COUNT, LIST, INFO, DOCS, GETKEYS, GETKEYSANDFLAGS, HELP).
//! Introspection answers from Redis 7.0.15's metadata ([`super::meta`]) for the commands
//! and subcommands Tandem has, so clients that read flags, key specs and ACL categories
//! see what Redis would tell them.

use super::connection::{help_reply, unknown_subcommand};
use super::keyspecs;
use super::meta_types::{self, implemented, Begin, Find, KeySpec, Meta};
use super::{err, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use bytes::Bytes;

/// The commands of the table with their metadata, sorted by name.
fn tandem_commands() -> Vec<(&'static Command, Option<&'static Meta>)> {
    let mut v: Vec<_> = super::table()
        .values()
        .map(|c| (c, meta_types::meta(c.name)))
        .collect();
    v.sort_by_key(|(c, _)| c.name);
    v
}

/// The COMMAND DOCS group of a command (its family's).
fn group_of(name: &str) -> &'static str {
    super::FAMILIES
        .iter()
        .find(|(_, _, cmds)| cmds.iter().any(|c| c.name == name))
        .map_or("generic", |(g, _, _)| g)
}

fn implemented_subs(m: &Meta) -> impl Iterator<Item = &'static Meta> + '_ {
    m.subs.iter().filter(|s| implemented(s.name))
}

/// One COMMAND INFO entry, as Redis 7.0 shapes it: name, arity, flags, first key, last
/// key, step, ACL categories, tips, key specs, subcommands.
fn entry(out: &mut Reply, m: &Meta) {
    out.array(10);
    out.bulk(m.name.as_bytes());
    out.int(m.arity as i64);
    out.set(m.flags.len());
    for f in m.flags {
        out.simple(f);
    }
    out.int(m.keys.0 as i64);
    out.int(m.keys.1 as i64);
    out.int(m.keys.2 as i64);
    out.set(m.acl.len());
    for a in m.acl {
        out.simple(a);
    }
    out.set(m.tips.len());
    for t in m.tips {
        out.bulk(t.as_bytes());
    }
    out.set(m.key_specs.len());
    for spec in m.key_specs {
        key_spec(out, spec);
    }
    let subs: Vec<&Meta> = implemented_subs(m).collect();
    if subs.is_empty() {
        out.set(0);
    } else {
        out.array(subs.len());
        for s in subs {
            entry(out, s);
        }
    }
}

/// A key spec map (Redis's free-text `notes` are not carried).
fn key_spec(out: &mut Reply, spec: &KeySpec) {
    out.map(3);
    out.bulk(b"flags");
    out.set(spec.flags.len());
    for f in spec.flags {
        out.simple(f);
    }
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    match spec.begin {
        Begin::Index(i) => {
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.int(i as i64);
        }
        Begin::Keyword(k, from) => {
            out.bulk(b"keyword");
            out.bulk(b"spec");
            out.map(2);
            out.bulk(b"keyword");
            out.bulk(k.as_bytes());
            out.bulk(b"startfrom");
            out.int(from as i64);
        }
        Begin::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    match spec.find {
        Find::Range { last, step, limit } => {
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.int(last as i64);
            out.bulk(b"keystep");
            out.int(step as i64);
            out.bulk(b"limit");
            out.int(limit as i64);
        }
        Find::Keynum { index, first, step } => {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.int(index as i64);
            out.bulk(b"firstkey");
            out.int(first as i64);
            out.bulk(b"keystep");
            out.int(step as i64);
        }
        Find::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
}

/// An entry for a table command Redis does not know (none today): what the table says.
fn bare_entry(out: &mut Reply, c: &Command) {
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(c.arity as i64);
    out.set(0);
    out.int(c.first_key as i64);
    out.int(c.last_key as i64);
    out.int(c.step as i64);
    out.set(0);
    out.set(0);
    out.set(0);
    out.set(0);
}

/// The metadata COMMAND INFO/DOCS report for `name` (`cmd` or `container|sub`), when
/// Tandem serves it.
fn served(name: &[u8]) -> Option<Served> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    match lower.split_once('|') {
        None => {
            let c = super::lookup(name)?;
            Some(match meta_types::meta(c.name) {
                Some(m) => Served::Meta(m),
                None => Served::Bare(c),
            })
        }
        Some((container, sub)) => {
            super::lookup(container.as_bytes())?;
            let m = meta_types::meta(container)?.sub(sub.as_bytes())?;
            implemented(m.name).then_some(Served::Meta(m))
        }
    }
}

enum Served {
    Meta(&'static Meta),
    Bare(&'static Command),
}

fn info_entry(out: &mut Reply, s: &Served) {
    match s {
        Served::Meta(m) => entry(out, m),
        Served::Bare(c) => bare_entry(out, c),
    }
}

/// Every name COMMAND LIST reports: commands, then their served subcommands.
fn all_names() -> Vec<(&'static str, &'static [&'static str])> {
    let mut v = Vec::new();
    for (c, m) in tandem_commands() {
        match m {
            Some(m) => {
                v.push((m.name, m.acl));
                v.extend(implemented_subs(m).map(|s| (s.name, s.acl)));
            }
            None => v.push((c.name, &[][..])),
        }
    }
    v
}

const COMMAND_HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about every command.",
    "COUNT",
    "    Return the number of commands.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return the command names, optionally filtered.",
    "INFO [<command-name> ...]",
    "    Return details about the given commands (all when none is given).",
    "DOCS [<command-name> ...]",
    "    Return documentation about the given commands (all when none is given).",
    "GETKEYS <full-command>",
    "    Return the key arguments of a full command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the key arguments of a full command and their flags.",
    "HELP",
    "    Print this help.",
];

fn sub_arity(argc: usize, n: usize, exact: bool, name: &str) -> CmdResult {
    if (exact && argc != n) || (!exact && argc < n) {
        return Err(CmdError(
            format!("ERR wrong number of arguments for 'command|{name}' command").into(),
        ));
    }
    Ok(())
}

pub fn command(_ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let argc = argv.len();
    if argc == 1 {
        return info_all(out);
    }
    let sub = argv[1].to_ascii_lowercase();
    match &sub[..] {
        b"count" => {
            sub_arity(argc, 2, true, "count")?;
            out.int(super::table().len() as i64);
        }
        b"info" if argc == 2 => info_all(out)?,
        b"info" => {
            out.array(argc - 2);
            for name in &argv[2..] {
                match served(name) {
                    Some(s) => info_entry(out, &s),
                    None => out.null_array(),
                }
            }
        }
        b"docs" => docs(out, &argv[2..]),
        b"list" => list(out, &argv[2..])?,
        b"getkeys" => {
            sub_arity(argc, 3, false, "getkeys")?;
            let keys = keys_of(&argv[2..])?;
            out.array(keys.len());
            for k in keys {
                out.bulk(&argv[2 + k.pos]);
            }
        }
        b"getkeysandflags" => {
            sub_arity(argc, 3, false, "getkeysandflags")?;
            getkeysandflags(out, &argv[2..])?;
        }
        b"help" => {
            sub_arity(argc, 2, true, "help")?;
            help_reply(out, "COMMAND", COMMAND_HELP);
        }
        _ => return Err(unknown_subcommand(&argv[1], "COMMAND")),
    }
    Ok(())
}

fn info_all(out: &mut Reply) -> CmdResult {
    let cmds = tandem_commands();
    out.array(cmds.len());
    for (c, m) in cmds {
        match m {
            Some(m) => entry(out, m),
            None => bare_entry(out, c),
        }
    }
    Ok(())
}

/// COMMAND DOCS: the group of each command and its served subcommands. Redis's summaries,
/// histories and argument trees are its documentation's prose and are not carried.
fn docs(out: &mut Reply, names: &[Bytes]) {
    let wanted: Vec<&Command> = if names.is_empty() {
        tandem_commands().into_iter().map(|(c, _)| c).collect()
    } else {
        names.iter().filter_map(|n| super::lookup(n)).collect()
    };
    out.map(wanted.len());
    for c in wanted {
        out.bulk(c.name.as_bytes());
        let group = group_of(c.name);
        let subs: Vec<&Meta> = meta_types::meta(c.name)
            .map(|m| implemented_subs(m).collect())
            .unwrap_or_default();
        out.map(if subs.is_empty() { 1 } else { 2 });
        out.bulk(b"group");
        out.bulk(group.as_bytes());
        if !subs.is_empty() {
            out.bulk(b"subcommands");
            out.map(subs.len());
            for s in subs {
                out.bulk(s.name.as_bytes());
                out.map(1);
                out.bulk(b"group");
                out.bulk(group.as_bytes());
            }
        }
    }
}

fn list(out: &mut Reply, args: &[Bytes]) -> CmdResult {
    let all = all_names();
    let names: Vec<&str> = match args {
        [] => all.iter().map(|(n, _)| *n).collect(),
        [by, kind, val] if is_kw(by, "filterby") => {
            if is_kw(kind, "pattern") {
                all.iter()
                    .map(|(n, _)| *n)
                    .filter(|n| crate::util::glob_match(val, n.as_bytes(), true))
                    .collect()
            } else if is_kw(kind, "aclcat") {
                let cat = format!("@{}", String::from_utf8_lossy(val).to_lowercase());
                all.iter()
                    .filter(|(_, acl)| acl.contains(&cat.as_str()))
                    .map(|(n, _)| *n)
                    .collect()
            } else if is_kw(kind, "module") {
                Vec::new()
            } else {
                return Err(err::SYNTAX);
            }
        }
        _ => return Err(err::SYNTAX),
    };
    out.array(names.len());
    for n in names {
        out.bulk(n.as_bytes());
    }
    Ok(())
}

/// The keys of the call `args` (the command and its arguments) for GETKEYS and
/// GETKEYSANDFLAGS, with Redis's errors in Redis's order: an unknown command (or
/// unknown subcommand of a container), a command without key arguments, a wrong
/// argument count, and arguments in which no key is found where one must be.
fn keys_of(args: &[Bytes]) -> Result<Vec<keyspecs::Key>, CmdError> {
    let invalid = || CmdError::msg("ERR Invalid command specified");
    let c = super::lookup(&args[0]).ok_or_else(invalid)?;
    let m = meta_types::meta(c.name).ok_or_else(invalid)?;
    let m = match args.get(1) {
        Some(sub) if !m.subs.is_empty() => m.sub(sub).ok_or_else(invalid)?,
        _ => m,
    };
    if !keyspecs::has_keys(m) {
        return Err(CmdError::msg("ERR The command has no key arguments"));
    }
    let argc = args.len() as i64;
    let arity = m.arity as i64;
    if (arity > 0 && arity != argc) || argc < -arity {
        return Err(CmdError::msg(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let keys = keyspecs::keys(m, args);
    if keys.is_empty() && !m.has_flag("no_mandatory_keys") {
        return Err(CmdError::msg("ERR Invalid arguments specified for command"));
    }
    Ok(keys)
}

/// GETKEYSANDFLAGS: each key with the flags of the key spec (or key rule) that
/// found it.
fn getkeysandflags(out: &mut Reply, args: &[Bytes]) -> CmdResult {
    let keys = keys_of(args)?;
    out.array(keys.len());
    for k in keys {
        out.array(2);
        out.bulk(&args[k.pos]);
        out.set(k.flags.len());
        for f in k.flags {
            out.simple(f);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::*;

    /// The behaviour flags of the table and Redis's metadata say the same thing: a
    /// command Redis treats as a write, read-only, admin... is one in Tandem too.
    #[test]
    fn table_flags_arity_and_key_ranges_agree_with_redis_metadata() {
        let mut wrong = Vec::new();
        for (c, m) in tandem_commands() {
            let Some(m) = m else {
                wrong.push(format!("{}: not a Redis 7.0 command", c.name));
                continue;
            };
            if !m.subs.is_empty() {
                // A container: Redis checks each subcommand's flags; the table row of a
                // container carries what its dispatch needs from all of them.
                continue;
            }
            if c.arity != m.arity {
                wrong.push(format!("{}: arity {} vs {}", c.name, c.arity, m.arity));
            }
            for (bit, name) in [
                (WRITE, "write"),
                (READONLY, "readonly"),
                (DENYOOM, "denyoom"),
                (ADMIN, "admin"),
                (PUBSUB, "pubsub"),
                (FAST, "fast"),
                (NO_AUTH, "no_auth"),
                (LOADING, "loading"),
                (STALE, "stale"),
                // `may_replicate` is not in Redis 7.0.15's COMMAND INFO output (PUBLISH has it
                // in the source but does not show it), so it is not compared.
                (NO_SCRIPT, "noscript"),
                (BLOCKING, "blocking"),
            ] {
                if c.is(bit) != m.has_flag(name) {
                    wrong.push(format!(
                        "{}: {name} {} vs {}",
                        c.name,
                        c.is(bit),
                        m.has_flag(name)
                    ));
                }
            }
            if c.keys_fn.is_none() && (c.first_key, c.last_key, c.step) != m.keys {
                wrong.push(format!(
                    "{}: keys {:?} vs {:?}",
                    c.name,
                    (c.first_key, c.last_key, c.step),
                    m.keys
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} mismatches:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}
