//! The two blocking jobs of TRANSFER: the loader that parses the payload into
//! fresh databases while it arrives, and the writer of the sync file
//! (`temp-<unixtime>.<pid>.rdb`, renamed over `dbfilename` once complete).

use super::link_io::io_text;
use crate::db::Db;
use crate::replication::codec;
use crate::replication::sync_stream::{ChunkReader, Piece};
use tokio::sync::mpsc::Receiver;

/// Why loading or filing the payload failed. The texts are Redis's log lines.
#[derive(Debug, thiserror::Error)]
pub(super) enum SyncFileError {
    #[error(
        "Opening the temp file needed for MASTER <-> REPLICA synchronization: {}",
        io_text(.0)
    )]
    Open(std::io::Error),
    #[error(
        "Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: {}",
        io_text(.0)
    )]
    Write(std::io::Error),
    #[error(
        "Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: {0}"
    )]
    WriterTask(tokio::task::JoinError),
    #[error("Failed trying to load the MASTER synchronization DB from disk: {0}")]
    Load(crate::rdb::RdbError),
    #[error("Failed trying to load the MASTER synchronization DB from disk: {0}")]
    LoaderTask(tokio::task::JoinError),
    /// The transfer broke before the end of the payload (logged when it broke).
    #[error("the transfer broke before the end of the payload")]
    Aborted,
}

/// A loaded dataset and what the RDB said about itself.
pub(super) type Loaded = (Vec<Db>, crate::rdb::LoadInfo);

/// The loading thread: parses the payload from the chunks as they arrive into
/// fresh Dbs. On failure (broken transfer, bad RDB) the partial data is dropped
/// here. The loader must also see the end of the payload: an RDB that parses but
/// whose transfer broke afterwards is not taken.
pub(super) fn load_streamed(
    rx: Receiver<Piece>,
    ndbs: usize,
    (key_delay, shapes): (i32, crate::rdb::Shapes),
) -> Result<Loaded, SyncFileError> {
    let mut rd = ChunkReader::new(rx);
    let mut dbs: Vec<Db> = (0..ndbs).map(|_| Db::new()).collect();
    let opts = codec::LoadOptions {
        now_ms: crate::server::now_ms(),
        drop_expired: false,
        shapes,
    };
    let res = codec::load_delayed(&mut rd, &mut dbs, &opts, key_delay);
    let complete = res.is_ok() && rd.drain();
    if rd.aborted() {
        drop(dbs);
        return Err(SyncFileError::Aborted);
    }
    match res {
        Ok(_) if !complete => Err(SyncFileError::Aborted),
        Ok(info) => Ok((dbs, info)),
        Err(e) => {
            drop(dbs);
            Err(SyncFileError::Load(e))
        }
    }
}

/// Sync file writes between two fdatasyncs, so the final fsync has little left.
const FILE_SYNC_EVERY: usize = 16 * 1024 * 1024;

/// The temp file name Redis uses for a received RDB.
pub(super) fn temp_name() -> String {
    format!(
        "temp-{}.{}.rdb",
        crate::server::now_ms() / 1000,
        std::process::id()
    )
}

/// The sync file writer (blocking thread): writes the payload chunks to `tmp`
/// as they arrive and fsyncs it at the end of the payload. On failure or a
/// broken transfer the temp file is removed.
pub(super) fn write_sync_file(mut rx: Receiver<Piece>, tmp: &str) -> Result<(), SyncFileError> {
    use std::io::Write;
    let mut f = std::fs::File::create(tmp).map_err(SyncFileError::Open)?;
    let mut unsynced = 0usize;
    let res = loop {
        match rx.blocking_recv() {
            Some(Piece::Data(b)) => {
                if let Err(e) = f.write_all(&b) {
                    break Err(SyncFileError::Write(e));
                }
                unsynced += b.len();
                if unsynced >= FILE_SYNC_EVERY {
                    if let Err(e) = f.sync_data() {
                        break Err(SyncFileError::Write(e));
                    }
                    unsynced = 0;
                }
            }
            Some(Piece::End) => break f.sync_all().map_err(SyncFileError::Write),
            None => break Err(SyncFileError::Aborted),
        }
    };
    if res.is_err() {
        drop(f);
        let _ = std::fs::remove_file(tmp);
    }
    res
}

/// Renames the complete, fsynced temp file over `dbfilename` (relative to `dir`,
/// the working directory), as Redis does with the received RDB, so a restart can
/// continue this history. With persistence off and `rdb-del-sync-files yes` the
/// file is removed again.
pub(super) fn publish_sync_file(
    tmp: &str,
    dbfilename: &str,
    delete: bool,
) -> Result<(), SyncFileError> {
    if let Err(e) = std::fs::rename(tmp, dbfilename) {
        let _ = std::fs::remove_file(tmp);
        return Err(SyncFileError::Write(e));
    }
    if delete {
        crate::notice!(
            "Removing the RDB file obtained from the master. This replica has persistence disabled"
        );
        let _ = std::fs::remove_file(dbfilename);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn the_writer_keeps_a_complete_payload_and_removes_a_broken_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("temp-1.1.rdb");
        let tmp = path.to_str().expect("utf8 path");

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Piece::Data(Bytes::from_static(b"REDIS")))
            .expect("room");
        tx.try_send(Piece::End).expect("room");
        assert!(write_sync_file(rx, tmp).is_ok());
        assert_eq!(std::fs::read(&path).expect("written"), b"REDIS");

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Piece::Data(Bytes::from_static(b"RED")))
            .expect("room");
        drop(tx);
        assert!(matches!(
            write_sync_file(rx, tmp),
            Err(SyncFileError::Aborted)
        ));
        assert!(!path.exists(), "a broken transfer leaves no temp file");
    }

    #[test]
    fn the_loader_rejects_a_payload_that_is_not_an_rdb() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Piece::Data(Bytes::from_static(b"NOT AN RDB FILE")))
            .expect("room");
        tx.try_send(Piece::End).expect("room");
        let e = load_streamed(rx, 16, (0, Default::default())).expect_err("bad payload");
        assert_eq!(
            e.to_string(),
            "Failed trying to load the MASTER synchronization DB from disk: Wrong signature trying to load DB from file"
        );
    }
}
