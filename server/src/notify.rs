//! Keyspace notifications (`notify-keyspace-events`): the event classes and the one
//! function that publishes an event through Pub/Sub.
//!
//! Layer: a subsystem beside `pubsub`, below the state it is driven from. Handlers
//! call [`crate::commands::Ctx::notify`]; the expiry cycle and eviction call
//! [`crate::server::Store::notify`] with the database they work on; both end in
//! [`publish`]. Events are local: they are never propagated, and a replica raises its
//! own for the writes it applies.
//!
//! The enabled classes are a bitmask in the hot configuration, so a notify site costs
//! one AND when notifications are off.
//!
//! Key creation (`new`, class `n`) is raised where a key is added to a database, as
//! Redis raises it from `dbAdd`: `Db` records the created keys while class `n` is on
//! and [`publish_new_keys`] publishes them, before the next event of the same command
//! (so `new` comes first, as in Redis) and at the latest when the command ends.

use crate::db::Db;
use crate::outbuf::Limit;
use crate::pubsub::PubSub;
use bytes::{BufMut, Bytes, BytesMut};

/// A set of event classes (the bits below, or-ed together).
pub type Classes = u16;

/// `K`: publish on `__keyspace@<db>__:<key>` (the message is the event).
pub const KEYSPACE: Classes = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>` (the message is the key).
pub const KEYEVENT: Classes = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME...).
pub const GENERIC: Classes = 1 << 2;
/// `$`: string commands.
pub const STRING: Classes = 1 << 3;
/// `l`: list commands.
pub const LIST: Classes = 1 << 4;
/// `s`: set commands.
pub const SET: Classes = 1 << 5;
/// `h`: hash commands.
pub const HASH: Classes = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: Classes = 1 << 7;
/// `x`: a key expired (lazily on access or by the active cycle).
pub const EXPIRED: Classes = 1 << 8;
/// `e`: a key was evicted for maxmemory.
pub const EVICTED: Classes = 1 << 9;
/// `t`: stream commands.
pub const STREAM: Classes = 1 << 10;
/// `m`: a read found no key (not in `A`).
pub const KEY_MISS: Classes = 1 << 11;
/// `d`: module events (none without modules).
pub const MODULE: Classes = 1 << 12;
/// `n`: a key was created (not in `A`).
pub const NEW: Classes = 1 << 13;
/// `A`: alias for `g$lshzxetd`.
pub const ALL: Classes =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The class of one letter of `notify-keyspace-events`.
fn class_of(c: char) -> Option<Classes> {
    Some(match c {
        'A' => ALL,
        'g' => GENERIC,
        '$' => STRING,
        'l' => LIST,
        's' => SET,
        'h' => HASH,
        'z' => ZSET,
        'x' => EXPIRED,
        'e' => EVICTED,
        'K' => KEYSPACE,
        'E' => KEYEVENT,
        't' => STREAM,
        'm' => KEY_MISS,
        'd' => MODULE,
        'n' => NEW,
        _ => return None,
    })
}

/// The classes a `notify-keyspace-events` value enables; `None` if a letter is
/// unknown (the config layer has refused such values already).
pub fn parse(flags: &str) -> Option<Classes> {
    flags
        .chars()
        .try_fold(0, |acc, c| class_of(c).map(|bit| acc | bit))
}

/// Whether events of `class` are published at all: the class is on and at least
/// one of the two channel kinds (K, E) is.
#[inline]
pub fn enabled(on: Classes, class: Classes) -> bool {
    on & class != 0 && on & (KEYSPACE | KEYEVENT) != 0
}

/// Publishes `event` on `key` in database `db`, for classes already found enabled
/// in `on`: on `__keyspace@<db>__:<key>` with the event as message (class K), and on
/// `__keyevent@<db>__:<event>` with the key as message (class E). Subscribers get it
/// like a PUBLISH, within `limit` (the `pubsub` class's output-buffer limit).
/// [`crate::server::Store::notify`] is the entry point that checks the class.
pub fn publish(pubsub: &PubSub, limit: &Limit, on: Classes, event: &str, key: &[u8], db: usize) {
    // Nobody listening: skip building the channel names.
    if pubsub.channels.is_empty() && pubsub.patterns.is_empty() {
        return;
    }
    if on & KEYSPACE != 0 {
        let channel = channel_name(b"__keyspace@", db, key);
        let data = Bytes::copy_from_slice(event.as_bytes());
        pubsub.publish(&channel, &data, limit);
    }
    if on & KEYEVENT != 0 {
        let channel = channel_name(b"__keyevent@", db, event.as_bytes());
        let data = Bytes::copy_from_slice(key);
        pubsub.publish(&channel, &data, limit);
    }
}

/// Makes every database record created keys exactly while `new` events are
/// published under `on`.
pub fn record_new_keys(dbs: &mut [Db], on: Classes) {
    let recording = enabled(on, NEW);
    for db in dbs {
        db.record_new_keys(recording);
    }
}

/// Publishes the `new` events for the keys each database created since the last call.
pub fn publish_new_keys(dbs: &mut [Db], pubsub: &PubSub, limit: &Limit, on: Classes) {
    for (i, db) in dbs.iter_mut().enumerate() {
        if let Some(keys) = db.take_new_keys() {
            for key in keys {
                publish(pubsub, limit, on, "new", &key, i);
            }
        }
    }
}

/// `<prefix><db>__:<suffix>`.
fn channel_name(prefix: &[u8], db: usize, suffix: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(prefix.len() + 8 + suffix.len());
    b.put_slice(prefix);
    b.put_slice(db.to_string().as_bytes());
    b.put_slice(b"__:");
    b.put_slice(suffix);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Store;

    #[test]
    fn letters_parse_to_classes() {
        assert_eq!(parse(""), Some(0));
        assert_eq!(parse("KEA"), Some(KEYSPACE | KEYEVENT | ALL));
        assert_eq!(parse("Ex"), Some(KEYEVENT | EXPIRED));
        assert_eq!(parse("Kmn"), Some(KEYSPACE | KEY_MISS | NEW));
        assert_eq!(parse("A").map(|c| c & (KEY_MISS | NEW)), Some(0));
        assert_eq!(parse("Kq"), None);
    }

    #[test]
    fn a_class_without_k_or_e_publishes_nothing() {
        assert!(!enabled(parse("A").unwrap_or(0), GENERIC));
        assert!(enabled(parse("Kg").unwrap_or(0), GENERIC));
        assert!(!enabled(parse("KE$").unwrap_or(0), GENERIC));
    }

    /// A store with `classes` on and one pattern subscriber on every event channel.
    fn watched_store(
        classes: &str,
    ) -> (
        Store,
        tokio::sync::mpsc::UnboundedReceiver<crate::pubsub::PubMsg>,
    ) {
        let mut store = Store::new(2);
        let mut hot = store.hot.clone();
        hot.notify_classes = parse(classes).unwrap_or(0);
        store.set_hot(hot);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let h =
            crate::server::ClientHandle::new(1, String::new(), String::new(), Default::default());
        let sender = crate::pubsub::MsgSender::new(tx, std::sync::Arc::new(h));
        store
            .pubsub
            .psubscribe(&Bytes::from_static(b"__key*__:*"), 1, sender);
        (store, rx)
    }

    fn received(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::pubsub::PubMsg>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Ok(crate::pubsub::PubMsg::PMessage { channel, data, .. }) = rx.try_recv() {
            out.push((
                String::from_utf8_lossy(&channel).into_owned(),
                String::from_utf8_lossy(&data).into_owned(),
            ));
        }
        out
    }

    fn pair(c: &str, d: &str) -> (String, String) {
        (c.to_string(), d.to_string())
    }

    #[test]
    fn created_keys_are_announced_before_the_next_event_in_their_database() {
        let (mut store, mut rx) = watched_store("Kgn");
        store.dbs[1].set(b"k", crate::types::Value::Str(b"v".into()), 0);
        // Replacing a value creates nothing.
        store.dbs[1].set(b"k", crate::types::Value::Str(b"w".into()), 0);
        store.notify(GENERIC, "rename_to", b"k", 1);
        store.flush_new_keys();
        assert_eq!(
            received(&mut rx),
            vec![
                pair("__keyspace@1__:k", "new"),
                pair("__keyspace@1__:k", "rename_to"),
            ]
        );
    }

    #[test]
    fn switching_new_off_stops_recording() {
        let (mut store, mut rx) = watched_store("Kn");
        let mut hot = store.hot.clone();
        hot.notify_classes = parse("Kg").unwrap_or(0);
        store.set_hot(hot);
        store.dbs[0].set(b"k", crate::types::Value::Str(b"v".into()), 0);
        assert!(store.dbs[0].take_new_keys().is_none());
        store.flush_new_keys();
        assert!(received(&mut rx).is_empty());
    }

    #[test]
    fn disabled_classes_publish_nothing() {
        let (mut store, mut rx) = watched_store("K$");
        store.notify(GENERIC, "del", b"k", 0);
        store.notify(STRING, "set", b"k", 0);
        assert_eq!(received(&mut rx), vec![pair("__keyspace@0__:k", "set")]);
    }

    #[test]
    fn channel_names_follow_redis() {
        assert_eq!(
            &channel_name(b"__keyspace@", 3, b"k")[..],
            b"__keyspace@3__:k"
        );
        assert_eq!(
            &channel_name(b"__keyevent@", 0, b"del")[..],
            b"__keyevent@0__:del"
        );
    }
}
