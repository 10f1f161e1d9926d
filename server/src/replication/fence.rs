//! Tandem extension: the fenced start (`tandem-fenced-start yes`).
//!
//! A pod that (re)starts without `replicaof` may hold an empty or stale dataset.
//! Fenced, it refuses every write and every SYNC/PSYNC (so replicas pointed at it
//! keep retrying and never load its data), and its active expiry deletes nothing,
//! until the operator assigns a role: `REPLICAOF host port` (it follows that master
//! as usual) or `REPLICAOF NO ONE` (it becomes a writable master keeping its
//! replication id and offset). A server started with `replicaof` is never fenced:
//! following an upstream is safe. The fence never comes back once lifted.

use crate::server::Store;

/// The error for writes and sync requests while fenced (prefix `FENCED`).
pub const FENCED_ERR: &str = "FENCED server started fenced; no role assigned yet (REPLICAOF host port or REPLICAOF NO ONE assigns one)";

/// Fences the store at startup when configured and no `replicaof` is set.
/// Returns whether the server starts fenced.
pub fn at_startup(store: &mut Store, fenced_start: bool, has_replicaof: bool) -> bool {
    if fenced_start && !has_replicaof {
        store.repl.fenced = true;
        crate::warning!(
            "Started fenced: no writes and no replica syncs until a role is assigned (REPLICAOF host port or REPLICAOF NO ONE)"
        );
        return true;
    }
    false
}

/// Lifts the fence (REPLICAOF); `how` names the role assignment for the log.
pub fn lift(store: &mut Store, how: &str) {
    if store.repl.fenced {
        store.repl.fenced = false;
        crate::notice!("Fence lifted by {how}: writes and replica syncs are allowed again");
    }
}

/// REPLICAOF host port on a fenced server, before it turns into a replica. A
/// fenced server has appended nothing to its stream since it loaded its snapshot,
/// so its dataset is exactly the saved history (`replid2`) at its current offset:
/// that history is made current again, so the cached master synthesised by the
/// role change asks the new master for `PSYNC <saved replid> <offset+1>` and a
/// restarted pod can partially resync (Redis would offer the fresh replid of its
/// restart and always get a full sync). Then the fence is lifted.
pub fn lift_for_replicaof(store: &mut Store, host: &str, port: u16) {
    let r = &mut store.repl;
    if r.fenced
        && r.replid2 != crate::replication::NULL_REPLID
        && r.second_replid_offset == r.master_repl_offset + 1
    {
        crate::notice!(
            "Fenced since startup: continuing the saved replication history {} at offset {}",
            r.replid2,
            r.master_repl_offset
        );
        r.replid = std::mem::replace(&mut r.replid2, crate::replication::NULL_REPLID.into());
        r.second_replid_offset = -1;
    }
    lift(store, &format!("REPLICAOF {host}:{port}"));
}

/// The `processCommand` check: writes (`writes`: the command, or for EXEC its
/// queue, writes) are refused while fenced, except from the master link. Runs before
/// OOM eviction so a fenced server evicts nothing.
pub fn precheck(store: &Store, from_master: bool, writes: bool) -> Option<String> {
    (store.repl.fenced && !from_master && writes).then(|| FENCED_ERR.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_only_without_replicaof_and_lifted_once() {
        let mut store = Store::new(1);
        assert!(!at_startup(&mut store, false, false));
        assert!(!at_startup(&mut store, true, true));
        assert!(!store.repl.fenced);
        assert!(at_startup(&mut store, true, false));
        assert!(store.repl.fenced);
        let writes = |n: &[u8]| {
            crate::commands::lookup(n)
                .expect("command")
                .is(crate::flags::WRITE)
        };
        assert_eq!(
            precheck(&store, false, writes(b"set")).as_deref(),
            Some(FENCED_ERR)
        );
        assert_eq!(precheck(&store, false, writes(b"get")), None);
        assert_eq!(
            precheck(&store, true, writes(b"set")),
            None,
            "the master link"
        );
        lift(&mut store, "REPLICAOF NO ONE");
        assert!(!store.repl.fenced);
        assert_eq!(precheck(&store, false, writes(b"set")), None);
    }

    #[test]
    fn replicaof_while_fenced_continues_the_saved_history() {
        let saved = "a".repeat(40);
        let mut store = Store::new(1);
        crate::replication::restore_from_rdb(
            &mut store,
            false,
            (1 << 20, false),
            (&saved, 500, 0),
            &[],
        );
        assert_ne!(store.repl.replid, saved);
        assert!(at_startup(&mut store, true, false));
        lift_for_replicaof(&mut store, "h", 1);
        assert!(!store.repl.fenced);
        assert_eq!(store.repl.replid, saved);
        assert_eq!(store.repl.replid2, crate::replication::NULL_REPLID);
        assert_eq!(store.repl.second_replid_offset, -1);
        assert_eq!(store.repl.master_repl_offset, 500);
        // Not fenced: nothing changes (Redis behaviour).
        let mut store = Store::new(1);
        crate::replication::restore_from_rdb(
            &mut store,
            false,
            (1 << 20, false),
            (&saved, 500, 0),
            &[],
        );
        let fresh = store.repl.replid.clone();
        lift_for_replicaof(&mut store, "h", 1);
        assert_eq!(store.repl.replid, fresh);
        assert_eq!(store.repl.replid2, saved);
    }
}
