//! The shape of the command metadata in [`super::meta`] (Redis's `COMMAND INFO` entry),
//! and lookups over it. Behaviour comes from the command table's own flags; this data is
//! what COMMAND INFO/LIST/COUNT/DOCS report and what ACL categories are read from, and a
//! test keeps the two in agreement.

use super::meta::META;

/// Where a key spec starts looking for keys (`begin_search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// At a fixed argument index.
    Index(i32),
    /// After the first `keyword` found from argument `startfrom` (negative: from the end).
    Keyword(&'static str, i32),
    Unknown,
}

/// How a key spec finds the keys once started (`find_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Find {
    /// Keys up to `last` (negative: from the end), every `step`; `limit` divides the rest.
    Range {
        last: i32,
        step: i32,
        limit: i32,
    },
    /// The number of keys is at `index`; keys start at `first`, every `step`.
    Keynum {
        index: i32,
        first: i32,
        step: i32,
    },
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub flags: &'static [&'static str],
    pub begin: Begin,
    pub find: Find,
}

/// One command or subcommand as Redis 7.0.15 describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Lower case; subcommands are `container|sub`.
    pub name: &'static str,
    pub arity: i32,
    pub flags: &'static [&'static str],
    /// Legacy (first key, last key, step).
    pub keys: (i32, i32, i32),
    pub acl: &'static [&'static str],
    pub tips: &'static [&'static str],
    pub key_specs: &'static [KeySpec],
    pub subs: &'static [Meta],
}

impl Meta {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// The subcommand `sub` (any case) of this container.
    pub fn sub(&self, sub: &[u8]) -> Option<&'static Meta> {
        let (_, own) = self.name.split_once('|').unwrap_or((self.name, ""));
        debug_assert!(own.is_empty(), "subcommands have no subcommands");
        self.subs.iter().find(|m| {
            m.name
                .split_once('|')
                .is_some_and(|(_, s)| s.as_bytes().eq_ignore_ascii_case(sub))
        })
    }
}

/// Subcommands in Redis 7.0.15's metadata whose container Tandem has but which Tandem
/// does not implement yet: COMMAND does not list them. (`tests/command_meta.rs` checks
/// that each one listed is unknown to its container and each one not listed is known.)
pub const MISSING_SUBCOMMANDS: &[&str] = &[];

/// Subcommands Tandem serves beyond Redis 7.0.15's table (CLIENT SETINFO, from 7.2, which
/// client libraries send on connect). Any other subcommand missing from the table is
/// refused before the command runs, as Redis refuses it (`exec::refusal`).
pub const EXTRA_SUBCOMMANDS: &[&str] = &["client|setinfo"];

/// Whether `sub` (any case) is one of [`EXTRA_SUBCOMMANDS`] of `container`.
pub fn is_extra(container: &str, sub: &[u8]) -> bool {
    EXTRA_SUBCOMMANDS.iter().any(|full| {
        full.split_once('|')
            .is_some_and(|(c, s)| c == container && s.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// Whether subcommand `full` (`container|sub`) is served.
pub fn implemented(full: &str) -> bool {
    !MISSING_SUBCOMMANDS.contains(&full)
}

/// The metadata of top-level command `name` (lower case).
pub fn meta(name: &str) -> Option<&'static Meta> {
    META.binary_search_by(|m| m.name.cmp(name))
        .ok()
        .and_then(|i| META.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_finds_commands_and_subcommands() {
        assert!(META.windows(2).all(|w| w[0].name < w[1].name));
        let get = meta("get").expect("get");
        assert_eq!((get.arity, get.keys), (2, (1, 1, 1)));
        assert!(get.has_flag("readonly") && get.has_flag("fast"));
        let client = meta("client").expect("client");
        let id = client.sub(b"ID").expect("client|id");
        assert_eq!(id.name, "client|id");
        assert!(meta("nosuch").is_none());
        assert!(client.sub(b"nosuch").is_none());
    }
}
