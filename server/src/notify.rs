//! Keyspace notifications (`notify-keyspace-events`): the event classes and the one
//! function that publishes an event through Pub/Sub.
//!
//! Layer: below the command families, beside `pubsub`. Handlers call
//! [`crate::commands::Ctx::notify`]; the expiry cycle and eviction call [`notify`]
//! directly with the database they work on. Events are local: they are never
//! propagated, and a replica raises its own for the writes it applies.
//!
//! The enabled classes are a bitmask in the hot configuration, so a notify site costs
//! one AND when notifications are off.
//!
//! Key creation (`new`, class `n`) is raised where a key is added to a database, as
//! Redis raises it from `dbAdd`: `Db` records the created keys while class `n` is on
//! and [`flush_new`] publishes them, before the next event of the same command (so
//! `new` comes first, as in Redis) and at the latest when the command ends.

use crate::server::Store;
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

/// Publishes `event` on `key` in database `db` if `class` is enabled: on
/// `__keyspace@<db>__:<key>` with the event as message (class K), and on
/// `__keyevent@<db>__:<event>` with the key as message (class E). Subscribers get
/// it like a PUBLISH, within the `pubsub` output-buffer limit.
pub fn notify(store: &mut Store, class: Classes, event: &str, key: &[u8], db: usize) {
    let on = store.hot.notify_classes;
    if on & class == 0 {
        return;
    }
    flush_new(store);
    publish(store, on, event, key, db);
}

/// Makes every database record created keys exactly while `new` events are
/// published. Run when the configuration changes.
pub fn configure(store: &mut Store) {
    let on = enabled(store.hot.notify_classes, NEW);
    for db in &mut store.dbs {
        db.record_new_keys(on);
    }
}

/// Run before each command: a database replaced by a load (full sync, DEBUG
/// RELOAD) starts without recording. One AND unless class `n` is on.
#[inline]
pub fn begin_command(store: &mut Store) {
    if store.hot.notify_classes & NEW != 0 {
        configure(store);
    }
}

/// Publishes the `new` events for the keys created since the last call. Run after
/// each command; one AND unless class `n` is on.
#[inline]
pub fn flush_new(store: &mut Store) {
    if store.hot.notify_classes & NEW != 0 {
        publish_new(store);
    }
}

fn publish_new(store: &mut Store) {
    let on = store.hot.notify_classes;
    for db in 0..store.dbs.len() {
        let Some(keys) = store.dbs.get_mut(db).and_then(|d| d.take_new_keys()) else {
            continue;
        };
        for key in keys {
            publish(store, on, "new", &key, db);
        }
    }
}

fn publish(store: &Store, on: Classes, event: &str, key: &[u8], db: usize) {
    // Nobody listening: skip building the channel names.
    if store.pubsub.channels.is_empty() && store.pubsub.patterns.is_empty() {
        return;
    }
    let limit = store.hot.obuf_limits[crate::outbuf::Class::PubSub as usize];
    if on & KEYSPACE != 0 {
        let channel = channel_name(b"__keyspace@", db, key);
        let data = Bytes::copy_from_slice(event.as_bytes());
        store.pubsub.publish(&channel, &data, &limit);
    }
    if on & KEYEVENT != 0 {
        let channel = channel_name(b"__keyevent@", db, event.as_bytes());
        let data = Bytes::copy_from_slice(key);
        store.pubsub.publish(&channel, &data, &limit);
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
        store.dbs[1].set(b"k", crate::types::Value::Str(Bytes::from_static(b"v")), 0);
        // Replacing a value creates nothing.
        store.dbs[1].set(b"k", crate::types::Value::Str(Bytes::from_static(b"w")), 0);
        notify(&mut store, GENERIC, "rename_to", b"k", 1);
        flush_new(&mut store);
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
        store.dbs[0].set(b"k", crate::types::Value::Str(Bytes::from_static(b"v")), 0);
        assert!(store.dbs[0].take_new_keys().is_none());
        flush_new(&mut store);
        assert!(received(&mut rx).is_empty());
    }

    #[test]
    fn disabled_classes_publish_nothing() {
        let (mut store, mut rx) = watched_store("K$");
        notify(&mut store, GENERIC, "del", b"k", 0);
        notify(&mut store, STRING, "set", b"k", 0);
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
