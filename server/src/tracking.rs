//! Client-side caching (`CLIENT TRACKING`), state layer: which clients read which
//! keys, and the invalidation messages a modification sends them.
//!
//! Two modes, as in Redis 7.0:
//! - default: the keys a tracking client read with read-only commands are recorded
//!   in one table keyed by key name (not by database, like Redis's); the first
//!   modification of such a key sends every recorded reader one `invalidate` message
//!   and forgets the key (it is recorded again at the next read).
//! - BCAST: nothing is recorded; every modified key that starts with one of the
//!   client's prefixes is collected per prefix and sent in one message per prefix at
//!   the end of the command ([`Tracking::flush_bcast`]), keys in byte order.
//!
//! Messages go to the client's own connection (RESP3 push `>2 invalidate [keys]`), or
//! with `REDIRECT id` to that connection: a RESP3 one gets the same push, a RESP2 one
//! subscribed to anything gets a `message` on `__redis__:invalidate`. A flush
//! (FLUSHDB/FLUSHALL) sends a null instead of keys. A redirect target that went away
//! marks the client broken-redirect and, in RESP3, it gets a `tracking-redir-broken`
//! push. The receiving connection encodes the message ([`Push::encode`]), since only it
//! knows its protocol and subscriptions at that moment.
//!
//! The table is bounded by `tracking-table-max-keys`: over it, random keys are
//! invalidated (as if modified) until it fits ([`Tracking::limit`]).

use crate::client::ClientId;
use crate::outbuf::Limit;
use crate::pubsub::{MsgSender, PubMsg};
use crate::resp::Reply;
use bytes::Bytes;
use indexmap::IndexMap;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The Pub/Sub channel RESP2 redirect targets receive invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// An out-of-band tracking message, as queued for a connection.
#[derive(Debug, Clone)]
pub enum Push {
    /// Keys to drop from the client's cache; `None` = everything (a flush).
    Invalidate {
        keys: Option<Vec<Bytes>>,
        /// Sent to a REDIRECT target rather than to the tracking client itself.
        redirected: bool,
        /// The tracking client's protocol when a flush's null was made (Redis writes
        /// the null in the tracking client's protocol, even to a RESP2 target).
        null_resp3: bool,
    },
    /// The REDIRECT target is gone (RESP3 clients only): its id.
    RedirBroken(u64),
}

impl Push {
    /// What the message costs in an output buffer (payload plus framing).
    pub fn cost(&self) -> u64 {
        const FRAMING: u64 = 48;
        match self {
            Push::Invalidate {
                keys: Some(keys), ..
            } => FRAMING + keys.iter().map(|k| k.len() as u64 + 16).sum::<u64>(),
            _ => FRAMING,
        }
    }

    /// Encodes the message for the receiving connection, or nothing: a RESP2 client
    /// gets invalidations only as a redirect target in Pub/Sub mode.
    pub fn encode(&self, out: &mut Reply, resp3: bool, subscribed: bool) {
        out.resp3 = resp3;
        match self {
            Push::RedirBroken(id) => {
                if resp3 {
                    out.push(2);
                    out.bulk(b"tracking-redir-broken");
                    out.int(*id as i64);
                }
            }
            Push::Invalidate {
                keys,
                redirected,
                null_resp3,
            } => {
                if resp3 {
                    out.push(2);
                    out.bulk(b"invalidate");
                } else if *redirected && subscribed {
                    out.push(3);
                    out.bulk(b"message");
                    out.bulk(CHANNEL);
                } else {
                    return;
                }
                match keys {
                    Some(keys) => {
                        out.array(keys.len());
                        for k in keys {
                            out.bulk(k);
                        }
                    }
                    None if *null_resp3 => out.raw(b"_\r\n"),
                    None => out.raw(b"$-1\r\n"),
                }
            }
        }
    }
}

/// Why `CLIENT TRACKING` or `CLIENT CACHING` was refused; the texts are Redis's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackingError {
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR A client can only redirect to a single other client")]
    TwoRedirects,
    #[error("ERR The client ID you want redirect to does not exist")]
    NoSuchRedirect,
    #[error("ERR PREFIX option requires BCAST mode to be enabled")]
    PrefixWithoutBcast,
    #[error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.")]
    BcastSwitch,
    #[error("ERR OPTIN and OPTOUT are not compatible with BCAST")]
    OptWithBcast,
    #[error("ERR You can't specify both OPTIN mode and OPTOUT mode")]
    OptinAndOptout,
    #[error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.")]
    OptSwitch,
    #[error("ERR Prefix '{0}' overlaps with an existing prefix '{1}'. Prefixes for a single client must not overlap.")]
    OverlapExisting(String, String),
    #[error("ERR Prefix '{0}' overlaps with another provided prefix '{1}'. Prefixes for a single client must not overlap.")]
    OverlapProvided(String, String),
    #[error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled")]
    CachingNotTracking,
    #[error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")]
    CachingYes,
    #[error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")]
    CachingNo,
}

/// The options of one `CLIENT TRACKING` call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

/// A parsed `CLIENT TRACKING ON|OFF [options]` (redirect not yet resolved).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub on: bool,
    pub redirect: Option<u64>,
    pub prefixes: Vec<Bytes>,
    pub opts: Options,
}

/// Parses `CLIENT TRACKING` arguments (`args` = what follows TRACKING). `exists`
/// says whether a client id is connected (REDIRECT is checked while parsing, as
/// Redis does, so its errors come before the mode checks).
pub fn parse(args: &[Bytes], exists: impl Fn(u64) -> bool) -> Result<Request, TrackingError> {
    let Some((mode, rest)) = args.split_first() else {
        return Err(TrackingError::Syntax);
    };
    let mut req = Request::default();
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        let next = rest.get(i + 1);
        let kw = |k: &str| a.eq_ignore_ascii_case(k.as_bytes());
        match next {
            Some(v) if kw("redirect") => {
                i += 1;
                if req.redirect.is_some() {
                    return Err(TrackingError::TwoRedirects);
                }
                let id = crate::resp::parse_i64(v).ok_or(TrackingError::NotInteger)?;
                // Negative ids are looked up as the unsigned number Redis casts them to.
                let id = id as u64;
                if !exists(id) {
                    return Err(TrackingError::NoSuchRedirect);
                }
                req.redirect = Some(id);
            }
            Some(v) if kw("prefix") => {
                i += 1;
                req.prefixes.push(crate::util::detach(v));
            }
            _ if kw("bcast") => req.opts.bcast = true,
            _ if kw("optin") => req.opts.optin = true,
            _ if kw("optout") => req.opts.optout = true,
            _ if kw("noloop") => req.opts.noloop = true,
            _ => return Err(TrackingError::Syntax),
        }
        i += 1;
    }
    req.on = if mode.eq_ignore_ascii_case(b"on") {
        true
    } else if mode.eq_ignore_ascii_case(b"off") {
        false
    } else {
        return Err(TrackingError::Syntax);
    };
    Ok(req)
}

/// One tracking client.
#[derive(Debug)]
struct Tracker {
    opts: Options,
    /// REDIRECT target id (0 = none) and where its messages go.
    redirect: u64,
    redirect_tx: Option<MsgSender>,
    own_tx: Option<MsgSender>,
    resp3: bool,
    broken: bool,
    /// CLIENT CACHING given for the next command.
    caching: bool,
    /// BCAST prefixes, in the order they were added.
    prefixes: Vec<Bytes>,
}

/// A BCAST prefix: its clients and the keys modified since the last flush (with
/// the client that modified each, for NOLOOP).
#[derive(Debug, Default)]
struct Prefix {
    clients: BTreeSet<ClientId>,
    pending: BTreeMap<Bytes, Option<ClientId>>,
}

/// The server's tracking state (in the store, ordered with the keyspace).
#[derive(Debug, Default)]
pub struct Tracking {
    /// Key -> clients that read it since its last invalidation.
    table: IndexMap<Bytes, BTreeSet<ClientId>, crate::types::Hasher>,
    /// Sum of the table's reader sets (INFO `tracking_total_items`).
    items: u64,
    clients: HashMap<ClientId, Tracker>,
    prefixes: BTreeMap<Bytes, Prefix>,
    /// Prefixes with modified keys waiting for [`Tracking::flush_bcast`].
    bcast_pending: bool,
    /// The client whose command is running (NOLOOP), if any.
    pub current: Option<ClientId>,
    /// The key being invalidated was deleted because it expired: BCAST records it
    /// as modified by nobody, so NOLOOP spares no one (Redis passes no client to
    /// `trackingRememberKeyToBroadcast`); the default mode still skips the running
    /// client, which Redis 7.0 compares with the target alone.
    pub expiring: bool,
    /// The running script called a read-only command: its caller tracks the keys
    /// the script declared (`exec::track_reads`).
    pub script_read: bool,
    /// Rounds in a row [`Tracking::limit`] ended still over the limit.
    limit_rounds: u32,
    /// The client whose command is being admitted (maxmemory eviction before it
    /// runs): messages for its connection (its own, or redirected to it) wait in
    /// `ahead` and are written before its reply, where Redis, outside the command,
    /// writes them at once. Messages of the command itself go through its queue and
    /// come after the reply.
    pub admitting: Option<ClientId>,
    ahead: Vec<Push>,
}

/// What INFO reports about tracking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub clients: usize,
    pub keys: usize,
    pub items: u64,
    pub prefixes: usize,
}

/// What CLIENT TRACKINGINFO reports.
#[derive(Debug, Clone, Default)]
pub struct Info {
    pub flags: Vec<&'static str>,
    pub redirect: i64,
    pub prefixes: Vec<Bytes>,
}

fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Tracking {
    /// True when a modification may concern anyone (one check on every write).
    #[inline]
    pub fn active(&self) -> bool {
        !self.table.is_empty() || !self.prefixes.is_empty()
    }

    /// `CLIENT TRACKING ON|OFF` for client `id`, after [`parse`]. `own_tx` is the
    /// client's queue, `redirect_tx` the target's.
    pub fn apply(
        &mut self,
        id: ClientId,
        req: Request,
        resp3: bool,
        own_tx: Option<MsgSender>,
        redirect_tx: Option<MsgSender>,
    ) -> Result<(), TrackingError> {
        if !req.on {
            self.disable(id);
            return Ok(());
        }
        let o = req.opts;
        if !o.bcast && !req.prefixes.is_empty() {
            return Err(TrackingError::PrefixWithoutBcast);
        }
        let old = self.clients.get(&id);
        if old.is_some_and(|t| t.opts.bcast != o.bcast) {
            return Err(TrackingError::BcastSwitch);
        }
        if o.bcast && (o.optin || o.optout) {
            return Err(TrackingError::OptWithBcast);
        }
        if o.optin && o.optout {
            return Err(TrackingError::OptinAndOptout);
        }
        if old.is_some_and(|t| (o.optin && t.opts.optout) || (o.optout && t.opts.optin)) {
            return Err(TrackingError::OptSwitch);
        }
        if o.bcast {
            check_prefixes(old.map_or(&[][..], |t| &t.prefixes), &req.prefixes)?;
        }
        let mut prefixes = self
            .clients
            .remove(&id)
            .map(|t| t.prefixes)
            .unwrap_or_default();
        if o.bcast {
            let new: Vec<Bytes> = if req.prefixes.is_empty() {
                vec![Bytes::new()]
            } else {
                req.prefixes
            };
            for p in new {
                self.prefixes
                    .entry(p.clone())
                    .or_default()
                    .clients
                    .insert(id);
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
        }
        self.clients.insert(
            id,
            Tracker {
                opts: o,
                redirect: req.redirect.unwrap_or(0),
                redirect_tx,
                own_tx,
                resp3,
                broken: false,
                caching: false,
                prefixes,
            },
        );
        Ok(())
    }

    /// Tracking off (CLIENT TRACKING OFF, RESET, disconnection). The keys it read stay
    /// in the table, as in Redis, and are dropped at their next invalidation.
    pub fn disable(&mut self, id: ClientId) {
        let Some(t) = self.clients.remove(&id) else {
            return;
        };
        for p in &t.prefixes {
            if let Some(entry) = self.prefixes.get_mut(p) {
                entry.clients.remove(&id);
                if entry.clients.is_empty() {
                    self.prefixes.remove(p);
                }
            }
        }
    }

    /// `CLIENT CACHING YES|NO`.
    pub fn caching(&mut self, id: ClientId, arg: &[u8]) -> Result<(), TrackingError> {
        let Some(t) = self.clients.get_mut(&id) else {
            return Err(TrackingError::CachingNotTracking);
        };
        if arg.eq_ignore_ascii_case(b"yes") {
            if !t.opts.optin {
                return Err(TrackingError::CachingYes);
            }
        } else if arg.eq_ignore_ascii_case(b"no") {
            if !t.opts.optout {
                return Err(TrackingError::CachingNo);
            }
        } else {
            return Err(TrackingError::Syntax);
        }
        t.caching = true;
        Ok(())
    }

    /// After a command of client `id` outside MULTI: CLIENT CACHING applies to the
    /// next command only (any CLIENT subcommand keeps it, as in Redis).
    pub fn after_command(&mut self, id: ClientId, keeps_caching: bool) {
        if keeps_caching || self.clients.is_empty() {
            return;
        }
        if let Some(t) = self.clients.get_mut(&id) {
            t.caching = false;
        }
    }

    /// Whether the keys of a read-only command run by `id` are recorded now.
    pub fn wants_keys(&self, id: ClientId) -> bool {
        // Checked after every read-only command: no hashing while nobody tracks.
        if self.clients.is_empty() {
            return false;
        }
        match self.clients.get(&id) {
            Some(t) if !t.opts.bcast => {
                !((t.opts.optin && !t.caching) || (t.opts.optout && t.caching))
            }
            _ => false,
        }
    }

    /// Records that `id` read `key`.
    pub fn remember(&mut self, id: ClientId, key: &[u8]) {
        let readers = match self.table.get_mut(key) {
            Some(r) => r,
            None => self.table.entry(Bytes::copy_from_slice(key)).or_default(),
        };
        if readers.insert(id) {
            self.items += 1;
        }
    }

    /// `key` was modified (Redis `trackingInvalidateKey`): its readers get an
    /// invalidation, BCAST prefixes collect it when `bcast`.
    pub fn invalidate(&mut self, key: &[u8], bcast: bool, limit: &Limit) {
        if bcast && !self.prefixes.is_empty() {
            let by = self.current.filter(|_| !self.expiring);
            for (p, entry) in self.prefixes.iter_mut() {
                if key.starts_with(p) {
                    entry.pending.insert(Bytes::copy_from_slice(key), by);
                    self.bcast_pending = true;
                }
            }
        }
        let Some(readers) = self.table.swap_remove(key) else {
            return;
        };
        self.items = self.items.saturating_sub(readers.len() as u64);
        let key = Bytes::copy_from_slice(key);
        for id in readers {
            let Some(t) = self.clients.get(&id) else {
                continue;
            };
            if t.opts.bcast || (t.opts.noloop && self.current == Some(id)) {
                continue;
            }
            self.send(id, Some(vec![key.clone()]), limit);
        }
    }

    /// FLUSHDB/FLUSHALL: every tracking client gets a null invalidation and the
    /// table is emptied (as Redis 7.0 does for either).
    pub fn flush(&mut self, limit: &Limit) {
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.send(id, None, limit);
        }
        self.table = Default::default();
        self.items = 0;
    }

    /// Sends the BCAST messages collected since the last call: one per prefix and
    /// client, leaving out with NOLOOP the keys the client modified itself.
    pub fn flush_bcast(&mut self, limit: &Limit) {
        if !std::mem::take(&mut self.bcast_pending) {
            return;
        }
        let mut out: Vec<(ClientId, Vec<Bytes>)> = Vec::new();
        for entry in self.prefixes.values_mut() {
            if entry.pending.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut entry.pending);
            for &id in &entry.clients {
                let noloop = self.clients.get(&id).is_some_and(|t| t.opts.noloop);
                let keys: Vec<Bytes> = pending
                    .iter()
                    .filter(|(_, by)| !(noloop && **by == Some(id)))
                    .map(|(k, _)| k.clone())
                    .collect();
                if !keys.is_empty() {
                    out.push((id, keys));
                }
            }
        }
        for (id, keys) in out {
            self.send(id, Some(keys), limit);
        }
    }

    /// Keeps the table within `max_keys` (0 = no limit) by invalidating random keys,
    /// with an effort that grows while it stays over (Redis `trackingLimitUsedSlots`).
    pub fn limit(&mut self, max_keys: u64, limit: &Limit) {
        if max_keys == 0 || self.table.len() as u64 <= max_keys {
            self.limit_rounds = 0;
            return;
        }
        let effort = 100 * (self.limit_rounds as usize + 1);
        // Evictions are not modifications by the running client: NOLOOP spares nobody.
        let current = self.current.take();
        for _ in 0..effort {
            let n = self.table.len();
            if n == 0 {
                break;
            }
            let pick = rand::random::<usize>() % n;
            let Some(key) = self.table.get_index(pick).map(|(k, _)| k.clone()) else {
                break;
            };
            self.invalidate(&key, false, limit);
            if self.table.len() as u64 <= max_keys {
                self.limit_rounds = 0;
                self.current = current;
                return;
            }
        }
        self.current = current;
        self.limit_rounds = self.limit_rounds.saturating_add(1);
    }

    /// Queues one message for tracking client `id` (Redis `sendTrackingMessage`).
    fn send(&mut self, id: ClientId, keys: Option<Vec<Bytes>>, limit: &Limit) {
        let Some(t) = self.clients.get_mut(&id) else {
            return;
        };
        let null_resp3 = t.resp3;
        let own = if t.redirect != 0 {
            match &t.redirect_tx {
                Some(tx) if !tx.is_closed() => {
                    let msg = Push::Invalidate {
                        keys,
                        redirected: true,
                        null_resp3,
                    };
                    if self.admitting == Some(t.redirect) {
                        self.ahead.push(msg);
                    } else {
                        tx.send_push(PubMsg::Tracking(msg), limit);
                    }
                    return;
                }
                _ => {
                    t.broken = true;
                    Push::RedirBroken(t.redirect)
                }
            }
        } else {
            Push::Invalidate {
                keys,
                redirected: false,
                null_resp3,
            }
        };
        if self.admitting == Some(id) {
            self.ahead.push(own);
        } else if let Some(tx) = &t.own_tx {
            tx.send_push(PubMsg::Tracking(own), limit);
        }
    }

    /// The messages for the admitted client's own connection that must precede its
    /// reply (see `admitting`); empty nearly always.
    #[inline]
    pub fn take_ahead(&mut self) -> Option<Vec<Push>> {
        if self.ahead.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.ahead))
        }
    }

    /// The client switched protocol (HELLO): flush nulls follow it.
    pub fn set_resp3(&mut self, id: ClientId, resp3: bool) {
        if let Some(t) = self.clients.get_mut(&id) {
            t.resp3 = resp3;
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            clients: self.clients.len(),
            keys: self.table.len(),
            items: self.items,
            prefixes: self.prefixes.len(),
        }
    }

    /// CLIENT LIST flags (`t`, `R`, `B`) and `redir=` of client `id`.
    pub fn list_fields(&self, id: ClientId) -> (String, i64) {
        let Some(t) = self.clients.get(&id) else {
            return (String::new(), -1);
        };
        let mut f = String::from("t");
        if t.broken {
            f.push('R');
        }
        if t.opts.bcast {
            f.push('B');
        }
        (f, t.redirect as i64)
    }

    /// CLIENT GETREDIR: the redirect id, 0 without one, -1 when not tracking.
    pub fn getredir(&self, id: ClientId) -> i64 {
        self.clients.get(&id).map_or(-1, |t| t.redirect as i64)
    }

    /// CLIENT TRACKINGINFO.
    pub fn info(&self, id: ClientId) -> Info {
        let Some(t) = self.clients.get(&id) else {
            return Info {
                flags: vec!["off"],
                redirect: -1,
                prefixes: Vec::new(),
            };
        };
        let mut flags = vec!["on"];
        if t.opts.bcast {
            flags.push("bcast");
        }
        if t.opts.optin {
            flags.push("optin");
            if t.caching {
                flags.push("caching-yes");
            }
        }
        if t.opts.optout {
            flags.push("optout");
            if t.caching {
                flags.push("caching-no");
            }
        }
        if t.opts.noloop {
            flags.push("noloop");
        }
        if t.broken {
            flags.push("broken_redirect");
        }
        let mut prefixes = t.prefixes.clone();
        prefixes.sort();
        Info {
            flags,
            redirect: t.redirect as i64,
            prefixes,
        }
    }
}

/// Prefixes of one client must not overlap (one a prefix of another), neither with
/// its existing ones nor among the new ones.
fn check_prefixes(existing: &[Bytes], new: &[Bytes]) -> Result<(), TrackingError> {
    for (i, p) in new.iter().enumerate() {
        let mut sorted: Vec<&Bytes> = existing.iter().collect();
        sorted.sort();
        if let Some(e) = sorted.into_iter().find(|e| overlaps(e, p)) {
            return Err(TrackingError::OverlapExisting(lossy(p), lossy(e)));
        }
        if let Some(q) = new.iter().skip(i + 1).find(|q| overlaps(p, q)) {
            return Err(TrackingError::OverlapProvided(lossy(p), lossy(q)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_string())).collect()
    }

    #[test]
    fn parse_checks_redirect_while_parsing_and_mode_last() {
        let exists = |id| id == 7;
        assert_eq!(
            parse(&args("on redirect 8"), exists).unwrap_err(),
            TrackingError::NoSuchRedirect
        );
        assert_eq!(
            parse(&args("maybe redirect 8"), exists).unwrap_err(),
            TrackingError::NoSuchRedirect
        );
        assert_eq!(
            parse(&args("maybe bcast"), exists).unwrap_err(),
            TrackingError::Syntax
        );
        assert_eq!(
            parse(&args("on redirect 7 redirect 7"), exists).unwrap_err(),
            TrackingError::TwoRedirects
        );
        assert_eq!(
            parse(&args("on redirect x"), exists).unwrap_err(),
            TrackingError::NotInteger
        );
        let r = parse(&args("ON BCAST prefix a PREFIX b noloop"), exists).unwrap();
        assert!(r.on && r.opts.bcast && r.opts.noloop);
        assert_eq!(r.prefixes, vec![Bytes::from("a"), Bytes::from("b")]);
        // A trailing PREFIX without its value is a syntax error.
        assert_eq!(
            parse(&args("on bcast prefix"), exists).unwrap_err(),
            TrackingError::Syntax
        );
    }

    #[test]
    fn table_counts_follow_reads_and_invalidations() {
        let mut t = Tracking::default();
        let limit = Limit::default();
        let req = Request {
            on: true,
            ..Default::default()
        };
        t.apply(1, req.clone(), true, None, None).unwrap();
        t.apply(2, req, true, None, None).unwrap();
        t.remember(1, b"a");
        t.remember(2, b"a");
        t.remember(1, b"a");
        t.remember(1, b"b");
        let c = t.counts();
        assert_eq!((c.clients, c.keys, c.items), (2, 2, 3));
        t.invalidate(b"a", true, &limit);
        let c = t.counts();
        assert_eq!((c.keys, c.items), (1, 1));
        for i in 0..50 {
            t.remember(1, format!("k{i}").as_bytes());
        }
        t.limit(10, &limit);
        assert_eq!(t.counts().keys, 10);
        t.flush(&limit);
        assert_eq!((t.counts().keys, t.counts().items), (0, 0));
    }

    #[test]
    fn prefixes_must_not_overlap() {
        let b = |s: &str| Bytes::from(s.to_string());
        assert!(check_prefixes(&[b("foo")], &[b("bar")]).is_ok());
        assert_eq!(
            check_prefixes(&[b("foo")], &[b("fo")]).unwrap_err().to_string(),
            "ERR Prefix 'fo' overlaps with an existing prefix 'foo'. Prefixes for a single client must not overlap."
        );
        assert_eq!(
            check_prefixes(&[], &[b("a"), b("ab")]).unwrap_err().to_string(),
            "ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap."
        );
    }
}
