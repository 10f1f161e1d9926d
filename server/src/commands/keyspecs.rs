//! Which arguments of a command are keys, and how it uses each, found the way Redis
//! 7.0 finds them: from the key specs of the command (or of its subcommand), falling
//! back to a command's own key rules where its specs cannot say (SORT's STORE,
//! MIGRATE's KEYS, the argument-dependent flags of SET and BITFIELD) or where the
//! arguments do not fit a spec (a key count out of range). COMMAND GETKEYS and
//! GETKEYSANDFLAGS show the result; the ACL checks the keys it names.
//!
//! The facts followed (all observable with COMMAND GETKEYS on Redis 7.0.15): specs
//! flagged `not_key` are skipped; a keyword spec whose keyword is absent adds nothing;
//! a spec whose range falls outside the arguments, or a key count that is not a
//! non-negative number, makes the whole answer come from the fallback rules, which
//! find no keys in such arguments.

use super::meta_types::{self, Begin, Find, KeySpec, Meta};
use super::Command;
use crate::util::is_kw;
use bytes::Bytes;

/// One key argument: its position in argv and the key flags that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub pos: usize,
    pub flags: &'static [&'static str],
}

const RO_ACCESS: &[&str] = &["RO", "access"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];
const OW_UPDATE: &[&str] = &["OW", "update"];

/// The metadata of what `argv` runs: the subcommand of a container when `argv`
/// names one Redis knows, else the command itself.
pub fn resolve(cmd: &Command, argv: &[Bytes]) -> Option<&'static Meta> {
    let m = meta_types::meta(cmd.name)?;
    if m.subs.is_empty() {
        return Some(m);
    }
    Some(argv.get(1).and_then(|s| m.sub(s)).unwrap_or(m))
}

/// Whether the command can have key arguments at all (a spec that is not `not_key`).
pub fn has_keys(meta: &Meta) -> bool {
    key_specs(meta).next().is_some()
}

fn key_specs(meta: &Meta) -> impl Iterator<Item = &'static KeySpec> {
    meta.key_specs
        .iter()
        .filter(|s| !s.flags.contains(&"not_key"))
}

/// The keys of `argv` (a call of `cmd`, described by `meta`), in spec order.
pub fn keys(meta: &Meta, argv: &[Bytes]) -> Vec<Key> {
    if key_specs(meta).any(|s| s.flags.contains(&"variable_flags")) {
        return fallback(meta, argv);
    }
    let mut out = Vec::new();
    for spec in key_specs(meta) {
        match spec_range(spec, argv) {
            Range::Absent => {}
            Range::Invalid => return fallback(meta, argv),
            Range::Keys { first, last, step } => {
                out.extend((first..=last).step_by(step).map(|pos| Key {
                    pos,
                    flags: spec.flags,
                }));
                if spec.flags.contains(&"incomplete") {
                    return fallback(meta, argv);
                }
            }
        }
    }
    out
}

/// Where one key spec puts its keys in `argv`.
enum Range {
    /// Its keyword is not there: it names no key.
    Absent,
    /// The arguments do not fit the spec.
    Invalid,
    Keys {
        first: usize,
        last: usize,
        step: usize,
    },
}

fn spec_range(spec: &KeySpec, argv: &[Bytes]) -> Range {
    let argc = argv.len() as i64;
    let first = match spec.begin {
        Begin::Index(i) => i as i64,
        Begin::Keyword(kw, from) => {
            let found = if from > 0 {
                (from as i64..argc).find(|&i| is_kw(&argv[i as usize], kw))
            } else {
                let start = argc + from as i64;
                (1..=start.min(argc - 1))
                    .rev()
                    .find(|&i| is_kw(&argv[i as usize], kw))
            };
            match found {
                Some(i) => i + 1,
                None => return Range::Absent,
            }
        }
        Begin::Unknown => return Range::Invalid,
    };
    let (first, last, step) = match spec.find {
        Find::Range { last, step, limit } => {
            let end = if last >= 0 {
                first + last as i64
            } else if limit == 0 {
                argc + last as i64
            } else {
                first + (argc - first) / limit as i64 + last as i64
            };
            (first, end, step)
        }
        Find::Keynum {
            index,
            first: offset,
            step,
        } => {
            let Some(count) = argv.get((first + index as i64) as usize) else {
                return Range::Invalid;
            };
            let Some(n) = crate::resp::parse_i64(count).filter(|n| *n >= 0) else {
                return Range::Invalid;
            };
            let start = first + offset as i64;
            (start, start.saturating_add(n - 1), step)
        }
        Find::Unknown => return Range::Invalid,
    };
    if first < 1 || first >= argc || last >= argc || last < first {
        return Range::Invalid;
    }
    Range::Keys {
        first: first as usize,
        last: last as usize,
        step: step.max(1) as usize,
    }
}

/// The command's own key rules (Redis's per-command key functions), used when its
/// specs cannot answer.
fn fallback(meta: &Meta, argv: &[Bytes]) -> Vec<Key> {
    let key = |pos, flags| Key { pos, flags };
    match meta.name {
        "sort" => sort_keys(argv),
        "sort_ro" => vec![key(1, RO_ACCESS)],
        "set" => {
            let get = argv.iter().skip(3).any(|a| is_kw(a, "get"));
            vec![key(1, if get { RW_ACCESS_UPDATE } else { OW_UPDATE })]
        }
        "bitfield" => vec![key(1, bitfield_flags(argv))],
        "migrate" => migrate_keys(argv),
        "georadius" | "georadiusbymember" => {
            let mut out = vec![key(1, RO_ACCESS)];
            let mut stored = None;
            let mut i = 5;
            while i < argv.len() {
                if (is_kw(&argv[i], "store") || is_kw(&argv[i], "storedist")) && i + 1 < argv.len()
                {
                    stored = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            out.extend(stored.map(|p| key(p, OW_UPDATE)));
            out
        }
        // Every other command's own rules find no keys where its specs failed (a key
        // count out of range, an XREAD with nothing after STREAMS).
        _ => Vec::new(),
    }
}

/// SORT: the key, and the last STORE's destination; LIMIT takes two arguments and
/// BY and GET one, which are skipped.
fn sort_keys(argv: &[Bytes]) -> Vec<Key> {
    let mut out = vec![Key {
        pos: 1,
        flags: RO_ACCESS,
    }];
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if is_kw(a, "limit") {
            i += 2;
        } else if is_kw(a, "get") || is_kw(a, "by") {
            i += 1;
        } else if is_kw(a, "store") && i + 1 < argv.len() {
            // Not skipped: the next round looks at the destination as an option.
            store = Some(i + 1);
        }
        i += 1;
    }
    out.extend(store.map(|pos| Key {
        pos,
        flags: OW_UPDATE,
    }));
    out
}

/// BITFIELD writes unless every subcommand is a complete GET or OVERFLOW (anything
/// else, a syntax error included, counts as a write).
fn bitfield_flags(argv: &[Bytes]) -> &'static [&'static str] {
    let mut i = 2;
    while i < argv.len() {
        let rest = argv.len() - i - 1;
        let a = &argv[i];
        if is_kw(a, "get") && rest >= 2 {
            i += 3;
        } else if is_kw(a, "overflow") && rest >= 1 {
            i += 2;
        } else {
            return RW_ACCESS_UPDATE;
        }
    }
    RO_ACCESS
}

/// MIGRATE: the key argument, or with KEYS (where the key argument must be empty)
/// everything after KEYS. AUTH's one and AUTH2's two arguments are skipped.
fn migrate_keys(argv: &[Bytes]) -> Vec<Key> {
    let mut first = 3;
    let mut n = 1;
    let mut i = 6;
    while i < argv.len() {
        if is_kw(&argv[i], "auth") {
            i += 2;
            continue;
        }
        if is_kw(&argv[i], "auth2") {
            i += 3;
            continue;
        }
        if is_kw(&argv[i], "keys") {
            if !argv[3].is_empty() {
                return Vec::new();
            }
            first = i + 1;
            n = argv.len() - first;
            break;
        }
        i += 1;
    }
    (first..first + n)
        .filter(|&p| p < argv.len())
        .map(|pos| Key {
            pos,
            flags: RW_ACCESS_DELETE,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(words: &[&str]) -> Vec<(usize, &'static [&'static str])> {
        let argv: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
        let cmd = super::super::lookup(argv[0].as_ref()).expect("command");
        let meta = resolve(cmd, &argv).expect("meta");
        keys(meta, &argv)
            .into_iter()
            .map(|k| (k.pos, k.flags))
            .collect()
    }

    #[test]
    fn specs_ranges_and_keynums() {
        assert_eq!(keys_of(&["get", "a"]), vec![(1, RO_ACCESS)]);
        assert_eq!(
            keys_of(&["mset", "a", "1", "b", "2"]),
            vec![(1, OW_UPDATE), (3, OW_UPDATE)]
        );
        let evals = keys_of(&["eval", "s", "2", "k1", "k2", "a"]);
        assert_eq!(evals.iter().map(|k| k.0).collect::<Vec<_>>(), vec![3, 4]);
        // XREAD: the first half of what follows STREAMS, rounded down.
        let xread = keys_of(&["xread", "count", "1", "streams", "a", "b", "0"]);
        assert_eq!(xread, vec![(4, RO_ACCESS)]);
        assert_eq!(keys_of(&["memory", "usage", "k"]).len(), 1);
    }

    #[test]
    fn counts_out_of_range_find_no_keys() {
        for words in [
            &["eval", "s", "3", "k1"][..],
            &["eval", "s", "-1"],
            &["eval", "s", "x", "k"],
            &["eval", "s", "99999999999", "k1"],
            &["zunionstore", "d", "3", "a", "b"],
            &["xread", "count", "1", "streams", "a"],
        ] {
            assert_eq!(keys_of(words), vec![], "{words:?}");
        }
    }

    #[test]
    fn fallback_rules() {
        assert_eq!(
            keys_of(&["sort", "a", "store", "x", "store", "y"]),
            vec![(1, RO_ACCESS), (5, OW_UPDATE)]
        );
        assert_eq!(
            keys_of(&["sort", "a", "limit", "store", "x", "y"]),
            vec![(1, RO_ACCESS)]
        );
        assert_eq!(
            keys_of(&["set", "a", "b", "GET"]),
            vec![(1, RW_ACCESS_UPDATE)]
        );
        assert_eq!(keys_of(&["set", "a", "b"]), vec![(1, OW_UPDATE)]);
        assert_eq!(
            keys_of(&["bitfield", "a", "get", "u8", "0"]),
            vec![(1, RO_ACCESS)]
        );
        assert_eq!(
            keys_of(&["bitfield", "a", "get", "u8"]),
            vec![(1, RW_ACCESS_UPDATE)]
        );
        assert_eq!(
            keys_of(&["migrate", "h", "1", "", "0", "5", "auth", "keys", "keys", "a"]),
            vec![(9, RW_ACCESS_DELETE)]
        );
        assert_eq!(
            keys_of(&["migrate", "h", "1", "k", "0", "5", "keys", "a"]),
            vec![]
        );
        assert_eq!(
            keys_of(&["georadius", "a", "1", "2", "3", "m", "store"]),
            vec![(1, RO_ACCESS)]
        );
    }
}
