//! The master's PSYNC decision (Redis `masterTryPartialResynchronization`), as a pure
//! function over the replication history so it can be tested with a table.

/// What this node knows about its replication history.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    pub replid: &'a str,
    pub replid2: &'a str,
    pub second_replid_offset: i64,
    pub master_repl_offset: i64,
    /// (first_byte, histlen) of the backlog, if one exists.
    pub backlog: Option<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept: send the backlog from `from` (the requested offset) to the end.
    Continue { from: i64, len: i64 },
    /// `PSYNC ? -1` (or legacy SYNC): a full resync was asked for.
    FullRequested,
    /// The id names neither of our histories.
    IdMismatch,
    /// The id is our previous history but the replica claims more of it than we had.
    SecondIdOffsetTooLarge { max: i64 },
    /// The offset is outside our backlog (or there is none); `beyond` when it is
    /// greater than our own offset.
    NoBacklog { beyond: bool },
}

/// Decides a `PSYNC id off` request.
pub fn decide(h: &History, id: &str, off: i64) -> Decision {
    if id == "?" {
        return Decision::FullRequested;
    }
    let ours = id.eq_ignore_ascii_case(h.replid);
    let previous = !ours && id.eq_ignore_ascii_case(h.replid2);
    if !ours && !previous {
        return Decision::IdMismatch;
    }
    if previous && off > h.second_replid_offset {
        return Decision::SecondIdOffsetTooLarge {
            max: h.second_replid_offset,
        };
    }
    match h.backlog {
        Some((first, histlen)) if off >= first && off <= first + histlen => Decision::Continue {
            from: off,
            len: first + histlen - off,
        },
        _ => Decision::NoBacklog {
            beyond: off > h.master_repl_offset,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn hist(backlog: Option<(i64, i64)>) -> History<'static> {
        History {
            replid: A,
            replid2: B,
            second_replid_offset: 4223,
            master_repl_offset: 5000,
            backlog,
        }
    }

    #[test]
    fn decision_table() {
        let full = Some((1, 5000));
        let tail = Some((3000, 2001));
        let upper = A.to_uppercase();
        let cases: Vec<(History, &str, i64, Decision)> = vec![
            (hist(full), "?", -1, Decision::FullRequested),
            (hist(full), A, 1, Decision::Continue { from: 1, len: 5000 }),
            (
                hist(full),
                A,
                5001,
                Decision::Continue { from: 5001, len: 0 },
            ),
            (
                hist(full),
                &upper,
                4001,
                Decision::Continue {
                    from: 4001,
                    len: 1000,
                },
            ),
            (hist(full), A, 5002, Decision::NoBacklog { beyond: true }),
            (hist(tail), A, 2999, Decision::NoBacklog { beyond: false }),
            (
                hist(tail),
                A,
                3000,
                Decision::Continue {
                    from: 3000,
                    len: 2001,
                },
            ),
            (hist(None), A, 10, Decision::NoBacklog { beyond: false }),
            // Previous history: accepted up to second_replid_offset inclusive.
            (
                hist(full),
                B,
                4223,
                Decision::Continue {
                    from: 4223,
                    len: 778,
                },
            ),
            (
                hist(full),
                B,
                4224,
                Decision::SecondIdOffsetTooLarge { max: 4223 },
            ),
            (
                hist(full),
                "cccccccccccccccccccccccccccccccccccccccc",
                10,
                Decision::IdMismatch,
            ),
        ];
        for (h, id, off, want) in cases {
            assert_eq!(decide(&h, id, off), want, "PSYNC {id} {off}");
        }
    }

    #[test]
    fn cleared_replid2_never_matches_a_real_id() {
        let h = History {
            replid: A,
            replid2: Z,
            second_replid_offset: -1,
            master_repl_offset: 0,
            backlog: Some((1, 0)),
        };
        assert_eq!(decide(&h, B, 1), Decision::IdMismatch);
        // Even asking with the null id itself cannot pass the offset check.
        assert_eq!(
            decide(&h, Z, 1),
            Decision::SecondIdOffsetTooLarge { max: -1 }
        );
    }
}
