//! Pub/Sub routing: channel and pattern subscriptions, kept in the store so PUBLISH is
//! ordered with everything else.

use crate::client::{ClientHandle, ClientId};
use crate::outbuf::Limit;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// A message delivered to a subscriber; encoded by the receiving connection in its
/// own protocol version.
#[derive(Debug, Clone)]
pub enum PubMsg {
    Message {
        channel: Bytes,
        data: Bytes,
    },
    PMessage {
        pattern: Bytes,
        channel: Bytes,
        data: Bytes,
    },
    /// From SPUBLISH, delivered as `smessage`.
    SMessage {
        channel: Bytes,
        data: Bytes,
    },
    /// A client-side caching message (`crate::tracking`).
    Tracking(crate::tracking::Push),
}

impl PubMsg {
    /// What the message costs in the subscriber's output buffer (its payload plus the
    /// RESP framing), for `client-output-buffer-limit pubsub`.
    pub fn cost(&self) -> u64 {
        const FRAMING: usize = 48;
        (match self {
            PubMsg::Message { channel, data } | PubMsg::SMessage { channel, data } => {
                channel.len() + data.len()
            }
            PubMsg::PMessage {
                pattern,
                channel,
                data,
            } => pattern.len() + channel.len() + data.len(),
            PubMsg::Tracking(p) => return p.cost(),
        } + FRAMING) as u64
    }
}

/// A subscriber's queue: messages wait in it until its connection writes them, and
/// their bytes count against the subscriber's output limit until then.
#[derive(Debug, Clone)]
pub struct MsgSender {
    tx: UnboundedSender<PubMsg>,
    client: Arc<ClientHandle>,
}

impl MsgSender {
    pub fn new(tx: UnboundedSender<PubMsg>, client: Arc<ClientHandle>) -> Self {
        MsgSender { tx, client }
    }

    /// Queues `msg` unless the subscriber is over `limit` (it is then closed).
    fn send(&self, msg: PubMsg, limit: &Limit) {
        if self.client.try_queue(msg.cost(), limit) && self.tx.send(msg).is_ok() {
            self.client.bell.ring();
        }
    }

    /// `send` for other subsystems' messages (client-side caching).
    pub fn send_push(&self, msg: PubMsg, limit: &Limit) {
        self.send(msg, limit)
    }

    /// True once the receiving connection has gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[derive(Debug, Default)]
pub struct PubSub {
    pub channels: HashMap<Bytes, HashMap<ClientId, MsgSender>>,
    pub patterns: HashMap<Bytes, HashMap<ClientId, MsgSender>>,
    /// Shard channels (SSUBSCRIBE): a namespace of their own, which PUBLISH and
    /// patterns never reach.
    pub shard_channels: HashMap<Bytes, HashMap<ClientId, MsgSender>>,
}

impl PubSub {
    /// Registers `id` on `channel`; false if it was already subscribed.
    pub fn subscribe(&mut self, channel: &Bytes, id: ClientId, tx: MsgSender) -> bool {
        self.channels
            .entry(channel.clone())
            .or_default()
            .insert(id, tx)
            .is_none()
    }

    /// Removes `id` from `channel`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, channel: &[u8], id: ClientId) -> bool {
        remove_from(&mut self.channels, channel, id)
    }

    pub fn psubscribe(&mut self, pattern: &Bytes, id: ClientId, tx: MsgSender) -> bool {
        self.patterns
            .entry(pattern.clone())
            .or_default()
            .insert(id, tx)
            .is_none()
    }

    pub fn punsubscribe(&mut self, pattern: &[u8], id: ClientId) -> bool {
        remove_from(&mut self.patterns, pattern, id)
    }

    pub fn ssubscribe(&mut self, channel: &Bytes, id: ClientId, tx: MsgSender) -> bool {
        self.shard_channels
            .entry(channel.clone())
            .or_default()
            .insert(id, tx)
            .is_none()
    }

    pub fn sunsubscribe(&mut self, channel: &[u8], id: ClientId) -> bool {
        remove_from(&mut self.shard_channels, channel, id)
    }

    /// SPUBLISH: delivers `data` to the subscribers of shard channel `channel` only;
    /// returns how many received it.
    pub fn spublish(&self, channel: &Bytes, data: &Bytes, limit: &Limit) -> usize {
        let Some(subs) = self.shard_channels.get(channel) else {
            return 0;
        };
        let (channel, data) = (crate::util::detach(channel), crate::util::detach(data));
        for tx in subs.values() {
            tx.send(
                PubMsg::SMessage {
                    channel: channel.clone(),
                    data: data.clone(),
                },
                limit,
            );
        }
        subs.len()
    }

    /// Shard channels with at least one subscriber, optionally filtered by a glob.
    pub fn active_shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.shard_channels
            .iter()
            .filter(|(c, subs)| {
                !subs.is_empty() && pattern.is_none_or(|p| crate::util::glob_match(p, c, false))
            })
            .map(|(c, _)| c.clone())
            .collect()
    }

    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.shard_channels.get(channel).map_or(0, |s| s.len())
    }

    /// Delivers `data` to the subscribers of `channel` and of every matching pattern;
    /// returns how many deliveries were made (a client matching through a channel and
    /// a pattern counts twice, as in Redis).
    /// Subscribers over `limit` (the `pubsub` class's) are closed instead of queued to.
    pub fn publish(&self, channel: &Bytes, data: &Bytes, limit: &Limit) -> usize {
        let mut n = 0;
        // Messages can wait in a slow subscriber's queue: own copies, not slices of
        // the publisher's read buffer.
        let (channel, data) = (&crate::util::detach(channel), &crate::util::detach(data));
        if let Some(subs) = self.channels.get(channel) {
            for tx in subs.values() {
                tx.send(
                    PubMsg::Message {
                        channel: channel.clone(),
                        data: data.clone(),
                    },
                    limit,
                );
                n += 1;
            }
        }
        for (pattern, subs) in &self.patterns {
            if !crate::util::glob_match(pattern, channel, false) {
                continue;
            }
            for tx in subs.values() {
                tx.send(
                    PubMsg::PMessage {
                        pattern: pattern.clone(),
                        channel: channel.clone(),
                        data: data.clone(),
                    },
                    limit,
                );
                n += 1;
            }
        }
        n
    }

    /// Channels with at least one subscriber, optionally filtered by a glob pattern.
    pub fn active_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels
            .iter()
            .filter(|(c, subs)| {
                !subs.is_empty() && pattern.is_none_or(|p| crate::util::glob_match(p, c, false))
            })
            .map(|(c, _)| c.clone())
            .collect()
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, |s| s.len())
    }

    /// Number of distinct patterns with subscribers (PUBSUB NUMPAT).
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }
}

fn remove_from(
    map: &mut HashMap<Bytes, HashMap<ClientId, MsgSender>>,
    name: &[u8],
    id: ClientId,
) -> bool {
    let Some(subs) = map.get_mut(name) else {
        return false;
    };
    let removed = subs.remove(&id).is_some();
    if subs.is_empty() {
        map.remove(name);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(id: ClientId) -> (MsgSender, tokio::sync::mpsc::UnboundedReceiver<PubMsg>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let h = ClientHandle::new(id, String::new(), String::new(), Default::default());
        (MsgSender::new(tx, Arc::new(h)), rx)
    }

    #[test]
    fn publish_counts_channel_and_pattern_deliveries() {
        let mut ps = PubSub::default();
        let (tx, mut rx) = sender(1);
        let none = Limit::default();
        let ch = Bytes::from_static(b"news.tech");
        assert!(ps.subscribe(&ch, 1, tx.clone()));
        assert!(!ps.subscribe(&ch, 1, tx.clone()));
        assert!(ps.psubscribe(&Bytes::from_static(b"news.*"), 1, tx));
        assert_eq!(ps.publish(&ch, &Bytes::from_static(b"hi"), &none), 2);
        assert!(matches!(rx.try_recv(), Ok(PubMsg::Message { .. })));
        assert!(matches!(rx.try_recv(), Ok(PubMsg::PMessage { .. })));
        assert_eq!(
            ps.publish(&Bytes::from_static(b"other"), &Bytes::new(), &none),
            0
        );
        assert!(ps.unsubscribe(&ch, 1));
        assert!(ps.channels.is_empty());
        assert_eq!(ps.numpat(), 1);
    }

    #[test]
    fn a_subscriber_over_its_hard_limit_is_closed_and_no_longer_queued_to() {
        let mut ps = PubSub::default();
        let (tx, mut rx) = sender(7);
        let client = tx.client.clone();
        let ch = Bytes::from_static(b"c");
        ps.subscribe(&ch, 7, tx);
        let limit = Limit {
            hard: 1000,
            soft: 0,
            soft_secs: 0,
        };
        let data = Bytes::from(vec![b'x'; 300]);
        let mut queued = 0;
        for _ in 0..10 {
            ps.publish(&ch, &data, &limit);
        }
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(
            queued, 2,
            "two 349-byte messages fit under 1000, a third does not"
        );
        assert!(client.is_killed());
        assert!(client.obuf.queued() < 1000);
    }
}
