//! Pub/Sub routing: channel and pattern subscriptions, kept in the store so PUBLISH is
//! ordered with everything else.

use crate::server::ClientId;
use bytes::Bytes;
use std::collections::HashMap;
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
}

pub type MsgSender = UnboundedSender<PubMsg>;

#[derive(Debug, Default)]
pub struct PubSub {
    pub channels: HashMap<Bytes, HashMap<ClientId, MsgSender>>,
    pub patterns: HashMap<Bytes, HashMap<ClientId, MsgSender>>,
}
