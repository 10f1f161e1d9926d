//! Append-only file, Redis 7.0 multi-part layout.
//!
//! Files live in `dir/appenddirname/` and are named after `appendfilename`:
//! * `<prefix>.<seq>.base.rdb`: the base, an RDB with aux `aof-base 1`; with
//!   `aof-use-rdb-preamble no` it is `<prefix>.<seq>.base.aof`, the commands that
//!   rebuild the dataset ([`base_commands`]). A base that does not start with `REDIS`
//!   is read as commands, whatever its name;
//! * `<prefix>.<seq>.incr.aof`: command logs in RESP (`*argc`, `$len` args), with a
//!   `SELECT <db>` whenever the db differs from the last command written to the file;
//! * `<prefix>.manifest`: one line per file, `file <name> seq <n> type <b|h|i>`,
//!   base first, then incr files in increasing seq. Written via a temp file + rename.
//!   (Names containing spaces or quotes are not supported; Redis would quote them.)
//!
//! Startup: with `appendonly yes` only the AOF is loaded (dump.rdb is ignored): the
//! base, then every incr file. A torn command at the end of the last file is cut off
//! when `aof-load-truncated yes` (an unfinished MULTI is reverted likewise); anything
//! else malformed is fatal. A fresh start creates base seq 1 and incr seq 1.
//!
//! Writes: `feed` appends the propagated ops of every command to the open incr file
//! before the reply is sent (the store lock is held). `appendfsync always` fdatasyncs
//! there too; `everysec` leaves it to a background fsync once a second; `no` never
//! fsyncs. BGREWRITEAOF opens a new incr file at once, writes a new base from a
//! snapshot in the background and then switches the manifest to
//! `new base + incr files opened since`, deleting the old files. Automatic rewrite
//! follows `auto-aof-rewrite-percentage` / `auto-aof-rewrite-min-size`. With the
//! AOF off (`appendonly no`) BGREWRITEAOF still runs, as Redis 7.0's does: the state
//! then holds only the manifest (read from disk) and the rewrite statistics, and
//! the new base replaces every file the manifest listed; DEBUG LOADAOF loads the
//! files on disk, and CONFIG SET appendonly yes writes the next base after it. After a
//! replica's full sync the AOF waits for a rewrite whose incr file is a temp file
//! outside the manifest until the new base is done (see the `rewrite` module).
//!
//! Disk errors (see [`writer`]): a failed write keeps the commands in memory and
//! retries them; until a write (and the background fsync) succeeds again, write
//! commands are refused with `MISCONF Errors writing to the AOF file: <strerror>`
//! ([`write_refusal`]) and INFO says `aof_last_write_status:err`. With
//! `appendfsync always` a write or fsync error exits, as Redis does. A rewrite does
//! not start while commands are waiting to be written (they belong to the old incr
//! file, and the new base already holds their effect).
//!
//! Not implemented: migration of a legacy single-file `appendonly.aof` into the
//! directory, and `aof_last_cow_size` (reported as 0). `#TS:` timestamp annotations
//! are written with `aof-timestamp-enabled yes` and skipped on load (truncating to
//! a timestamp is redis-check-aof's).

pub mod base_commands;
mod load;
mod rewrite;
pub use crate::server::aof_writer as writer;
pub use rewrite::{
    check_can_rewrite, restart_after_sync, rewrite, shutdown_check, start_at_runtime,
    stop_at_runtime,
};

use crate::rdb;
pub use crate::server::aof_file::{AofState, Fsync, ManifestEntry};
use crate::server::{Server, Store};
use crate::{notice, warning};
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Why the AOF could not be opened, loaded or rewritten; the texts are Redis's log
/// lines or replies.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// A manifest Redis 7.0 refuses to start with: the line (1-based, 0 for the
    /// file as a whole), its text, and Redis's reason.
    #[error("{reason}")]
    ManifestFormat {
        linenum: usize,
        line: String,
        reason: &'static str,
    },
    #[error("Error trying to write the temporary AOF manifest file {tmp}: {reason}")]
    ManifestWrite { tmp: String, reason: String },
    #[error("Error trying to rename the temporary AOF manifest file {tmp} into {name}: {reason}")]
    ManifestRename {
        tmp: String,
        name: String,
        reason: String,
    },
    #[error("Error trying to move the old AOF file {name} into dir {dir}: {err}")]
    MoveOld {
        name: String,
        dir: String,
        err: std::io::Error,
    },
    #[error("Can't create the AOF directory {dir}: {err}")]
    CreateDir { dir: String, err: std::io::Error },
    #[error("Can't create the AOF base file {name}: {err}")]
    CreateBase { name: String, err: std::io::Error },
    #[error("Can't open the append-only file: {0}")]
    Open(std::io::Error),
    #[error("Can't open the append-only file {name}: {reason}")]
    OpenIncr { name: String, reason: String },
    #[error("Can't write the AOF manifest: {0}")]
    Manifest(Box<AofError>),
    #[error("Can't start a background AOF rewrite while the AOF can't be written: {0}")]
    Unwritable(String),
    #[error("{ERR_REWRITE_IN_PROGRESS}")]
    RewriteInProgress,
    #[error("{}", rewrite::ERR_REWRITE_START)]
    RewriteStart,
    #[error("ERR Can't rewrite append only file in background: {0}")]
    Background(std::io::Error),
    #[error("Can't open the AOF manifest {path}: {err}")]
    OpenManifest { path: String, err: std::io::Error },
    #[error("AOF manifest: {0}")]
    BadManifest(Box<AofError>),
    /// SHUTDOWN while the rewrite after a full sync runs (without FORCE).
    #[error("Writing initial AOF, can't exit.")]
    WritingInitial,
    /// Replaying a file failed (the loader's error, with Redis's line).
    #[error(transparent)]
    Load(load::LoadError),
}

pub const ERR_REWRITE_IN_PROGRESS: &str =
    "ERR Background append only file rewriting already in progress";

pub(super) fn fsync_policy(s: &str) -> Fsync {
    match s {
        "always" => Fsync::Always,
        "no" => Fsync::No,
        _ => Fsync::EverySec,
    }
}

/// Parses a manifest; errors carry the reason.
/// Redis 7.0's upgrade from a single-file AOF (Redis 6 and older): when
/// `appendfilename` exists in `dir` and the AOF directory is missing, or has no
/// manifest, or a manifest whose only record is that file as the base while the
/// file is not in the directory yet (an upgrade interrupted after the manifest
/// was written), the file becomes the base (seq 1): the manifest is written,
/// then the file is moved into the directory. Without it the old file was
/// ignored and the server started empty.
fn upgrade_old_style(
    server_dir: &Path,
    dir: &Path,
    prefix: &str,
    manifest_path: &Path,
) -> Result<(), AofError> {
    let old = server_dir.join(prefix);
    if !old.is_file() {
        return Ok(());
    }
    let upgrade = if !dir.is_dir() || !manifest_path.exists() {
        true
    } else {
        let entries = read_manifest(manifest_path)?;
        let base_only = entries.iter().all(|e| e.kind != 'i')
            && entries.iter().any(|e| e.kind == 'b' && e.name == prefix);
        base_only && !dir.join(prefix).exists()
    };
    if !upgrade {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|err| AofError::CreateDir {
        dir: dir.display().to_string(),
        err,
    })?;
    let base = Some(ManifestEntry {
        name: prefix.to_string(),
        seq: 1,
        kind: 'b',
    });
    write_manifest(dir, prefix, &base, &[], &[]).map_err(|e| AofError::Manifest(Box::new(e)))?;
    std::fs::rename(&old, dir.join(prefix)).map_err(|err| AofError::MoveOld {
        name: prefix.to_string(),
        dir: dir.display().to_string(),
        err,
    })?;
    notice!(
        "Successfully migrated an old-style AOF file ({prefix}) into the AOF directory ({}).",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Ok(())
}

/// Redis's longest manifest line (`MANIFEST_MAX_LINE`).
const MANIFEST_MAX_LINE: usize = 1024;

/// Parses a manifest as Redis 7.0 reads one: `#` comment lines skipped; an empty
/// file, a blank line, a line of 1 KiB or more, fewer than three key/value pairs,
/// an odd word count, a missing or zero `file`/`seq`/`type`, a path, a second
/// base, a non-increasing incr sequence or an unknown type is refused. Keys are
/// case-insensitive; unknown keys are ignored (forward compatibility).
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestEntry>, AofError> {
    let mut out: Vec<ManifestEntry> = Vec::new();
    let mut max_incr = 0;
    if text.is_empty() {
        return Err(manifest_err(0, "", "Found an empty AOF manifest"));
    }
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let linenum = i + 1;
        if raw.starts_with('#') {
            continue;
        }
        if !raw.ends_with('\n') || raw.len() > MANIFEST_MAX_LINE {
            let reason = "The AOF manifest file contains too long line";
            // A last line without its newline is what Redis reads as too long too.
            return Err(manifest_err(linenum, raw.trim(), reason));
        }
        let line = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        let invalid = || manifest_err(linenum, line, "Invalid AOF manifest file format");
        // Split as Redis's `sdssplitargs` (a file name with spaces is quoted).
        let Some(split) = crate::resp::split_args(line.as_bytes()) else {
            return Err(invalid());
        };
        let words: Vec<String> = split
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        if words.len() < 6 || words.len() % 2 == 1 {
            return Err(invalid());
        }
        let (mut name, mut seq, mut kind) = (None, 0u64, None);
        for kv in words.chunks(2) {
            if kv[0].eq_ignore_ascii_case("file") {
                if kv[1].contains('/') {
                    let reason = "File can't be a path, just a filename";
                    return Err(manifest_err(linenum, line, reason));
                }
                name = Some(kv[1].clone());
            } else if kv[0].eq_ignore_ascii_case("seq") {
                seq = leading_number(&kv[1]);
            } else if kv[0].eq_ignore_ascii_case("type") {
                kind = kv[1].chars().next();
            }
        }
        let (Some(name), Some(kind)) = (name, kind) else {
            return Err(invalid());
        };
        if seq == 0 {
            return Err(invalid());
        }
        match kind {
            'b' if out.iter().any(|e| e.kind == 'b') => {
                let reason = "Found duplicate base file information";
                return Err(manifest_err(linenum, line, reason));
            }
            'i' if seq <= max_incr => {
                let reason = "Found a non-monotonic sequence number";
                return Err(manifest_err(linenum, line, reason));
            }
            'i' => max_incr = seq,
            'b' | 'h' => {}
            _ => return Err(manifest_err(linenum, line, "Unknown AOF file type")),
        }
        out.push(ManifestEntry { name, seq, kind });
    }
    Ok(out)
}

/// The number a `seq` value starts with, read as C's `atoll` reads it (Redis
/// does): digits up to the first other character; none, or a negative, is 0.
fn leading_number(v: &str) -> u64 {
    if v.starts_with('-') {
        return 0;
    }
    let digits = v.strip_prefix('+').unwrap_or(v);
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return 0;
    }
    digits[..end].parse().unwrap_or(u64::MAX)
}

/// Reads and parses the manifest at `path`; a refused one is logged as Redis logs it.
fn read_manifest(path: &Path) -> Result<Vec<ManifestEntry>, AofError> {
    let text = std::fs::read_to_string(path).map_err(|err| AofError::OpenManifest {
        path: path.display().to_string(),
        err,
    })?;
    parse_manifest(&text).map_err(|e| {
        log_manifest_error(&e);
        AofError::BadManifest(Box::new(e))
    })
}

fn manifest_err(linenum: usize, line: &str, reason: &'static str) -> AofError {
    AofError::ManifestFormat {
        linenum,
        line: line.to_string(),
        reason,
    }
}

/// Logs a refused manifest as Redis does (its reason is logged by the caller
/// that ends the process).
fn log_manifest_error(e: &AofError) {
    warning!("*** FATAL AOF MANIFEST FILE ERROR ***");
    if let AofError::ManifestFormat { linenum, line, .. } = e {
        if *linenum > 0 {
            warning!("Reading the manifest file, at line {linenum}");
            warning!(">>> '{line}'");
        }
    }
}

/// A file name as Redis writes it in a manifest: as is, or quoted like `sdscatrepr`
/// when it holds a space, a quote, a backslash or an unprintable byte.
fn manifest_name(name: &str) -> String {
    let needs = name
        .bytes()
        .any(|c| c == b'\\' || c == b'"' || !c.is_ascii_graphic());
    if needs {
        format!("\"{}\"", crate::util::repr_bytes(name.as_bytes()))
    } else {
        name.to_string()
    }
}

/// The manifest's lines: the base, the history files (kept while
/// `aof-disable-auto-gc yes`, the most recently retired first), the incr files.
fn manifest_text(
    base: &Option<ManifestEntry>,
    history: &[ManifestEntry],
    incrs: &[ManifestEntry],
) -> String {
    let mut s = String::new();
    for e in base.iter().chain(history).chain(incrs) {
        s.push_str(&format!(
            "file {} seq {} type {}\n",
            manifest_name(&e.name),
            e.seq,
            e.kind
        ));
    }
    s
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_manifest(
    dir: &Path,
    prefix: &str,
    base: &Option<ManifestEntry>,
    history: &[ManifestEntry],
    incrs: &[ManifestEntry],
) -> Result<(), AofError> {
    let tmp_name = format!("temp-{prefix}.manifest");
    let tmp = dir.join(&tmp_name);
    let errno = |e: std::io::Error| writer::strerror(e.raw_os_error().unwrap_or(libc::EIO));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(manifest_text(base, history, incrs).as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(AofError::ManifestWrite {
            tmp: tmp_name,
            reason: errno(e),
        });
    }
    let name = format!("{prefix}.manifest");
    if let Err(e) = std::fs::rename(&tmp, dir.join(&name)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(AofError::ManifestRename {
            tmp: tmp_name,
            name,
            reason: errno(e),
        });
    }
    sync_dir(dir);
    Ok(())
}

/// A base file's name: `<prefix>.<seq>.base.rdb`, or `.base.aof` when it is written
/// as commands (`aof-use-rdb-preamble no`), as Redis names them.
fn base_name(prefix: &str, seq: u64, rdb: bool) -> String {
    format!("{prefix}.{seq}.base.{}", if rdb { "rdb" } else { "aof" })
}

/// `aof-disable-auto-gc yes`: files a rewrite replaced stay, listed as history.
fn disable_auto_gc(c: &crate::config::Config) -> bool {
    c.get("aof-disable-auto-gc") == Some("yes")
}

/// Deletes the files of `history` from `dir` (Redis logs each).
fn remove_history(dir: &Path, history: &[ManifestEntry]) {
    for e in history {
        notice!("Removing the history file {} in the background", e.name);
        let _ = std::fs::remove_file(dir.join(&e.name));
    }
}

/// DEBUG AOF-FLUSH-SLEEP <microseconds>: a pause before each AOF write, for tests
/// that look at the file while a write is pending (0 turns it off). Kept with the
/// AOF state; without one (the AOF never used) there is nothing to delay.
pub fn set_flush_sleep(server: &Server, us: u64) {
    if let Some(st) = server.aof.lock().as_mut() {
        st.flush_sleep_us = us;
    }
}

/// CONFIG SET aof-timestamp-enabled.
pub fn set_timestamps(server: &Server, on: bool) {
    if let Some(st) = server.aof.lock().as_mut() {
        st.timestamps = on;
    }
}

/// CONFIG SET aof-disable-auto-gc no: the history files kept meanwhile are deleted
/// and the manifest no longer lists them (Redis `aofDelHistoryFiles`).
pub fn collect_history(server: &Server) {
    let mut g = server.aof.lock();
    let Some(st) = g.as_mut().filter(|st| !st.history.is_empty()) else {
        return;
    };
    if let Err(e) = write_manifest(&st.dir, &st.prefix, &st.base, &[], &st.incrs) {
        warning!("{e}");
        return;
    }
    remove_history(&st.dir, &std::mem::take(&mut st.history));
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Startup with `appendonly yes`: load the AOF (or create it) and open the incr file.
pub fn load_at_startup(server: &Arc<Server>) -> Result<(), AofError> {
    let c = server.config.read().clone();
    let dir = Path::new(&c.dir).join(&c.appenddirname);
    let prefix = c.appendfilename.clone();
    let manifest_path = dir.join(format!("{prefix}.manifest"));
    let start = Instant::now();
    upgrade_old_style(Path::new(&c.dir), &dir, &prefix, &manifest_path)?;
    let mut history: Vec<ManifestEntry> = Vec::new();
    let (base, mut incrs) = if manifest_path.exists() {
        let entries = read_manifest(&manifest_path)?;
        history = entries.iter().filter(|e| e.kind == 'h').cloned().collect();
        let base = entries.iter().find(|e| e.kind == 'b').cloned();
        let incrs: Vec<ManifestEntry> = entries.into_iter().filter(|e| e.kind == 'i').collect();
        let mut store = server.store.lock();
        let files: Vec<(&ManifestEntry, bool)> = base
            .iter()
            .map(|b| (b, true))
            .chain(incrs.iter().map(|i| (i, false)))
            .collect();
        let n = files.len();
        for (i, (e, is_base)) in files.into_iter().enumerate() {
            let t = Instant::now();
            load::load_file(
                server,
                &mut store,
                &dir,
                &e.name,
                i + 1 == n,
                c.aof_load_truncated,
            )
            .map_err(AofError::Load)?;
            notice!(
                "DB loaded from {} file {}: {:.3} seconds",
                if is_base { "base" } else { "incr" },
                e.name,
                t.elapsed().as_secs_f64()
            );
        }
        store.dirty = 0;
        notice!(
            "DB loaded from append only file: {:.3} seconds",
            start.elapsed().as_secs_f64()
        );
        (base, incrs)
    } else {
        std::fs::create_dir_all(&dir).map_err(|err| AofError::CreateDir {
            dir: dir.display().to_string(),
            err,
        })?;
        let name = base_name(&prefix, 1, c.aof_use_rdb_preamble);
        let store = server.store.lock();
        let opts = rdb::SaveOptions {
            compression: c.rdbcompression,
            checksum: c.rdbchecksum,
            repl: None,
            aof_base: true,
            functions: crate::commands::function_lib::codes(&store),
            key_delay: c.rdb_key_save_delay,
            commands: !c.aof_use_rdb_preamble,
            timestamp: c.aof_timestamp_enabled,
        };
        crate::persist::write_file_atomic(&store.dbs, &dir, &name, &opts).map_err(|err| {
            AofError::CreateBase {
                name: name.clone(),
                err,
            }
        })?;
        notice!("Creating AOF base file {name} on server start");
        (
            Some(ManifestEntry {
                name,
                seq: 1,
                kind: 'b',
            }),
            Vec::new(),
        )
    };
    let (file, opened_new) = match incrs.last() {
        Some(e) => {
            notice!("Opening AOF incr file {} on server start", e.name);
            (open_append(&dir.join(&e.name)), false)
        }
        None => {
            let name = format!("{prefix}.1.incr.aof");
            notice!("Creating AOF incr file {name} on server start");
            let f = open_append(&dir.join(&name));
            incrs.push(ManifestEntry {
                name,
                seq: 1,
                kind: 'i',
            });
            (f, true)
        }
    };
    let file = file.map_err(AofError::Open)?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    // History files left by a run with `aof-disable-auto-gc yes` go now, unless it
    // is still set (Redis deletes them on start).
    let collect = !history.is_empty() && !disable_auto_gc(&c);
    if opened_new || collect {
        let kept: &[ManifestEntry] = if collect { &[] } else { &history };
        write_manifest(&dir, &prefix, &base, kept, &incrs)
            .map_err(|e| AofError::Manifest(Box::new(e)))?;
    }
    if collect {
        remove_history(&dir, &std::mem::take(&mut history));
    }
    let size = total_size(&dir, &base, &incrs);
    let mut st = AofState::opened(
        (dir, prefix),
        (file, file_len),
        fsync_policy(&c.appendfsync),
        base,
        incrs,
        size,
        false,
    );
    st.history = history;
    st.timestamps = c.aof_timestamp_enabled;
    *server.aof.lock() = Some(st);
    server
        .aof_on
        .store(true, std::sync::atomic::Ordering::Release);
    Ok(())
}

fn total_size(dir: &Path, base: &Option<ManifestEntry>, incrs: &[ManifestEntry]) -> u64 {
    base.iter()
        .chain(incrs)
        .filter_map(|e| std::fs::metadata(dir.join(&e.name)).ok())
        .map(|m| m.len())
        .sum()
}

/// Appends the ops of one command (called from `propagate::feed`, store locked,
/// before the reply is written). If the write fails the ops stay buffered and are
/// retried; the reply still goes out (the command ran), later writes are refused.
pub fn feed(server: &Arc<Server>, _store: &mut Store, ops: &[(usize, Vec<Bytes>)]) {
    if !server.aof_on.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let mut g = server.aof.lock();
    let Some(st) = g.as_mut().filter(|st| st.is_on()) else {
        return;
    };
    if st.rewrite_owed() {
        // Waiting for the rewrite after a full sync: its base will hold this.
        return;
    }
    if st.timestamps {
        let now = crate::util::now_ms() / 1000;
        if st.last_ts < now {
            st.last_ts = now;
            st.writer
                .pending
                .extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
        }
    }
    // The same encoding (and SELECT rule) as the replication stream's.
    crate::propagate::encode_ops(&mut st.cur_db, ops, &mut st.writer.pending);
    if st.flush_sleep_us > 0 {
        // DEBUG AOF-FLUSH-SLEEP: like Redis, the whole server waits (the store lock
        // is held), and the reply still follows the write.
        std::thread::sleep(std::time::Duration::from_micros(st.flush_sleep_us));
    }
    if st.flush().is_err() {
        return;
    }
    match st.fsync {
        Fsync::Always => {
            if let Some(Err(e)) = st.file.as_ref().map(File::sync_data) {
                warning!(
                    "Can't persist append-only file: {}, AOF fsync policy is 'always'. Exiting...",
                    writer::strerror(e.raw_os_error().unwrap_or(libc::EIO))
                );
                std::process::exit(1);
            }
        }
        Fsync::EverySec => st.pending_fsync = true,
        Fsync::No => {}
    }
}

/// MISCONF for write commands while the AOF has a write or fsync error.
#[inline]
pub fn write_refusal(server: &Server) -> Option<String> {
    if !server.aof_on.load(std::sync::atomic::Ordering::Acquire) {
        return None;
    }
    disk_error_refusal(server)
}

/// [`write_refusal`] with an AOF open: its lock and error state, out of the write path.
#[cold]
#[inline(never)]
fn disk_error_refusal(server: &Server) -> Option<String> {
    server
        .aof
        .lock()
        .as_ref()
        .and_then(AofState::disk_errno)
        .map(writer::misconf)
}

/// Runs on the `aof-fsync` thread: records the result for the refusal and INFO.
fn fsync_done(server: &Server, res: std::io::Result<()>) {
    let mut g = server.aof.lock();
    let Some(st) = g.as_mut() else {
        return;
    };
    st.fsync_in_progress = false;
    match res {
        Ok(()) => st.fsync_errno = None,
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            if st.fsync_errno.is_none() {
                warning!("Fail to fsync the AOF file: {}", writer::strerror(errno));
            }
            st.fsync_errno = Some(errno);
            // Retried by the next tick: the data may still be only in the page cache.
            st.pending_fsync = true;
        }
    }
}

/// Periodic work: the everysec fsync (outside the lock) and automatic rewrites.
pub fn cron_tick(server: &Arc<Server>) {
    rewrite::start_scheduled(server);
    let (to_sync, auto) = {
        let mut g = server.aof.lock();
        let Some(st) = g.as_mut().filter(|st| st.is_on()) else {
            return;
        };
        if !st.writer.pending.is_empty() {
            // Retry a failed write; success clears the MISCONF refusal.
            let _ = st.flush();
        }
        let mut to_sync = None;
        if st.pending_fsync
            && !st.fsync_in_progress
            && st.writer.pending.is_empty()
            && st.last_fsync.elapsed().as_millis() >= 1000
        {
            st.pending_fsync = false;
            st.last_fsync = Instant::now();
            to_sync = st.file.as_ref().and_then(|f| f.try_clone().ok());
            st.fsync_in_progress = to_sync.is_some();
        }
        let c = server.config.read();
        let pct = c.auto_aof_rewrite_percentage;
        let auto = !st.rewrite_in_progress()
            && !st.wait_rewrite
            && st.writer.pending.is_empty()
            && pct > 0
            && st.cur_size > c.auto_aof_rewrite_min_size
            && st.cur_size.saturating_sub(st.base_size) * 100 / st.base_size.max(1) >= pct
            && rewrite::may_start_from_cron(st);
        (to_sync, auto)
    };
    if let Some(f) = to_sync {
        let spawned = std::thread::Builder::new().name("aof-fsync".into()).spawn({
            let server = server.clone();
            move || fsync_done(&server, f.sync_data())
        });
        if let Err(e) = spawned {
            warning!("Can't start the AOF fsync thread: {e}");
            if let Some(st) = server.aof.lock().as_mut() {
                st.fsync_in_progress = false;
                st.pending_fsync = true;
            }
        }
    }
    if auto {
        let (cur, base) = {
            let g = server.aof.lock();
            g.as_ref()
                .map(|s| (s.cur_size, s.base_size))
                .unwrap_or((0, 0))
        };
        notice!(
            "Starting automatic rewriting of AOF on {}% growth",
            cur.saturating_sub(base) * 100 / base.max(1)
        );
        let mut store = server.store.lock();
        let _ = rewrite(server, &mut store);
    }
}

/// DEBUG LOADAOF (Redis 7.0's): writes what the AOF has pending, empties the dataset
/// and the function libraries, and loads them again from the files the manifest
/// lists, as a restart would. The store lock is held throughout, so no command runs
/// in between. Replayed commands are not written to the AOF again (the replayer
/// drops what they propagate).
///
/// With the AOF off, as in Redis, the files the manifest on disk lists are loaded
/// (a BGREWRITEAOF writes them with the AOF off too). Where there is no AOF at all
/// Redis exits the process; Tandem refuses with an error instead and keeps its
/// dataset. A file that fails to load half-way is fatal, as in Redis: the dataset in
/// memory is then partial and must not be served.
pub fn debug_loadaof(server: &Arc<Server>, store: &mut Store) -> Result<(), String> {
    let (dir, base, incrs) = {
        let mut g = server.aof.lock();
        let on = g.as_ref().is_some_and(AofState::is_on);
        let st = match g.as_mut() {
            Some(st) if on => st,
            _ => {
                drop(g);
                return debug_loadaof_off(server, store);
            }
        };
        if let Err(errno) = st.flush() {
            return Err(format!(
                "ERR Can't write the pending AOF commands: {}",
                writer::strerror(errno)
            ));
        }
        if let Some(Err(e)) = st.file.as_ref().map(File::sync_data) {
            warning!("Can't fsync the AOF before DEBUG LOADAOF: {e}");
        }
        (st.dir.clone(), st.base.clone(), st.incrs.clone())
    };
    reload(server, store, &dir, base, incrs)
}

/// DEBUG LOADAOF with the AOF off: the manifest is read from disk.
fn debug_loadaof_off(server: &Arc<Server>, store: &mut Store) -> Result<(), String> {
    let (dir, prefix) = {
        let c = server.config.read();
        (
            Path::new(&c.dir).join(&c.appenddirname),
            c.appendfilename.clone(),
        )
    };
    let manifest_path = dir.join(format!("{prefix}.manifest"));
    if !manifest_path.exists() {
        return Err("ERR DEBUG LOADAOF: there is no AOF to load (appendonly is no and no BGREWRITEAOF wrote one)".into());
    }
    let entries = read_manifest(&manifest_path).map_err(|e| format!("ERR {e}"))?;
    let base = entries.iter().find(|e| e.kind == 'b').cloned();
    let incrs: Vec<ManifestEntry> = entries.into_iter().filter(|e| e.kind == 'i').collect();
    if base.is_none() && incrs.is_empty() {
        return Err("ERR DEBUG LOADAOF: the AOF manifest lists no file to load".into());
    }
    reload(server, store, &dir, base, incrs)
}

/// Empties the dataset and loads `base` and `incrs` from `dir` (DEBUG LOADAOF).
fn reload(
    server: &Arc<Server>,
    store: &mut Store,
    dir: &Path,
    base: Option<ManifestEntry>,
    incrs: Vec<ManifestEntry>,
) -> Result<(), String> {
    let (truncate_ok, databases) = {
        let c = server.config.read();
        (c.aof_load_truncated, store.dbs.len())
    };
    store.tracking_flush();
    store.dbs = (0..databases).map(|_| crate::db::Db::new()).collect();
    crate::commands::function_lib::install_loaded(store, &[]);
    let files: Vec<&ManifestEntry> = base.iter().chain(incrs.iter()).collect();
    let n = files.len();
    for (i, e) in files.into_iter().enumerate() {
        if let Err(err) = load::load_file(server, store, dir, &e.name, i + 1 == n, truncate_ok) {
            warning!("DEBUG LOADAOF failed: {err}. Exiting.");
            std::process::exit(1);
        }
    }
    store.dirty = 0;
    warning!("Append Only File loaded by DEBUG LOADAOF");
    Ok(())
}

pub fn is_enabled(server: &Server) -> bool {
    server.aof.lock().as_ref().is_some_and(AofState::is_on)
}

/// Flushes and fsyncs the AOF on shutdown.
pub fn on_shutdown(server: &Server) {
    if let Some(st) = server.aof.lock().as_mut() {
        if let Err(errno) = st.flush() {
            warning!(
                "Error writing the buffered AOF commands on shutdown: {}",
                writer::strerror(errno)
            );
        }
        if st.file.as_ref().is_some_and(|f| f.sync_all().is_ok()) {
            notice!("Calling fsync() on the AOF file.");
        }
    }
}

/// INFO persistence AOF fields (aof_enabled .. aof_last_write_status).
pub fn info_fields(server: &Server) -> Vec<(String, String)> {
    let scheduled = server.persist.lock().aof_rewrite_scheduled;
    let g = server.aof.lock();
    let f = |k: &str, v: String| (k.to_string(), v);
    match g.as_ref() {
        // With the AOF off the state may still exist (a BGREWRITEAOF ran): its
        // rewrite figures show, the AOF's own (enabled, owed rewrite, write errors) do not.
        Some(st) => {
            let on = st.is_on();
            vec![
                f("aof_enabled", (on as u8).to_string()),
                f(
                    "aof_rewrite_in_progress",
                    (st.rewrite_in_progress() as u8).to_string(),
                ),
                f(
                    "aof_rewrite_scheduled",
                    ((scheduled || (on && st.rewrite_owed())) as u8).to_string(),
                ),
                f(
                    "aof_last_rewrite_time_sec",
                    st.last_rewrite_time_sec.to_string(),
                ),
                f(
                    "aof_current_rewrite_time_sec",
                    st.rewrite
                        .as_ref()
                        .map(|r| r.started.elapsed().as_secs() as i64)
                        .unwrap_or(-1)
                        .to_string(),
                ),
                f(
                    "aof_last_bgrewrite_status",
                    if st.last_rewrite_ok { "ok" } else { "err" }.into(),
                ),
                f("aof_rewrites", st.rewrites.to_string()),
                f(
                    "aof_rewrites_consecutive_failures",
                    st.rewrite_failures.to_string(),
                ),
                f(
                    "aof_last_write_status",
                    if on && st.disk_errno().is_some() {
                        "err"
                    } else {
                        "ok"
                    }
                    .into(),
                ),
            ]
        }
        None => vec![
            f("aof_enabled", "0".into()),
            f("aof_rewrite_in_progress", "0".into()),
            f("aof_rewrite_scheduled", (scheduled as u8).to_string()),
            f("aof_last_rewrite_time_sec", "-1".into()),
            f("aof_current_rewrite_time_sec", "-1".into()),
            f("aof_last_bgrewrite_status", "ok".into()),
            f("aof_rewrites", "0".into()),
            f("aof_rewrites_consecutive_failures", "0".into()),
            f("aof_last_write_status", "ok".into()),
        ],
    }
}

/// INFO persistence fields Redis prints after `module_fork_last_cow_size` when
/// the AOF is on (none when it is off).
pub fn info_size_fields(server: &Server) -> Vec<(String, String)> {
    let g = server.aof.lock();
    let Some(st) = g.as_ref().filter(|st| st.is_on()) else {
        return Vec::new();
    };
    let f = |k: &str, v: String| (k.to_string(), v);
    vec![
        f("aof_current_size", st.cur_size.to_string()),
        f("aof_base_size", st.base_size.to_string()),
        f("aof_pending_rewrite", "0".into()),
        f("aof_buffer_length", st.writer.pending.len().to_string()),
        f(
            "aof_pending_bio_fsync",
            (st.fsync_in_progress as u8).to_string(),
        ),
        f("aof_delayed_fsync", "0".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_errors() {
        let base = Some(ManifestEntry {
            name: "a.aof.1.base.rdb".into(),
            seq: 1,
            kind: 'b',
        });
        let incrs = vec![
            ManifestEntry {
                name: "a.aof.1.incr.aof".into(),
                seq: 1,
                kind: 'i',
            },
            ManifestEntry {
                name: "a.aof.2.incr.aof".into(),
                seq: 2,
                kind: 'i',
            },
        ];
        let text = manifest_text(&base, &[], &incrs);
        assert_eq!(
            text,
            "file a.aof.1.base.rdb seq 1 type b\nfile a.aof.1.incr.aof seq 1 type i\nfile a.aof.2.incr.aof seq 2 type i\n"
        );
        let parsed = parse_manifest(&text).unwrap();
        assert_eq!(parsed.len(), 3);
        // A name with spaces and newlines is quoted as Redis quotes it, and read back.
        let odd_name = " file seq \n\n.aof .1.base.rdb";
        let odd = Some(ManifestEntry {
            name: odd_name.into(),
            seq: 1,
            kind: 'b',
        });
        let text = manifest_text(&odd, &[], &[]);
        assert_eq!(
            text,
            "file \" file seq \\n\\n.aof .1.base.rdb\" seq 1 type b\n"
        );
        assert_eq!(parse_manifest(&text).unwrap()[0].name, odd_name);
        assert!(parse_manifest("file x seq 1").is_err());
        assert!(parse_manifest("file a/b seq 1 type i").is_err());
        assert!(parse_manifest("file x seq 1 type z").is_err());
        assert!(parse_manifest("file x seq 2 type i\nfile y seq 1 type i").is_err());
        assert!(parse_manifest("file x seq 1 type b\nfile y seq 2 type b").is_err());
    }
}
