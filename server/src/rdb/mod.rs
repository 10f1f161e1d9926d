//! RDB snapshots in Redis 7.0's format (version 10): one encoder and one decoder over
//! `std::io::Write` / `std::io::Read`, shared by SAVE, BGSAVE, startup load, DEBUG
//! RELOAD, the AOF base file and full resynchronisation.
//!
//! File layout (byte level; see also each submodule):
//! ```text
//! "REDIS" + 4 ASCII digits ("0010")
//! { AUX | MODULE_AUX | FUNCTION2 | SELECTDB | RESIZEDB | key entry }*
//! 0xFF, then the CRC64 of everything before it (incl. the 0xFF), 8 bytes LE (v >= 5)
//! ```
//! Opcodes: 0xFF EOF, 0xFE SELECTDB len, 0xFD EXPIRETIME i32 LE seconds,
//! 0xFC EXPIRETIME_MS i64 LE, 0xFB RESIZEDB len len, 0xFA AUX string string,
//! 0xF9 FREQ u8, 0xF8 IDLE len, 0xF7 MODULE_AUX, 0xF6 FUNCTION (7.0-rc), 0xF5 FUNCTION2
//! string. Any other byte is a value type followed by the key string and the value.
//!
//! Lengths: top two bits of the first byte: `00` 6-bit, `01` 14-bit (big-endian over
//! two bytes), `10000000` + u32 BE, `10000001` + u64 BE, `11xxxxxx` a special string
//! encoding: 0 int8, 1 int16 LE, 2 int32 LE (value = decimal text), 3 LZF
//! (len compressed, len uncompressed, data).
//!
//! Value types read: 0 string, 1 list, 2 set, 3 zset (ASCII scores), 4 hash, 5 zset_2
//! (f64 LE scores), 9 zipmap, 10 ziplist list, 11 intset, 12 zset ziplist,
//! 13 hash ziplist, 14 quicklist (ziplist nodes), 16 hash listpack, 17 zset listpack,
//! 18 quicklist 2 (PLAIN = 1 / PACKED = 2 listpack nodes), 20 set listpack (7.2).
//! Streams: 15 (5.0-6.2, missing metadata derived as 7.0 does), 19 (7.0) and 21 (7.2,
//! consumer active time dropped on write); listpack nodes are kept as validated blobs
//! (see `types::stream`). Module values (6, 7) are refused; MODULE_AUX
//! and FUNCTION/FUNCTION2 payloads are skipped (function libraries are not kept).
//!
//! Writer: RDB 10 with the aux fields 7.0 writes (redis-ver 7.0.15, redis-bits, ctime,
//! used-mem, repl-stream-db/repl-id/repl-offset when given, aof-base), SELECTDB +
//! RESIZEDB per non-empty db, EXPIRETIME_MS, and the encodings Redis 7.0 picks with
//! default thresholds: listpack hashes (<= 512 entries) and zsets (<= 128), elements
//! <= 64 bytes,
//! intset sets (<= 512 integers), quicklist 2 of ~8 KiB listpack nodes for lists,
//! otherwise the plain hashtable/skiplist forms; streams as type 19 (7.0's layout). Strings: int8/16/32 when canonical,
//! LZF when compression is on and the string is longer than 20 bytes.
//!
//! Neither side buffers: `load` reads exactly the RDB bytes (so a replication stream
//! that follows the payload stays unread) and `save` writes straight through, so pass
//! a `BufReader`/`BufWriter` when the other end is a file or socket.

pub mod crc64;
pub mod intset;
pub mod listpack;
pub mod lzf;
mod reader;
mod writer;
pub mod ziplist;
pub mod zipmap;

pub use reader::{functions_from_payload, load, load_delayed, value_from_bytes};
pub use writer::{functions_payload, save, value_bytes};

/// Replication identity stored in the aux fields (repl-id, repl-offset, repl-stream-db).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplInfo {
    pub replid: String,
    pub offset: i64,
    pub stream_db: i64,
}

#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// LZF-compress strings longer than 20 bytes (`rdbcompression`).
    pub compression: bool,
    /// Write the CRC64 trailer; false writes 0 (`rdbchecksum`).
    pub checksum: bool,
    pub repl: Option<ReplInfo>,
    /// Mark the file as an AOF base (`aof-base 1`).
    pub aof_base: bool,
    /// The codes of the function libraries, written as FUNCTION2 records after the
    /// aux fields (Redis 7.0's place for them).
    pub functions: Vec<bytes::Bytes>,
    /// `rdb-key-save-delay`: a pause per key written (see [`key_delay`]).
    pub key_delay: i32,
    /// Write the AOF base as commands instead of an RDB (`aof-use-rdb-preamble no`;
    /// see `crate::aof::base_commands`). Only `functions` and `key_delay` apply then.
    pub commands: bool,
    /// With `commands`: start with a `#TS:<unix time>` annotation
    /// (`aof-timestamp-enabled`).
    pub timestamp: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            compression: true,
            checksum: true,
            repl: None,
            aof_base: false,
            functions: Vec::new(),
            key_delay: 0,
            commands: false,
            timestamp: false,
        }
    }
}

/// The per-key pause of `rdb-key-save-delay` / `key-load-delay`, which test tools use
/// to slow a save or a load down. A positive value is microseconds per key; a negative
/// value `-n` pauses one microsecond every `n` keys (`count` is the key's ordinal), as
/// Redis's statistical sleep averages to.
pub fn key_delay(delay: i32, count: u64) {
    let us = match delay {
        0 => return,
        d if d > 0 => d.unsigned_abs(),
        d if count.is_multiple_of(u64::from(d.unsigned_abs())) => 1,
        _ => return,
    };
    std::thread::sleep(std::time::Duration::from_micros(u64::from(us)));
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Current time, to drop keys already expired.
    pub now_ms: i64,
    /// Drop keys whose expiry is in the past (a master does; a replica keeps them).
    pub drop_expired: bool,
    /// The encoding thresholds in force: loaded values take their shapes from them.
    pub shapes: Shapes,
}

/// The encoding thresholds in force when values are loaded (CONFIG SET applies to later
/// loads too): a loaded hash, set or sorted set takes the shape Redis would give it under
/// them, and OBJECT ENCODING after a load answers as Redis's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shapes {
    pub hash: crate::types::Limits,
    pub zset: crate::types::Limits,
    pub set_max_intset_entries: usize,
    /// `list-max-listpack-size`: the node size of loaded lists.
    pub list_fill: i32,
}

impl Default for Shapes {
    /// Redis 7.0's compiled-in defaults.
    fn default() -> Self {
        Shapes {
            hash: crate::types::Limits::HASH,
            zset: crate::types::Limits::ZSET,
            set_max_intset_entries: SET_MAX_INTSET_ENTRIES,
            list_fill: crate::types::list::DEFAULT_FILL,
        }
    }
}

impl Shapes {
    pub fn of(c: &crate::config::Config) -> Shapes {
        Shapes {
            hash: crate::types::Limits::hash(c),
            zset: crate::types::Limits::zset(c),
            set_max_intset_entries: c.set_max_intset_entries,
            list_fill: crate::types::List::fill_of(c),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoadInfo {
    /// Keys inserted.
    pub keys: u64,
    /// Keys skipped because their expiry was in the past.
    pub expired: u64,
    /// Those keys, with their databases, in file order (a master that loads its
    /// RDB at startup sends their DELs to its replicas, as Redis 7.0 does).
    pub expired_keys: Vec<(usize, bytes::Bytes)>,
    /// Replication info, only when repl-id (40 bytes), repl-offset and repl-stream-db
    /// were all present and valid, as Redis requires.
    pub repl: Option<ReplInfo>,
    pub version: u32,
    pub redis_ver: Option<String>,
    pub ctime: Option<i64>,
    pub used_mem: Option<i64>,
    pub aof_base: bool,
    /// Values that decoded to an empty container and were skipped.
    pub empty_skipped: u64,
    /// The stored checksum was 0 ("saved with checksum disabled"): nothing checked.
    pub checksum_disabled: bool,
    /// The codes of the function libraries (FUNCTION2 records), in file order;
    /// the caller loads them into its registry.
    pub functions: Vec<bytes::Bytes>,
}

#[derive(thiserror::Error, Debug)]
pub enum RdbError {
    #[error("Wrong signature trying to load DB from file")]
    WrongSignature,
    #[error("Can't handle RDB format version {0}")]
    UnsupportedVersion(u32),
    #[error("Wrong RDB checksum expected: ({expected:x}) but got ({got:x}). Aborting now.")]
    BadChecksum { expected: u64, got: u64 },
    #[error("Short read loading DB: the RDB file is truncated at offset {0}")]
    Truncated(u64),
    #[error("Corrupt RDB at offset {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    #[error("module type not supported (RDB type {rdb_type}, key '{key}')")]
    ModuleNotSupported { rdb_type: u8, key: String },
    #[error(
        "Data file was created with a Redis server configured to handle more than {0} databases"
    )]
    TooManyDbs(usize),
    #[error("RDB has duplicated key '{key}' in DB {db}")]
    DuplicateKey { key: String, db: usize },
    #[error("Error reading the RDB: {0}")]
    Io(#[from] std::io::Error),
}

// Opcodes.
pub(crate) const OP_FUNCTION2: u8 = 0xF5;
pub(crate) const OP_FUNCTION: u8 = 0xF6;
pub(crate) const OP_MODULE_AUX: u8 = 0xF7;
pub(crate) const OP_IDLE: u8 = 0xF8;
pub(crate) const OP_FREQ: u8 = 0xF9;
pub(crate) const OP_AUX: u8 = 0xFA;
pub(crate) const OP_RESIZEDB: u8 = 0xFB;
pub(crate) const OP_EXPIRETIME_MS: u8 = 0xFC;
pub(crate) const OP_EXPIRETIME: u8 = 0xFD;
pub(crate) const OP_SELECTDB: u8 = 0xFE;
pub(crate) const OP_EOF: u8 = 0xFF;

// Value types.
pub(crate) const T_STRING: u8 = 0;
pub(crate) const T_LIST: u8 = 1;
pub(crate) const T_SET: u8 = 2;
pub(crate) const T_ZSET: u8 = 3;
pub(crate) const T_HASH: u8 = 4;
pub(crate) const T_ZSET_2: u8 = 5;
pub(crate) const T_HASH_ZIPMAP: u8 = 9;
pub(crate) const T_LIST_ZIPLIST: u8 = 10;
pub(crate) const T_SET_INTSET: u8 = 11;
pub(crate) const T_ZSET_ZIPLIST: u8 = 12;
pub(crate) const T_HASH_ZIPLIST: u8 = 13;
pub(crate) const T_LIST_QUICKLIST: u8 = 14;
pub(crate) const T_HASH_LISTPACK: u8 = 16;
pub(crate) const T_ZSET_LISTPACK: u8 = 17;
pub(crate) const T_LIST_QUICKLIST_2: u8 = 18;
pub(crate) const T_SET_LISTPACK: u8 = 20;
pub(crate) const T_STREAM_LISTPACKS: u8 = 15;
pub(crate) const T_STREAM_LISTPACKS_2: u8 = 19;
pub(crate) const T_STREAM_LISTPACKS_3: u8 = 21;

/// Thresholds the writer uses to pick compact encodings (Redis 7.0 defaults).
pub(crate) const SET_MAX_INTSET_ENTRIES: usize = 512;
/// list-max-listpack-size -2: listpack nodes of at most 8 KiB.
pub(crate) const LIST_NODE_MAX_BYTES: usize = 8192;

#[cfg(test)]
mod tests;
