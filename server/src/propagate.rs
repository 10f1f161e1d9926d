//! Propagation sink: receives the ops each command produced, in execution order
//! (already wrapped in MULTI/EXEC when needed), and hands them to the replication
//! stream and the AOF. Until those subsystems are attached there is no consumer and
//! the ops are dropped, exactly as Redis does with no backlog, replicas or AOF.

use crate::server::{Server, Store};
use bytes::Bytes;
use std::sync::Arc;

pub fn feed(server: &Arc<Server>, store: &mut Store, ops: Vec<(usize, Vec<Bytes>)>) {
    crate::aof::feed(server, store, &ops);
}

/// Encodes one command as a RESP bulk array, the form both the replication stream
/// and the AOF use.
pub fn encode_command(argv: &[Bytes], out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(b.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(b.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}
