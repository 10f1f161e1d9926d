//! The command universe ACL rules talk about: every Redis 7.0.15 command and
//! subcommand with its categories, numbered. The ACL layer does not read the
//! command table itself (it sits below `commands`): the command layer builds one
//! [`Catalog`] from its metadata and passes it in.

use std::collections::HashMap;

/// ACL categories in Redis 7.0's order (the order `ACL CAT` lists them and the
/// order rules are described in). A command's categories are a bit set over this.
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of category `name` (lower case), if it is one.
pub fn category_bit(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1u32 << i)
}

/// One command or subcommand.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Lower case; subcommands are `container|sub`.
    pub name: &'static str,
    pub categories: u32,
    /// Index of the container, for a subcommand.
    pub parent: Option<usize>,
    /// Indexes of the subcommands, for a container.
    pub subs: Vec<usize>,
}

/// Every command, containers followed by their subcommands; an entry's index is its id.
#[derive(Debug, Default)]
pub struct Catalog {
    pub entries: Vec<Entry>,
    index: HashMap<&'static str, usize>,
}

impl Catalog {
    /// Adds a top-level command and its subcommands (`(name, categories)` each).
    pub fn add(&mut self, name: &'static str, categories: u32, subs: &[(&'static str, u32)]) {
        let id = self.entries.len();
        self.index.insert(name, id);
        self.entries.push(Entry {
            name,
            categories,
            parent: None,
            subs: Vec::new(),
        });
        for &(sub, cats) in subs {
            let sid = self.entries.len();
            self.index.insert(sub, sid);
            self.entries.push(Entry {
                name: sub,
                categories: cats,
                parent: Some(id),
                subs: Vec::new(),
            });
            if let Some(e) = self.entries.get_mut(id) {
                e.subs.push(sid);
            }
        }
    }

    /// The id of command or subcommand `name` (any case; `container|sub`).
    pub fn id(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        self.index.get(name.to_ascii_lowercase().as_str()).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: usize) -> Option<&Entry> {
        self.entries.get(id)
    }
}
