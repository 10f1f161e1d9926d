//! Command flags: the metadata the command table carries and the checks in the
//! dispatch read (read-only replicas, OOM, MULTI, pause, fence, propagation). Kept
//! apart from the table so lower layers can take flags without knowing commands.

/// May modify the dataset: rejected on read-only replicas, propagated.
pub const WRITE: u32 = 1 << 0;
pub const READONLY: u32 = 1 << 1;
/// May grow memory: refused with OOM when over maxmemory.
pub const DENYOOM: u32 = 1 << 2;
pub const ADMIN: u32 = 1 << 3;
/// A Pub/Sub command (Redis's `pubsub` flag; COMMAND INFO and ACL categories).
pub const PUBSUB: u32 = 1 << 4;
/// Allowed while the dataset is loading.
pub const LOADING: u32 = 1 << 5;
/// Allowed on a replica whose link is down with replica-serve-stale-data no.
pub const STALE: u32 = 1 << 6;
/// Allowed before AUTH.
pub const NO_AUTH: u32 = 1 << 7;
/// Executed immediately even inside MULTI (MULTI, EXEC, DISCARD, WATCH, ...).
pub const NO_MULTI: u32 = 1 << 8;
pub const FAST: u32 = 1 << 9;
pub const BLOCKING: u32 = 1 << 10;
/// Never propagated even if it changes `dirty` (e.g. SAVE-like admin commands).
pub const NO_PROPAGATE: u32 = 1 << 11;
/// Not fed to MONITOR (Redis's `skip_monitor`; ADMIN commands are skipped too,
/// and AUTH/HELLO are shown with their secrets redacted, see `crate::redact`).
pub const NO_MONITOR: u32 = 1 << 12;
/// May reach the replication stream without being a write (PUBLISH, PFCOUNT's cache
/// refresh, EVAL and FCALL): held by CLIENT PAUSE WRITE, refused in read-only scripts.
pub const MAY_REPLICATE: u32 = 1 << 13;

/// Allowed in a RESP2 subscribed context (SUBSCRIBE and friends, PING, QUIT, RESET).
/// Redis decides this by command name; here it is a flag so the rule stays data. Not
/// a Redis flag: COMMAND INFO does not show it.
pub const SUBSCRIBED: u32 = 1 << 20;

/// Has subcommands in Redis's metadata (CONFIG, CLIENT, OBJECT...): the dispatch checks the
/// subcommand's own arity. Set when the command table is built, never in table rows.
pub const CONTAINER: u32 = 1 << 21;
/// May lazily expire keys it did not name (SCAN, RANDOMKEY): the DELs it propagates
/// when run directly are not wrapped in MULTI/EXEC, like the active expiry's (Redis's
/// `touches-arbitrary-keys`, which COMMAND INFO hides too).
pub const TOUCHES_ARBITRARY_KEYS: u32 = 1 << 22;
/// Refused when called from a script (Redis's `noscript`): transactions, blocking
/// and connection-state commands, EVAL itself...
pub const NO_SCRIPT: u32 = 1 << 14;
