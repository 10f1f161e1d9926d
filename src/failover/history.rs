//! PSYNC2 history comparison: does one copy of the dataset contain another?
//!
//! A Redis 7.0 node describes its position in the replication stream with `master_replid`,
//! `master_replid2`, `second_repl_offset` and `master_repl_offset` (INFO replication).
//! `replid2` is the history this node came from, valid for offsets up to
//! `second_repl_offset - 1` (the last byte of the old history; see REPLICATION.md section 4).
//! These rules mirror the master's PSYNC acceptance rule, applied between two observed nodes:
//! node A "includes" B when a replica at B's position could partially resync from A.

/// The null replication ID Redis reports for "no secondary history".
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// One node's replication position, borrowed from its INFO fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    pub replid: &'a str,
    pub replid2: &'a str,
    pub second_repl_offset: i64,
    pub offset: i64,
}

impl<'a> Position<'a> {
    fn has_replid2(&self) -> bool {
        !self.replid2.is_empty() && self.replid2 != NO_REPLID && self.second_repl_offset > 0
    }

    /// Is the stream point `(id, off)` part of this node's history?
    fn holds(&self, id: &str, off: i64) -> bool {
        if off > self.offset {
            return false;
        }
        id == self.replid
            || (self.has_replid2() && id == self.replid2 && off < self.second_repl_offset)
    }

    /// The names this node's current point goes by. A node that switched history (promotion,
    /// restart from an RDB with replication info) but has not written anything on the new
    /// history yet sits exactly at the end of the old one, so its point can be named by
    /// either ID; without this, a master restarted from an older RDB would look unrelated
    /// to its replicas.
    fn names(&self) -> impl Iterator<Item = (&'a str, i64)> {
        let at_fork = self.has_replid2() && self.offset == self.second_repl_offset - 1;
        std::iter::once((self.replid, self.offset))
            .chain(at_fork.then_some((self.replid2, self.offset)))
    }

    /// Does this node's history contain everything `other` has?
    pub fn includes(&self, other: &Position<'_>) -> bool {
        other.names().any(|(id, off)| self.holds(id, off))
    }

    /// Has this node written on its current history after leaving `replid2`
    /// (i.e. it has been a master that accepted writes since its switch)?
    pub fn wrote_since_fork(&self) -> bool {
        self.has_replid2() && self.offset >= self.second_repl_offset
    }

    /// Is this node's current history a direct successor of `other`'s?
    pub fn descends_from(&self, other: &Position<'_>) -> bool {
        self.has_replid2() && self.replid2 == other.replid && self.replid != other.replid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(replid: &'static str, offset: i64) -> Position<'static> {
        Position {
            replid,
            replid2: NO_REPLID,
            second_repl_offset: -1,
            offset,
        }
    }

    fn forked(
        replid: &'static str,
        from: &'static str,
        second: i64,
        offset: i64,
    ) -> Position<'static> {
        Position {
            replid,
            replid2: from,
            second_repl_offset: second,
            offset,
        }
    }

    #[test]
    fn inclusion_table() {
        let cases = [
            (
                "same history, ahead includes behind",
                at("M", 100),
                at("M", 90),
                true,
            ),
            (
                "same history, behind does not include ahead",
                at("M", 90),
                at("M", 100),
                false,
            ),
            (
                "same position includes itself",
                at("M", 100),
                at("M", 100),
                true,
            ),
            ("unrelated histories", at("M", 100), at("Z", 0), false),
            (
                "promoted node includes a sibling up to the fork",
                forked("X", "M", 1001, 1500),
                at("M", 1000),
                true,
            ),
            (
                "promoted node does not include old-history writes past the fork",
                forked("X", "M", 1001, 1500),
                at("M", 1001),
                false,
            ),
            (
                "old-history node does not include writes on the new history",
                at("M", 1200),
                forked("X", "M", 1001, 1500),
                false,
            ),
            (
                "a node just promoted, no writes yet, is still contained by the old history",
                at("M", 1000),
                forked("X", "M", 1001, 1000),
                true,
            ),
            (
                "master restarted from an older RDB is contained by a replica that went further",
                at("M", 5000),
                forked("Y", "M", 4001, 4000),
                true,
            ),
            (
                "...and does not contain that replica",
                forked("Y", "M", 4001, 4000),
                at("M", 5000),
                false,
            ),
            (
                "a replica that learned the new ID includes a stale sibling",
                forked("X", "M", 1001, 1200),
                at("M", 900),
                true,
            ),
        ];
        for (name, a, b, want) in cases {
            assert_eq!(a.includes(&b), want, "{name}");
        }
    }

    #[test]
    fn writes_since_fork_and_descent() {
        let promoted_idle = forked("X", "M", 1001, 1000);
        let promoted_busy = forked("X", "M", 1001, 1001);
        let old = at("M", 1200);
        assert!(!promoted_idle.wrote_since_fork());
        assert!(promoted_busy.wrote_since_fork());
        assert!(!old.wrote_since_fork());
        assert!(promoted_busy.descends_from(&old));
        assert!(!old.descends_from(&promoted_busy));
        assert!(!at("M", 5).descends_from(&at("M", 1)));
    }
}
