//! AOF rewrite: BGREWRITEAOF, the automatic one, and the one that makes a replica's
//! synced dataset its AOF base after a full sync (Redis 7.0 `AOF_WAIT_REWRITE`).
//!
//! A rewrite opens the incr file that will follow the new base, then writes the base
//! from a snapshot (a forked child, see `crate::snapshot`; a thread over a copy if
//! fork fails) to `temp-rewriteaof-bg-<pid>-<id>.aof` in the AOF directory. Its
//! completion ([`finish`], under the AOF lock) renames that to the next
//! `<prefix>.<seq>.base.rdb`, writes the manifest (temp file, rename, directory
//! fsync) and deletes the files the new base replaces. On any failure the manifest
//! on disk is left as it was.
//!
//! Normally (state ON) the new incr file is listed in the manifest at once, after
//! the old ones: until the base is done, old base + every incr is the dataset.
//!
//! After a full sync the replica's AOF waits for a rewrite ([`restart_after_sync`],
//! Redis `stopAppendOnly` + `startAppendOnly`): the running rewrite is killed, and
//! the new one writes to `temp-<prefix>.incr`, which is NOT in the manifest; only
//! when the base is done are both renamed and listed together, in one manifest
//! rename. A crash in between reloads the files from before the sync (a dataset that
//! existed, older), never that old base with the streamed commands on top. While
//! waiting with no rewrite running (it failed, or a BGSAVE runs) commands are not
//! logged at all: the next rewrite's base holds them. The cron retries (with Redis's
//! backoff after 3 consecutive failures, `RetryLimit`) and SHUTDOWN refuses to
//! exit while the rewrite runs unless FORCE ([`shutdown_check`]).

use super::{
    base_name, open_append, total_size, write_manifest, AofError, AofState, ManifestEntry,
};
use crate::db::Db;
use crate::rdb;
use crate::server::aof_file::{Limit, RunningRewrite};
use crate::server::{Server, Store};
use crate::{notice, warning};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::writer::{self, Writer};

/// Redis's reply when a rewrite can't start (the log says why).
pub(super) const ERR_REWRITE_START: &str =
    "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.";

/// Times a replica tries to turn its AOF back on after a full sync before exiting
/// (Redis `restartAOFAfterSYNC`).
const RESTART_TRIES: u32 = 10;

/// The incr file of a rewrite in the wait state (Redis `getTempIncrAofName`).
fn temp_incr_name(prefix: &str) -> String {
    format!("temp-{prefix}.incr")
}

/// Where rewrite `id` writes its base before it is renamed (unique in this process;
/// the pid keeps a leftover of an earlier run from being taken for it).
fn temp_base_name(id: u64) -> String {
    format!("temp-rewriteaof-bg-{}-{id}.aof", std::process::id())
}

fn strerror(e: &std::io::Error) -> String {
    writer::strerror(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Whether a rewrite could be asked for now (none running), for one that is only
/// scheduled. As in Redis, the AOF need not be on: BGREWRITEAOF with `appendonly
/// no` writes a new base and a manifest naming only it.
pub fn check_can_rewrite(server: &Server) -> Result<(), AofError> {
    match server.aof.lock().as_ref() {
        Some(st) if st.rewrite_in_progress() => Err(AofError::RewriteInProgress),
        _ => Ok(()),
    }
}

/// Starts the rewrite the cron owes: one scheduled by BGREWRITEAOF during a BGSAVE,
/// or the wait state's (first try, or a retry after a failure), unless a BGSAVE or a
/// rewrite runs or the failure backoff says wait.
pub(super) fn start_scheduled(server: &Arc<Server>) {
    let (scheduled, saving) = {
        let st = server.persist.lock();
        (st.aof_rewrite_scheduled, st.bgsave_in_progress)
    };
    {
        let mut g = server.aof.lock();
        match g.as_mut() {
            // The AOF is off and was never used: a scheduled BGREWRITEAOF still runs.
            None if scheduled && !saving => {}
            None => return,
            Some(st) => {
                if !(scheduled || st.rewrite_owed()) || saving || st.rewrite_in_progress() {
                    return;
                }
                if !may_start_from_cron(st) {
                    return;
                }
            }
        }
    }
    let mut store = server.store.lock();
    server.persist.lock().aof_rewrite_scheduled = false;
    if let Err(e) = rewrite(server, &mut store) {
        warning!("Scheduled AOF rewrite failed: {e}");
    }
}

/// The failure backoff for rewrites the cron starts (BGREWRITEAOF ignores it).
pub(super) fn may_start_from_cron(st: &mut AofState) -> bool {
    match st.retry_limit.check(st.rewrite_failures, Instant::now()) {
        Limit::Go => true,
        Limit::Wait => false,
        Limit::Armed(minutes) => {
            warning!("Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {minutes} minutes");
            false
        }
    }
}

/// Opens the incr file the rewrite's writes go to; returns the seq it keeps incr
/// files from (0 in the wait state, where only the temp file follows the base). On
/// error nothing changed: writes go on to the current file.
fn open_next_incr(st: &mut AofState) -> Result<u64, AofError> {
    // Commands still buffered after a write error belong to the current incr file:
    // the new base will hold their effect, so they must not go to the next one.
    st.flush()
        .map_err(|errno| AofError::Unwritable(writer::strerror(errno)))?;
    let (name, seq) = if st.wait_rewrite {
        (temp_incr_name(&st.prefix), 0)
    } else {
        let seq = st.incrs.last().map(|e| e.seq).unwrap_or(0) + 1;
        (format!("{}.{seq}.incr.aof", st.prefix), seq)
    };
    let path = st.dir.join(&name);
    let opened = if st.wait_rewrite {
        // A leftover from an earlier failed or abandoned try starts over empty.
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
    } else {
        open_append(&path)
    };
    let f = opened.map_err(|e| AofError::OpenIncr {
        name: name.clone(),
        reason: strerror(&e),
    })?;
    if !st.wait_rewrite {
        let mut incrs = st.incrs.clone();
        incrs.push(ManifestEntry {
            name: name.clone(),
            seq,
            kind: 'i',
        });
        if let Err(e) = write_manifest(&st.dir, &st.prefix, &st.base, &st.history, &incrs) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        st.incrs = incrs;
    }
    if let Some(old) = &st.file {
        let _ = old.sync_data();
    }
    st.file = Some(f);
    st.writer = Writer::new(0);
    st.cur_db = -1;
    notice!("Creating AOF incr file {name} on background rewrite");
    Ok(seq)
}

/// The state a rewrite with the AOF off works on: the manifest as it is on disk now
/// (none yet: no base, no incr files) in the AOF directory, created if missing. An
/// earlier off state keeps its statistics. A manifest Redis would refuse is an error
/// (Redis reads it at startup even with the AOF off, and exits).
fn refresh_off_state(server: &Server, st: &mut Option<AofState>) -> Result<(), AofError> {
    let (dir, prefix) = {
        let c = server.config.read();
        (
            Path::new(&c.dir).join(&c.appenddirname),
            c.appendfilename.clone(),
        )
    };
    std::fs::create_dir_all(&dir).map_err(|err| AofError::CreateDir {
        dir: dir.display().to_string(),
        err,
    })?;
    let (base, history, incrs) = read_files(&dir, &prefix)?;
    let st =
        st.get_or_insert_with(|| AofState::off((dir.clone(), prefix.clone()), None, Vec::new()));
    (st.dir, st.prefix, st.base, st.history, st.incrs) = (dir, prefix, base, history, incrs);
    Ok(())
}

/// The base, history and incr files the manifest in `dir` lists (none without a
/// manifest).
type Files = (
    Option<ManifestEntry>,
    Vec<ManifestEntry>,
    Vec<ManifestEntry>,
);

fn read_files(dir: &Path, prefix: &str) -> Result<Files, AofError> {
    let manifest_path = dir.join(format!("{prefix}.manifest"));
    match std::fs::read_to_string(&manifest_path) {
        Ok(text) => {
            let entries =
                super::parse_manifest(&text).map_err(|e| AofError::BadManifest(Box::new(e)))?;
            let base = entries.iter().find(|e| e.kind == 'b').cloned();
            let history = entries.iter().filter(|e| e.kind == 'h').cloned().collect();
            let incrs = entries.into_iter().filter(|e| e.kind == 'i').collect();
            Ok((base, history, incrs))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, Vec::new(), Vec::new())),
        Err(err) => Err(AofError::OpenManifest {
            path: manifest_path.display().to_string(),
            err,
        }),
    }
}

/// BGREWRITEAOF (the caller holds the store lock). With the AOF off (Redis 7.0 runs
/// it too) no incr file is opened: the new base replaces the base and every incr
/// file the manifest listed, and the manifest names only it.
pub fn rewrite(server: &Arc<Server>, store: &mut Store) -> Result<(), AofError> {
    let mut g = server.aof.lock();
    if g.as_ref().is_some_and(|st| st.rewrite_in_progress()) {
        return Err(AofError::RewriteInProgress);
    }
    if !g.as_ref().is_some_and(AofState::is_on) {
        if let Err(e) = refresh_off_state(server, &mut g) {
            warning!("{e}");
            if let Some(st) = g.as_mut() {
                st.last_rewrite_ok = false;
            }
            return Err(AofError::RewriteStart);
        }
    }
    let Some(st) = g.as_mut() else {
        return Err(AofError::RewriteStart);
    };
    let first_incr_seq = if st.is_on() {
        match open_next_incr(st) {
            Ok(seq) => seq,
            Err(e) => {
                warning!("{e}");
                st.last_rewrite_ok = false;
                return Err(AofError::RewriteStart);
            }
        }
    } else {
        // No incr file follows the new base.
        u64::MAX
    };
    st.rewrites += 1;
    st.last_rewrite_id += 1;
    let id = st.last_rewrite_id;
    let temp_base = temp_base_name(id);
    let dir = st.dir.clone();
    let opts = {
        let c = server.config.read();
        rdb::SaveOptions {
            compression: c.rdbcompression,
            checksum: c.rdbchecksum,
            repl: None,
            aof_base: true,
            functions: crate::commands::function_lib::codes(store),
            key_delay: c.rdb_key_save_delay,
            commands: !c.aof_use_rdb_preamble,
            timestamp: c.aof_timestamp_enabled,
        }
    };
    let (job, pid) = base_job(server, store, &dir, &temp_base, &opts);
    notice!(
        "Background append only file rewriting started by pid {}",
        pid.unwrap_or(std::process::id() as i32)
    );
    st.rewrite = Some(RunningRewrite {
        id,
        pid,
        started: Instant::now(),
        temp_base,
        first_incr_seq,
        rdb_base: !opts.commands,
    });
    drop(g);
    let srv = server.clone();
    let spawned = std::thread::Builder::new()
        .name("aof-rewrite".into())
        .spawn(move || finish(&srv, id, job()));
    if let Err(e) = spawned {
        // The job (and a forked child with it) was dropped: `ForkedSave`'s Drop
        // killed the child. Nothing was installed.
        if let Some(st) = server.aof.lock().as_mut() {
            st.rewrite = None;
            failed(st);
        }
        return Err(AofError::Background(e));
    }
    Ok(())
}

type Job = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// The work that writes the new base to `dir/temp_base`: a forked child's (see
/// `crate::snapshot`), or if fork fails a thread's over a copy of the databases
/// cloned under the lock. Returns it with the child's pid.
fn base_job(
    server: &Server,
    store: &Store,
    dir: &Path,
    temp_base: &str,
    opts: &rdb::SaveOptions,
) -> (Job, Option<i32>) {
    match crate::persist::fork_save(&server.children, &store.dbs, dir, temp_base, opts) {
        Ok(fs) => {
            let pid = fs.pid();
            (Box::new(move || fs.finish()), Some(pid))
        }
        Err(e) => {
            warning!("Can't fork for BGREWRITEAOF ({e}): writing the base from an in-process copy instead");
            let snapshot: Vec<Db> = store.dbs.clone();
            let (dir, name, opts) = (dir.to_path_buf(), temp_base.to_string(), opts.clone());
            let job: Job = Box::new(move || {
                let res = crate::persist::write_file_atomic(&snapshot, &dir, &name, &opts);
                drop(snapshot);
                res
            });
            (job, None)
        }
    }
}

/// The end of rewrite `id` (on its thread): installs the new base, or records the
/// failure. A rewrite abandoned meanwhile (a full sync stopped it) only removes its
/// file.
fn finish(server: &Server, id: u64, res: std::io::Result<()>) {
    let mut g = server.aof.lock();
    let Some(st) = g.as_mut() else {
        return;
    };
    let Some(run) = st.rewrite.take_if(|r| r.id == id) else {
        let _ = std::fs::remove_file(st.dir.join(temp_base_name(id)));
        return;
    };
    st.last_rewrite_time_sec = run.started.elapsed().as_secs() as i64;
    if let Err(e) = res {
        warning!("Background AOF rewrite failed: {e}");
        let _ = std::fs::remove_file(st.dir.join(&run.temp_base));
        failed(st);
        return;
    }
    notice!("Background AOF rewrite terminated with success");
    let keep_history = super::disable_auto_gc(&server.config.read());
    if let Err(e) = install(st, &run, keep_history) {
        warning!("{e}");
        failed(st);
        return;
    }
    st.rewrite_failures = 0;
    st.last_rewrite_ok = true;
    notice!("Background AOF rewrite finished successfully");
}

/// Records a failed rewrite. In the wait state its temp incr file goes too (the
/// next try writes a new one from its own start) and the cron retries.
fn failed(st: &mut AofState) {
    st.last_rewrite_ok = false;
    st.rewrite_failures += 1;
    if st.wait_rewrite {
        let name = temp_incr_name(&st.prefix);
        notice!("Removing the temp incr aof file {name} in the background");
        let _ = std::fs::remove_file(st.dir.join(&name));
        st.writer = Writer::new(0);
    }
}

/// Why a finished rewrite could not be installed (the manifest was left as it was).
#[derive(Debug, thiserror::Error)]
enum InstallError {
    #[error("Error trying to rename the temporary AOF base file {tmp} into {name}: {reason}")]
    Base {
        tmp: String,
        name: String,
        reason: String,
    },
    #[error("Error trying to rename the temporary AOF incr file {tmp} into {name}: {reason}")]
    Incr {
        tmp: String,
        name: String,
        reason: String,
    },
    #[error("Background AOF rewrite failed writing the manifest: {0}")]
    Manifest(AofError),
}

/// The new base and incr files a finished rewrite is installed with.
fn installed_files(st: &AofState, run: &RunningRewrite) -> (ManifestEntry, Vec<ManifestEntry>) {
    let base_seq = st.base.as_ref().map(|b| b.seq).unwrap_or(0) + 1;
    let base = ManifestEntry {
        name: base_name(&st.prefix, base_seq, run.rdb_base),
        seq: base_seq,
        kind: 'b',
    };
    let incrs = if st.wait_rewrite {
        let seq = st.incrs.last().map(|e| e.seq).unwrap_or(0) + 1;
        vec![ManifestEntry {
            name: format!("{}.{seq}.incr.aof", st.prefix),
            seq,
            kind: 'i',
        }]
    } else {
        let from = run.first_incr_seq;
        st.incrs.iter().filter(|e| e.seq >= from).cloned().collect()
    };
    (base, incrs)
}

/// Puts the new base (and in the wait state the temp incr file) in place and
/// switches the manifest to them in one rename, then removes what they replace.
/// With `keep_history` (`aof-disable-auto-gc yes`) the replaced files stay, listed
/// in the manifest as history, the ones just retired first (the incr files in
/// order, then the old base), as Redis lists them.
fn install(
    st: &mut AofState,
    run: &RunningRewrite,
    keep_history: bool,
) -> Result<(), InstallError> {
    let (base, keep) = installed_files(st, run);
    let dir = st.dir.clone();
    let renamed = |tmp: &str, name: &str| {
        std::fs::rename(dir.join(tmp), dir.join(name)).map_err(|e| (tmp.to_string(), strerror(&e)))
    };
    if let Err((tmp, reason)) = renamed(&run.temp_base, &base.name) {
        let _ = std::fs::remove_file(dir.join(&run.temp_base));
        let name = base.name.clone();
        return Err(InstallError::Base { tmp, name, reason });
    }
    notice!(
        "Successfully renamed the temporary AOF base file {} into {}",
        run.temp_base,
        base.name
    );
    let new_incr = keep.first().filter(|_| st.wait_rewrite).cloned();
    if let Some(incr) = &new_incr {
        if let Err((tmp, reason)) = renamed(&temp_incr_name(&st.prefix), &incr.name) {
            let _ = std::fs::remove_file(dir.join(&base.name));
            let name = incr.name.clone();
            return Err(InstallError::Incr { tmp, name, reason });
        }
        notice!(
            "Successfully renamed the temporary AOF incr file {} into {}",
            temp_incr_name(&st.prefix),
            incr.name
        );
    }
    let new_base = Some(base);
    let retired: Vec<ManifestEntry> = st
        .incrs
        .iter()
        .filter(|e| !keep.contains(e))
        .chain(st.base.iter())
        .map(|e| ManifestEntry {
            kind: 'h',
            ..e.clone()
        })
        .collect();
    let history: Vec<ManifestEntry> = if keep_history {
        retired.iter().chain(&st.history).cloned().collect()
    } else {
        Vec::new()
    };
    if let Err(e) = write_manifest(&dir, &st.prefix, &new_base, &history, &keep) {
        for e in new_base.iter().chain(&new_incr) {
            let _ = std::fs::remove_file(dir.join(&e.name));
        }
        return Err(InstallError::Manifest(e));
    }
    if !keep_history {
        super::remove_history(&dir, &retired);
        super::remove_history(&dir, &std::mem::take(&mut st.history));
    }
    st.history = history;
    st.base = new_base;
    st.incrs = keep;
    if st.is_on() {
        st.base_size = total_size(&dir, &st.base, &st.incrs);
        st.cur_size = st.base_size;
    }
    st.wait_rewrite = false;
    Ok(())
}

/// Kills the running rewrite, if any, and forgets it: its completion finds another
/// id (or none) and only removes its file (Redis `killAppendOnlyChild`).
fn abandon_rewrite(server: &Server, st: &mut AofState) {
    let Some(run) = st.rewrite.take() else {
        return;
    };
    if let Some(pid) = run.pid {
        notice!("Killing running AOF rewrite child: {pid}");
        server.children.kill(pid);
    }
}

/// Redis `stopAppendOnly` before a replica loads a full sync: what is buffered is
/// written and fsynced to the current file, which then gets nothing more; a running
/// rewrite is killed.
fn stop(server: &Server, st: &mut AofState) {
    if let Err(errno) = st.flush() {
        warning!(
            "Error writing the buffered AOF commands before loading the master's data: {}",
            writer::strerror(errno)
        );
    }
    if let Some(Err(e)) = st.file.as_ref().map(File::sync_all) {
        warning!(
            "Fail to fsync the AOF file before loading the master's data: {}",
            strerror(&e)
        );
    }
    abandon_rewrite(server, st);
    st.writer = Writer::new(0);
    st.cur_db = -1;
    if st.fsync_errno.take().is_some() {
        warning!("AOF reopen, just ignore the AOF fsync error in bio job");
    }
    st.pending_fsync = false;
}

/// After a full sync (store lock held, before any streamed command is applied):
/// the AOF stops and waits for a rewrite that makes the loaded dataset its base (see
/// the module doc). As Redis, a rewrite that cannot even start is tried 10 times a
/// second apart, then the process exits: it would otherwise run without the AOF it
/// was configured with.
pub fn restart_after_sync(server: &Arc<Server>, store: &mut Store) {
    {
        let mut g = server.aof.lock();
        let Some(st) = g.as_mut().filter(|st| st.is_on()) else {
            return;
        };
        stop(server, st);
        st.wait_rewrite = true;
    }
    server.persist.lock().aof_rewrite_scheduled = false;
    for _ in 0..RESTART_TRIES {
        if start_waiting(server, store) {
            return;
        }
        warning!("Failed enabling the AOF after successful master synchronization! Trying it again in one second.");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    warning!("FATAL: this replica instance finished the synchronization with its master, but the AOF can't be turned on. Exiting now.");
    std::process::exit(1);
}

/// Redis `startAppendOnly`: the rewrite starts now, or (a BGSAVE runs) the cron
/// starts it when it can. False if it could not start.
fn start_waiting(server: &Arc<Server>, store: &mut Store) -> bool {
    if server.persist.lock().bgsave_in_progress {
        warning!("AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible.");
        return true;
    }
    if rewrite(server, store).is_err() {
        warning!("Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error.");
        return false;
    }
    true
}

/// CONFIG SET appendonly yes (Redis `startAppendOnly`): the AOF starts in the wait
/// state, its writes going to the temp incr file, and a rewrite makes the current
/// dataset its base; when that is done the manifest lists the new base and incr file
/// (replacing the files of an earlier AOF in the directory, if any). While a BGSAVE
/// runs the rewrite is left to the cron. The caller holds the store lock; `config`
/// is the configuration being set.
pub fn start_at_runtime(
    server: &Arc<Server>,
    store: &mut Store,
    config: &crate::config::Config,
) -> Result<(), AofError> {
    if server.aof.lock().as_ref().is_some_and(AofState::is_on) {
        return Ok(());
    }
    let dir = Path::new(&config.dir).join(&config.appenddirname);
    let prefix = config.appendfilename.clone();
    std::fs::create_dir_all(&dir).map_err(|err| AofError::CreateDir {
        dir: dir.display().to_string(),
        err,
    })?;
    // An earlier AOF in the directory is replaced by the first rewrite, with
    // sequence numbers after its own.
    let (base, history, incrs) = read_files(&dir, &prefix)?;
    let name = temp_incr_name(&prefix);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(dir.join(&name))
        .map_err(|e| AofError::OpenIncr {
            name,
            reason: strerror(&e),
        })?;
    let size = total_size(&dir, &base, &incrs);
    {
        let mut g = server.aof.lock();
        let mut st = AofState::opened(
            (dir, prefix),
            (file, 0),
            super::fsync_policy(&config.appendfsync),
            base,
            incrs,
            size,
            true,
        );
        st.history = history;
        st.timestamps = config.aof_timestamp_enabled;
        // With the AOF off a BGREWRITEAOF may have run: its statistics stay (as
        // Redis's), and a rewrite still running is stopped, this one replaces it.
        if let Some(mut prev) = g.take() {
            if prev.rewrite_in_progress() {
                warning!("AOF was enabled but there is already an AOF rewriting in background. Stopping background AOF and starting a rewrite now.");
                abandon_rewrite(server, &mut prev);
            }
            st.rewrites = prev.rewrites;
            st.rewrite_failures = prev.rewrite_failures;
            st.last_rewrite_ok = prev.last_rewrite_ok;
            st.last_rewrite_time_sec = prev.last_rewrite_time_sec;
            st.last_rewrite_id = prev.last_rewrite_id;
        }
        *g = Some(st);
    }
    server.persist.lock().aof_rewrite_scheduled = false;
    if !start_waiting(server, store) {
        if let Some(st) = server.aof.lock().as_mut() {
            let _ = std::fs::remove_file(st.dir.join(temp_incr_name(&st.prefix)));
            st.turn_off();
        }
        return Err(AofError::RewriteStart);
    }
    server
        .aof_on
        .store(true, std::sync::atomic::Ordering::Release);
    notice!("AOF enabled by CONFIG SET appendonly yes");
    Ok(())
}

/// CONFIG SET appendonly no (Redis `stopAppendOnly`): what is buffered is written and
/// fsynced, a running rewrite is killed, and nothing more is logged. The files stay.
/// While still waiting for the first base the temp incr file is removed: without a
/// base it is not a dataset.
pub fn stop_at_runtime(server: &Server) {
    let mut g = server.aof.lock();
    let Some(st) = g.as_mut().filter(|st| st.is_on()) else {
        return;
    };
    server
        .aof_on
        .store(false, std::sync::atomic::Ordering::Release);
    if let Err(errno) = st.flush() {
        warning!(
            "Error writing the buffered AOF commands when turning the AOF off: {}",
            writer::strerror(errno)
        );
    }
    if let Some(f) = &st.file {
        let _ = f.sync_all();
    }
    abandon_rewrite(server, st);
    if st.wait_rewrite {
        let _ = std::fs::remove_file(st.dir.join(temp_incr_name(&st.prefix)));
    }
    // The manifest and the rewrite statistics stay, as Redis keeps them.
    st.turn_off();
    server.persist.lock().aof_rewrite_scheduled = false;
    notice!("AOF disabled by CONFIG SET appendonly no");
}

/// SHUTDOWN's AOF step before anything is killed (Redis `finishShutdown`): while
/// the rewrite that writes a replica's first AOF after a full sync runs, exiting
/// would leave the AOF without the synced dataset, so the shutdown fails unless
/// FORCE. Otherwise a running rewrite is killed: the AOF on disk is complete.
pub fn shutdown_check(server: &Server, force: bool) -> Result<(), AofError> {
    let mut g = server.aof.lock();
    let Some(st) = g.as_mut().filter(|st| st.rewrite_in_progress()) else {
        return Ok(());
    };
    if st.wait_rewrite {
        if !force {
            warning!("Writing initial AOF, can't exit.");
            return Err(AofError::WritingInitial);
        }
        warning!("Writing initial AOF. Exit anyway.");
    }
    warning!("There is a child rewriting the AOF. Killing it!");
    abandon_rewrite(server, st);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::aof_file::Fsync;

    fn entry(name: &str, seq: u64, kind: char) -> ManifestEntry {
        ManifestEntry {
            name: name.into(),
            seq,
            kind,
        }
    }

    /// An AOF in `dir` listing base 1 and incr 1..=2 (files present), in the wait
    /// state or not, with a rewrite whose base and temp incr are written.
    fn state(dir: &Path, wait: bool) -> (AofState, RunningRewrite) {
        let base = entry("a.aof.1.base.rdb", 1, 'b');
        let incrs = vec![
            entry("a.aof.1.incr.aof", 1, 'i'),
            entry("a.aof.2.incr.aof", 2, 'i'),
        ];
        for e in std::iter::once(&base).chain(&incrs) {
            std::fs::write(dir.join(&e.name), b"old").unwrap();
        }
        write_manifest(dir, "a.aof", &Some(base.clone()), &[], &incrs).unwrap();
        std::fs::write(dir.join("temp-base"), b"new base").unwrap();
        std::fs::write(dir.join(temp_incr_name("a.aof")), b"streamed").unwrap();
        let st = AofState {
            dir: dir.to_path_buf(),
            prefix: "a.aof".into(),
            file: Some(File::open(dir.join("a.aof.2.incr.aof")).unwrap()),
            writer: Writer::new(0),
            cur_db: -1,
            timestamps: false,
            last_ts: 0,
            flush_sleep_us: 0,
            fsync: Fsync::No,
            pending_fsync: false,
            fsync_in_progress: false,
            fsync_errno: None,
            last_fsync: Instant::now(),
            base: Some(base),
            incrs,
            history: Vec::new(),
            wait_rewrite: wait,
            rewrite: None,
            last_rewrite_id: 1,
            retry_limit: Default::default(),
            rewrites: 0,
            rewrite_failures: 0,
            last_rewrite_ok: true,
            last_rewrite_time_sec: -1,
            base_size: 0,
            cur_size: 0,
        };
        let run = RunningRewrite {
            id: 1,
            pid: None,
            started: Instant::now(),
            temp_base: "temp-base".into(),
            first_incr_seq: 2,
            rdb_base: true,
        };
        (st, run)
    }

    fn manifest(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("a.aof.manifest")).unwrap()
    }

    const OLD: &str = "file a.aof.1.base.rdb seq 1 type b\nfile a.aof.1.incr.aof seq 1 type i\nfile a.aof.2.incr.aof seq 2 type i\n";

    #[test]
    fn a_waiting_rewrite_installs_its_base_and_temp_incr_together() {
        let d = tempfile::tempdir().unwrap();
        let (mut st, run) = state(d.path(), true);
        install(&mut st, &run, false).unwrap();
        assert_eq!(
            manifest(d.path()),
            "file a.aof.2.base.rdb seq 2 type b\nfile a.aof.3.incr.aof seq 3 type i\n"
        );
        assert_eq!(
            std::fs::read(d.path().join("a.aof.3.incr.aof")).unwrap(),
            b"streamed"
        );
        for gone in [
            "a.aof.1.base.rdb",
            "a.aof.1.incr.aof",
            "a.aof.2.incr.aof",
            "temp-base",
        ] {
            assert!(!d.path().join(gone).exists(), "{gone}");
        }
        assert!(!st.wait_rewrite);
    }

    #[test]
    fn a_normal_rewrite_keeps_the_incr_files_opened_since_it_started() {
        let d = tempfile::tempdir().unwrap();
        let (mut st, run) = state(d.path(), false);
        install(&mut st, &run, false).unwrap();
        assert_eq!(
            manifest(d.path()),
            "file a.aof.2.base.rdb seq 2 type b\nfile a.aof.2.incr.aof seq 2 type i\n"
        );
        assert!(!d.path().join("a.aof.1.incr.aof").exists());
    }

    /// A disk error while installing (here the temp incr file is gone) leaves the
    /// old manifest and its files as they were, and removes the new base.
    #[test]
    fn a_failed_install_leaves_the_old_manifest_and_files() {
        let d = tempfile::tempdir().unwrap();
        let (mut st, run) = state(d.path(), true);
        std::fs::remove_file(d.path().join(temp_incr_name("a.aof"))).unwrap();
        let err = install(&mut st, &run, false).unwrap_err();
        assert!(matches!(err, InstallError::Incr { .. }), "{err}");
        assert_eq!(manifest(d.path()), OLD);
        assert!(!d.path().join("a.aof.2.base.rdb").exists());
        for kept in ["a.aof.1.base.rdb", "a.aof.1.incr.aof", "a.aof.2.incr.aof"] {
            assert!(d.path().join(kept).exists(), "{kept}");
        }
        assert!(st.wait_rewrite);
        assert_eq!(st.incrs.len(), 2);
        // And the failure drops the temp incr state so the next try starts clean.
        failed(&mut st);
        assert_eq!(st.rewrite_failures, 1);
        assert!(!st.last_rewrite_ok);
    }
}
