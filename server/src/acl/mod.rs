//! ACL users (Redis 7.0 ACLs): the state layer of access control.
//!
//! - [`rules`]: users and selectors, rule words, describing, the permission check;
//! - [`catalog`]: the numbered command universe rules refer to (built by `commands`);
//! - [`log`]: ACL LOG entries; [`file`]: the `aclfile` format; [`sha256`]: hashes.
//!
//! The users live in [`Shared`] on the `Server`. Each connection keeps a [`Session`]:
//! its user's name and a cached `Arc` of the user, refreshed when the generation
//! counter moved (any ACL change bumps it). The per-command cost for a user with
//! `allcommands allkeys allchannels` is one atomic load and one flag test.

pub mod catalog;
pub mod file;
pub mod log;
pub mod rules;
pub mod sha256;

pub use catalog::Catalog;
pub use rules::{Denial, Request, SetUserError, User};

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The users and the ACL log.
#[derive(Debug, Default)]
pub struct Acl {
    /// By name; ordered as Redis lists them (ACL USERS / LIST).
    pub users: BTreeMap<String, Arc<User>>,
    pub log: log::AclLog,
}

impl Acl {
    pub fn user(&self, name: &str) -> Option<&Arc<User>> {
        self.users.get(name)
    }
}

/// The server's ACL state, shared by every connection.
#[derive(Debug, Default)]
pub struct Shared {
    generation: AtomicU64,
    state: RwLock<Acl>,
}

/// What a session resolves to for a check.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// No user: an internal client (the master link, the AOF loader) runs anything.
    Internal,
    User(Arc<User>),
    /// The user was deleted; its connection is being closed. Nothing is allowed.
    Gone,
}

impl Shared {
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Acl> {
        self.state.read()
    }

    /// Changes the users; sessions pick the change up at their next command.
    pub fn modify<R>(&self, f: impl FnOnce(&mut Acl) -> R) -> R {
        let mut g = self.state.write();
        let r = f(&mut g);
        self.generation.fetch_add(1, Ordering::Release);
        r
    }

    /// Adds a log entry (the users are unchanged: no generation bump).
    pub fn log(&self, e: log::Entry, max_len: usize) {
        self.state.write().log.add(e, max_len);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a new connection starts authenticated: the default user exists, is on
    /// and has `nopass` (Redis `authRequired`).
    pub fn default_needs_no_auth(&self) -> bool {
        self.read()
            .user("default")
            .is_some_and(|u| u.enabled && u.nopass)
    }
}

/// A connection's user.
#[derive(Debug, Default)]
pub struct Session {
    /// None for internal clients.
    name: Option<String>,
    cached: Option<Arc<User>>,
    generation: u64,
}

impl Clone for Session {
    fn clone(&self) -> Self {
        Session {
            name: self.name.clone(),
            cached: self.cached.clone(),
            generation: self.generation,
        }
    }

    /// In place: a script's client takes its caller's user this way on every run,
    /// usually the same one (no allocation for the name, no reference count
    /// changed for the same user).
    fn clone_from(&mut self, source: &Self) {
        self.name.clone_from(&source.name);
        let same = match (&self.cached, &source.cached) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.cached.clone_from(&source.cached);
        }
        self.generation = source.generation;
    }
}

impl Session {
    /// A session of user `name` (resolved at the next check).
    pub fn named(name: &str) -> Self {
        Session {
            name: Some(name.to_string()),
            cached: None,
            generation: u64::MAX,
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The session's user now: from the cache unless an ACL change happened since.
    pub fn resolve(&mut self, shared: &Shared) -> Resolved {
        let Some(name) = &self.name else {
            return Resolved::Internal;
        };
        let generation = shared.generation();
        if generation != self.generation || self.cached.is_none() {
            self.cached = shared.read().user(name).cloned();
            self.generation = generation;
        }
        match &self.cached {
            Some(u) => Resolved::User(u.clone()),
            None => Resolved::Gone,
        }
    }

    /// True when the user may run anything (the check's fast path).
    #[inline]
    pub fn unrestricted(&self, shared: &Shared) -> bool {
        match (&self.name, &self.cached) {
            (None, _) => true,
            (Some(_), Some(u)) => u.unrestricted && shared.generation() == self.generation,
            _ => false,
        }
    }
}
