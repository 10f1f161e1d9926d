//! Subsystem layer: Lua scripting (EVAL/EVALSHA/SCRIPT, later FUNCTION/FCALL). Lua is
//! isolated here; scripts run commands only through `exec`'s script door
//! ([`crate::exec::script_call`]).
//!
//! The state ([`Scripts`]) is a field of the store: the Lua VM and the EVAL script
//! cache are ordered with the keyspace under the store lock. A script runs inside a
//! command handler (which holds `&mut Ctx`): the VM is taken out of the store for the
//! duration of the run and `redis.call` (a C function made once per state) reaches the
//! store, server and client through a slot the run fills and empties, so no Lua value
//! holds a reference to the store after the run. The run itself and the conversions
//! on its hot path work on Lua's raw stack ([`raw`]).
//!
//! What is not EVAL-specific, for Functions to reuse: [`run`] (flags, conversions,
//! the busy/kill machinery, the exec door) takes any compiled function, a label for
//! error messages, and the script's flags.

pub use crate::server::busy;
pub mod convert;
pub mod libs;
pub mod raw;
pub mod shebang;
pub(crate) mod vm;

pub use busy::Busy;
pub use shebang::ScriptFlags;
pub use vm::sha1_hex;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Bytes Redis 7.0 counts per cached script besides its body (INFO
/// `used_memory_scripts_eval`; measured: 120 bytes for an 8-byte body).
const CACHE_ENTRY_OVERHEAD: usize = 112;

/// A script in the EVAL cache: its compiled function is held in the Lua registry,
/// where a run fetches it by integer (`lua_rawgeti`).
#[derive(Debug)]
struct Cached {
    func: mlua::RegistryKey,
    flags: ScriptFlags,
}

/// Whether a name is a command of the server (`redis.acl_check_cmd`): the command table
/// belongs to a layer above, so the caller that creates the state hands it in.
pub type IsCommand = fn(&[u8]) -> bool;

/// The scripting state of a server.
#[derive(Debug)]
pub struct Scripts {
    pub(crate) vm: Option<Box<vm::Vm>>,
    /// sha1 (lowercase hex) -> compiled EVAL script.
    /// (aHash, keyed per process like the keyspace's: SipHash was ~120 instructions
    /// of every EVALSHA.)
    cache: HashMap<String, Cached, ahash::RandomState>,
    cache_bytes: usize,
    pub(crate) busy: Arc<Busy>,
    pub(crate) rand: Arc<vm::Rand48>,
    is_command: IsCommand,
    /// Scratch of the layer that runs scripts, kept from run to run (its script client
    /// and reply buffer); opaque here.
    pub(crate) spare: Option<Box<dyn std::any::Any + Send>>,
}

/// The store's scripting state, created on first use (and at server start, so INFO
/// shows the VM from the beginning). `busy` is the server's shared busy state.
pub fn state<'a>(
    store: &'a mut crate::server::Store,
    busy: &Arc<Busy>,
    is_command: IsCommand,
) -> &'a mut Scripts {
    state_in(&mut store.scripts, busy, is_command)
}

/// [`state`] on the store's slot alone (so another field can be borrowed beside it).
pub fn state_in<'a>(
    slot: &'a mut crate::server::ScriptSlot,
    busy: &Arc<Busy>,
    is_command: IsCommand,
) -> &'a mut Scripts {
    let slot = slot
        .0
        .get_or_insert_with(|| Box::new(Scripts::new(busy.clone(), is_command)));
    if !slot.is::<Scripts>() {
        *slot = Box::new(Scripts::new(busy.clone(), is_command));
    }
    match slot.downcast_mut::<Scripts>() {
        Some(s) => s,
        // Checked (or replaced) just above.
        None => unreachable!("the script slot holds Scripts"),
    }
}

/// INFO's scripting memory figures (zero before the state exists).
pub fn memory(store: &crate::server::Store) -> MemoryInfo {
    store
        .scripts
        .0
        .as_ref()
        .and_then(|b| b.downcast_ref::<Scripts>())
        .map_or(
            MemoryInfo {
                vm_eval: 0,
                scripts_eval: 0,
                cached_scripts: 0,
            },
            Scripts::memory,
        )
}

impl Scripts {
    fn new(busy: Arc<Busy>, is_command: IsCommand) -> Self {
        let rand = Arc::new(vm::Rand48::default());
        Scripts {
            vm: new_vm(&busy, &rand, is_command),
            cache: HashMap::default(),
            cache_bytes: 0,
            busy,
            rand,
            is_command,
            spare: None,
        }
    }
}

fn new_vm(busy: &Arc<Busy>, rand: &Arc<vm::Rand48>, is_command: IsCommand) -> Option<Box<vm::Vm>> {
    match vm::Vm::new(busy.clone(), rand.clone(), is_command) {
        Ok(vm) => Some(Box::new(vm)),
        Err(e) => {
            crate::warning!("Failed to create the Lua VM: {e}");
            None
        }
    }
}

/// Why a script could not be found or compiled.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("NOSCRIPT No matching script. Please use EVAL.")]
    NoScript,
    #[error("ERR Error compiling script (new function): {0}")]
    Compile(String),
    #[error(transparent)]
    Shebang(#[from] shebang::ShebangError),
    #[error("ERR the Lua scripting engine could not be started")]
    NoVm,
}

/// INFO memory's scripting fields.
#[derive(Debug, Clone, Copy)]
pub struct MemoryInfo {
    pub vm_eval: usize,
    pub scripts_eval: usize,
    pub cached_scripts: usize,
}

impl Scripts {
    /// The busy state, shared with the server (connections read it unlocked).
    pub fn busy(&self) -> Arc<Busy> {
        self.busy.clone()
    }

    /// Compiles `src` into the cache (if not there yet); returns its sha1.
    pub fn load(&mut self, src: &[u8]) -> Result<String, ScriptError> {
        let sha = sha1_hex(src);
        if !self.cache.contains_key(&sha) {
            let (flags, body) = shebang::parse(src)?;
            let vm = self.vm.as_ref().ok_or(ScriptError::NoVm)?;
            let func = vm
                .compile(body, "@user_script")
                .map_err(ScriptError::Compile)?;
            let func = vm
                .lua
                .create_registry_value(func)
                .map_err(|e| ScriptError::Compile(vm::error_text(&e)))?;
            self.cache_bytes += CACHE_ENTRY_OVERHEAD + src.len();
            self.cache.insert(sha.clone(), Cached { func, flags });
        }
        Ok(sha)
    }

    pub fn exists(&self, sha: &[u8]) -> bool {
        std::str::from_utf8(sha).is_ok_and(|s| self.cache.contains_key(&s.to_ascii_lowercase()))
    }

    /// SCRIPT FLUSH: drops the cache and starts a fresh VM (freeing the old one).
    pub fn flush(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
        self.vm = None;
        self.vm = new_vm(&self.busy, &self.rand, self.is_command);
    }

    pub fn memory(&self) -> MemoryInfo {
        MemoryInfo {
            vm_eval: self.vm.as_ref().map_or(0, |vm| vm.used_memory()),
            scripts_eval: self.cache_bytes,
            cached_scripts: self.cache.len(),
        }
    }

    /// The compiled script (as a run calls it), its flags and its name in error texts
    /// (the sha1 in lowercase) for a sha1 sent in any case.
    pub(crate) fn cached<'s>(
        &self,
        sha: &'s [u8],
    ) -> Result<(raw::Callee<'static>, ScriptFlags, Cow<'s, str>), ScriptError> {
        let key = std::str::from_utf8(sha).map_err(|_| ScriptError::NoScript)?;
        // Clients send the lowercase hex SCRIPT LOAD returned: look that up as is.
        let (c, name) = match self.cache.get(key) {
            Some(c) => (c, Cow::Borrowed(key)),
            None => self.cached_lowercase(key)?,
        };
        Ok((raw::Callee::Registry(c.func.id()), c.flags, name))
    }

    /// [`Scripts::cached`] of a sha1 sent with uppercase letters (out of line: rare).
    #[cold]
    #[inline(never)]
    fn cached_lowercase<'s>(&self, key: &str) -> Result<(&Cached, Cow<'s, str>), ScriptError> {
        let lower = key.to_ascii_lowercase();
        let c = self.cache.get(&lower).ok_or(ScriptError::NoScript)?;
        Ok((c, Cow::Owned(lower)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::Reply;
    use bytes::Bytes;

    /// Out of Lua memory while a run fills KEYS/ARGV (before the script runs, so
    /// no error handler sees it): Redis 7.0's text for an error that is not an error
    /// table, `Error running script <name>, <message>`. Not reachable over TCP: the
    /// state's limit is 1 GiB, past the query buffer limit.
    #[test]
    fn memory_exhausted_while_argv_fills_reads_as_redis_error_running_script() {
        let mut scripts = Scripts::new(Arc::new(Busy::default()), |_| true);
        let sha = scripts.load(b"return 1").expect("compiles");
        let (callee, _, name) = scripts.cached(sha.as_bytes()).expect("cached");
        let vm = scripts.vm.as_ref().expect("vm");
        let args: Vec<Bytes> = (0..20_000)
            .map(|i| Bytes::from(format!("argument number {i}")))
            .collect();
        let run = raw::Run {
            func: callee,
            keys: &[],
            args: &args,
            fresh_tables: false,
            label: &name,
        };
        vm.lua
            .set_memory_limit(vm.lua.used_memory() + 64 * 1024)
            .expect("limit");
        let mut out = Reply::new(false);
        let ran = raw::run(&vm.lua, &vm.refs, &vm.flags, &run, &mut out).expect("ran");
        let raw::Ran::Failed(text) = ran else {
            panic!("{ran:?}")
        };
        assert_eq!(
            text,
            format!("ERR Error running script {sha}, not enough memory")
        );
        assert!(out.buf.is_empty());
        // With room again the same run succeeds.
        vm.lua.set_memory_limit(vm::MEMORY_LIMIT).expect("limit");
        let _ = vm.lua.gc_collect();
        let ran = raw::run(&vm.lua, &vm.refs, &vm.flags, &run, &mut out).expect("ran");
        assert!(matches!(ran, raw::Ran::Written), "{ran:?}");
        assert_eq!(out.buf, b":1\r\n");
    }
}
