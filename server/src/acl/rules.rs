//! ACL users and selectors (Redis 7.0 `ACLSetUser`/`ACLSetSelector`): applying rule
//! words, describing a user back as rules (ACL LIST / GETUSER / SAVE), and checking a
//! command against a user.
//!
//! Commands are numbered by the [`Catalog`]; a selector keeps one bit per command.
//! Describing follows Redis 7.0: start from `+@all` or `-@all`, add the categories
//! that cover most of what is allowed (or denied), then the single commands that
//! still differ, then the first-arg rules.

use super::catalog::{category_bit, Catalog, CATEGORIES};
use super::sha256;
use bytes::Bytes;

/// Key pattern permission bits (`%R~`, `%W~`, `~` = both).
pub const READ: u8 = 1;
pub const WRITE: u8 = 2;
const ALL_PERMS: u8 = READ | WRITE;

/// Why a rule word was refused; the text is what Redis puts after the modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Unknown command or category name in ACL")]
    Unknown,
    #[error("Syntax error")]
    Syntax,
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    KeysAfterAll,
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    ChannelsAfterAll,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSub,
}

/// Why ACL SETUSER (or a `user` line) was refused, with Redis's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetUserError {
    #[error("Error in ACL SETUSER modifier '{op}': {err}")]
    Modifier { op: String, err: RuleError },
    #[error("Unmatched parenthesis in acl selector starting at '{0}'.")]
    Unmatched(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub perms: u8,
    pub pattern: Vec<u8>,
}

/// What one selector allows: commands, keys, channels.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    bits: Vec<u64>,
    /// Redis's reserved "future commands" bit: set only by `+@all`.
    future: bool,
    /// Every command bit is set (the check's shortcut; cleared by any removal).
    all_commands: bool,
    /// Command id -> first arguments allowed although the command is not (`+select|0`).
    first_args: Vec<(usize, Vec<String>)>,
    pub all_keys: bool,
    pub keys: Vec<KeyPattern>,
    pub all_channels: bool,
    pub channels: Vec<Vec<u8>>,
}

/// What a check found wrong; the order is Redis's (a later reason wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denial {
    Command,
    Key,
    Channel,
}

/// What the caller knows about the command being checked.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Catalog id of the command (the subcommand for a container).
    pub id: usize,
    /// A command every connection may run (AUTH, HELLO, QUIT...).
    pub no_auth: bool,
    /// Argument index of the first argument after the (sub)command name.
    pub first_arg: usize,
    pub argv: &'a [Bytes],
    /// Key argument positions with their READ/WRITE needs.
    pub keys: &'a [(usize, u8)],
    /// Channel argument positions; true for a pattern (PSUBSCRIBE).
    pub channels: &'a [(usize, bool)],
}

impl Selector {
    fn new(catalog: &Catalog, all_channels: bool) -> Self {
        Selector {
            bits: vec![0; catalog.len().div_ceil(64)],
            all_channels,
            ..Default::default()
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.bits
            .get(id / 64)
            .is_some_and(|w| w & (1u64 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.bits.get_mut(id / 64) {
            if on {
                *w |= 1u64 << (id % 64);
            } else {
                *w &= !(1u64 << (id % 64));
                self.all_commands = false;
            }
        }
    }

    /// Redis `ACLChangeSelectorPerm`: the command, its first-args reset, and all
    /// its subcommands.
    fn change_perm(&mut self, catalog: &Catalog, id: usize, on: bool) {
        self.set_bit(id, on);
        self.first_args.retain(|(c, _)| *c != id);
        if let Some(e) = catalog.get(id) {
            for &s in &e.subs {
                self.set_bit(s, on);
            }
        }
    }

    fn set_category(&mut self, catalog: &Catalog, bit: u32, on: bool) {
        for (id, e) in catalog.entries.iter().enumerate() {
            if e.categories & bit != 0 {
                self.change_perm(catalog, id, on);
            }
        }
    }

    fn set_all(&mut self, on: bool) {
        for w in &mut self.bits {
            *w = if on { u64::MAX } else { 0 };
        }
        self.future = on;
        self.all_commands = on;
        self.first_args.clear();
    }

    /// Applies one selector rule word (Redis `ACLSetSelector`).
    pub fn apply(&mut self, catalog: &Catalog, op: &str) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" | "~*" => {
                self.all_keys = true;
                self.keys.clear();
                return Ok(());
            }
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
                return Ok(());
            }
            "allchannels" | "&*" => {
                self.all_channels = true;
                self.channels.clear();
                return Ok(());
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
                return Ok(());
            }
            "allcommands" | "+@all" => {
                self.set_all(true);
                return Ok(());
            }
            "nocommands" | "-@all" => {
                self.set_all(false);
                return Ok(());
            }
            _ => {}
        }
        let bytes = op.as_bytes();
        match bytes.first() {
            Some(b'~') | Some(b'%') => self.add_key_pattern(op),
            Some(b'&') => {
                if self.all_channels {
                    return Err(RuleError::ChannelsAfterAll);
                }
                let p = bytes[1..].to_vec();
                if !self.channels.contains(&p) {
                    self.channels.push(p);
                }
                Ok(())
            }
            Some(&sign @ (b'+' | b'-')) if bytes.get(1) == Some(&b'@') => {
                let bit = category_bit(&op[2..]).ok_or(RuleError::Unknown)?;
                self.set_category(catalog, bit, sign == b'+');
                Ok(())
            }
            Some(b'+') => self.allow_command(catalog, &lower[1..]),
            Some(b'-') => {
                let id = catalog.id(&lower[1..]).ok_or(RuleError::Unknown)?;
                self.change_perm(catalog, id, false);
                Ok(())
            }
            _ => Err(RuleError::Syntax),
        }
    }

    fn add_key_pattern(&mut self, op: &str) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::KeysAfterAll);
        }
        let bytes = op.as_bytes();
        let (perms, offset) = if bytes.first() == Some(&b'%') {
            let mut perms = 0u8;
            let mut offset = None;
            for (i, &c) in bytes.iter().enumerate().skip(1) {
                match c.to_ascii_uppercase() {
                    b'R' if perms & READ == 0 => perms |= READ,
                    b'W' if perms & WRITE == 0 => perms |= WRITE,
                    b'~' => {
                        offset = Some(i + 1);
                        break;
                    }
                    _ => return Err(RuleError::Syntax),
                }
            }
            match offset {
                Some(o) if perms != 0 => (perms, o),
                _ => return Err(RuleError::Syntax),
            }
        } else {
            (ALL_PERMS, 1)
        };
        let pattern = bytes[offset..].to_vec();
        if pattern.iter().any(|c| c.is_ascii_whitespace()) {
            return Err(RuleError::Syntax);
        }
        match self.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(k) => k.perms |= perms,
            None => self.keys.push(KeyPattern { perms, pattern }),
        }
        Ok(())
    }

    /// `+cmd`, `+cmd|sub` (a subcommand) or `+cmd|arg` (a first argument of a
    /// command without subcommands).
    fn allow_command(&mut self, catalog: &Catalog, name: &str) -> Result<(), RuleError> {
        let Some((cmd, sub)) = name.split_once('|') else {
            let id = catalog.id(name).ok_or(RuleError::Unknown)?;
            self.change_perm(catalog, id, true);
            return Ok(());
        };
        let id = catalog.id(cmd).ok_or(RuleError::Unknown)?;
        let entry = catalog.get(id).ok_or(RuleError::Unknown)?;
        if entry.parent.is_some() {
            return Err(RuleError::FirstArgOfSub);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !entry.subs.is_empty() {
            let sid = catalog.id(name).ok_or(RuleError::Unknown)?;
            self.change_perm(catalog, sid, true);
            return Ok(());
        }
        if self.bit(id) {
            return Ok(());
        }
        match self.first_args.iter_mut().find(|(c, _)| *c == id) {
            Some((_, args)) => {
                if !args.iter().any(|a| a == sub) {
                    args.push(sub.to_string());
                }
            }
            None => self.first_args.push((id, vec![sub.to_string()])),
        }
        Ok(())
    }

    fn unrestricted(&self) -> bool {
        self.all_commands && self.all_keys && self.all_channels
    }

    /// Redis `ACLSelectorCheckCmd`: Ok, or what is denied and the argument at fault.
    fn check(&self, req: &Request) -> Result<(), (Denial, usize)> {
        if !self.all_commands && !req.no_auth && !self.bit(req.id) {
            let allowed = req.argv.get(req.first_arg).is_some_and(|a| {
                self.first_args.iter().any(|(c, args)| {
                    *c == req.id && args.iter().any(|x| x.as_bytes().eq_ignore_ascii_case(a))
                })
            });
            if !allowed {
                return Err((Denial::Command, 0));
            }
        }
        if !self.all_keys {
            for &(pos, need) in req.keys {
                let Some(key) = req.argv.get(pos) else {
                    continue;
                };
                let ok = self.keys.iter().any(|p| {
                    p.perms & need == need && crate::util::glob_match(&p.pattern, key, false)
                });
                if !ok {
                    return Err((Denial::Key, pos));
                }
            }
        }
        if !self.all_channels {
            for &(pos, is_pattern) in req.channels {
                let Some(ch) = req.argv.get(pos) else {
                    continue;
                };
                let ok = self.channels.iter().any(|p| {
                    if is_pattern {
                        p[..] == ch[..]
                    } else {
                        crate::util::glob_match(p, ch, false)
                    }
                });
                if !ok {
                    return Err((Denial::Channel, pos));
                }
            }
        }
        Ok(())
    }

    /// The selector's commands as rules (Redis 7.0 `ACLDescribeSelectorCommandRules`).
    pub fn describe_commands(&self, catalog: &Catalog) -> String {
        let mut fake = Selector::new(catalog, false);
        let additive = !self.future;
        let mut out = String::from(if additive { "-@all" } else { "+@all" });
        fake.set_all(!additive);
        // Greedy best fit (Redis 7.0): repeatedly take the category that agrees with
        // the selector on more commands than it disagrees, with the fewest
        // disagreements (then the most agreements). Counts are taken on a copy in
        // which each category taken is inverted, so it is not taken again.
        let mut temp = self.clone();
        loop {
            let mut best: Option<(usize, usize, usize)> = None;
            for i in 0..CATEGORIES.len() {
                let (on, off) = temp.count_category(catalog, 1u32 << i);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                let better = match best {
                    None => true,
                    Some((_, d, s)) => diff < d || (diff == d && same > s),
                };
                if same > diff && better {
                    best = Some((i, diff, same));
                }
            }
            let Some((i, _, _)) = best else {
                break;
            };
            out.push_str(if additive { " +@" } else { " -@" });
            out.push_str(CATEGORIES[i]);
            fake.set_category(catalog, 1u32 << i, additive);
            temp.set_category(catalog, 1u32 << i, !additive);
        }
        for (id, e) in catalog.entries.iter().enumerate() {
            let mine = self.bit(id);
            if mine != fake.bit(id) {
                out.push_str(if mine { " +" } else { " -" });
                out.push_str(e.name);
                fake.change_perm(catalog, id, mine);
            }
        }
        for (id, args) in &self.first_args {
            if self.bit(*id) {
                continue;
            }
            let Some(e) = catalog.get(*id) else {
                continue;
            };
            for a in args {
                out.push_str(&format!(" +{}|{}", e.name, a));
            }
        }
        out
    }

    /// (allowed, denied) commands of a category.
    fn count_category(&self, catalog: &Catalog, bit: u32) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for (id, e) in catalog.entries.iter().enumerate() {
            if e.categories & bit != 0 {
                if self.bit(id) {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }

    /// Key patterns as rules (`~*`, `%R~p`, `~p`), space separated.
    pub fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        let parts: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                let p = String::from_utf8_lossy(&k.pattern);
                match k.perms {
                    READ => format!("%R~{p}"),
                    WRITE => format!("%W~{p}"),
                    _ => format!("~{p}"),
                }
            })
            .collect();
        parts.join(" ")
    }

    /// Channel patterns as GETUSER shows them (`&*`, `&p ...`).
    pub fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        let parts: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        parts.join(" ")
    }

    /// The whole selector as rules (Redis `ACLDescribeSelector`).
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut s = String::new();
        let keys = self.describe_keys();
        if !keys.is_empty() {
            s.push_str(&keys);
            s.push(' ');
        }
        if !self.all_channels {
            s.push_str("resetchannels ");
        }
        let channels = self.describe_channels();
        if !channels.is_empty() {
            s.push_str(&channels);
            s.push(' ');
        }
        s.push_str(&self.describe_commands(catalog));
        s
    }
}

/// One ACL user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` (Some(true)) or `skip-sanitize-payload` (Some(false)):
    /// shown as Redis shows them; Tandem validates RESTORE payloads either way.
    pub sanitize: Option<bool>,
    /// Lower-case hex SHA-256 of each password.
    pub passwords: Vec<String>,
    pub root: Selector,
    pub selectors: Vec<Selector>,
    /// `allcommands allkeys allchannels` and no selectors: checks pass at once.
    pub unrestricted: bool,
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

impl User {
    /// A new user as ACL SETUSER creates it: off, no passwords, nothing allowed;
    /// channels follow `acl-pubsub-default`.
    pub fn new(catalog: &Catalog, name: &str, all_channels: bool) -> Self {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            root: Selector::new(catalog, all_channels),
            selectors: Vec::new(),
            unrestricted: false,
        }
    }

    /// The `default` user of a fresh server: `on nopass ~* &* +@all`.
    pub fn default_user(catalog: &Catalog) -> Self {
        let mut u = User::new(catalog, "default", true);
        u.enabled = true;
        u.nopass = true;
        u.root.all_keys = true;
        u.root.set_all(true);
        u.refresh();
        u
    }

    fn refresh(&mut self) {
        self.unrestricted = self.root.unrestricted() && self.root.first_args.is_empty();
    }

    /// Applies one rule word (Redis `ACLSetUser`); selectors come whole, `(...)`.
    pub fn apply(
        &mut self,
        catalog: &Catalog,
        op: &str,
        pubsub_default_all: bool,
    ) -> Result<(), RuleError> {
        let r = self.apply_inner(catalog, op, pubsub_default_all);
        self.refresh();
        r
    }

    fn apply_inner(
        &mut self,
        catalog: &Catalog,
        op: &str,
        pubsub_default_all: bool,
    ) -> Result<(), RuleError> {
        match op.to_ascii_lowercase().as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "sanitize-payload" => self.sanitize = Some(true),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "clearselectors" => self.selectors.clear(),
            "reset" => {
                for w in ["resetpass", "resetkeys", "resetchannels"] {
                    self.apply_inner(catalog, w, pubsub_default_all)?;
                }
                if pubsub_default_all {
                    self.apply_inner(catalog, "allchannels", pubsub_default_all)?;
                }
                for w in ["off", "sanitize-payload", "clearselectors", "-@all"] {
                    self.apply_inner(catalog, w, pubsub_default_all)?;
                }
            }
            _ => return self.apply_password_or_selector(catalog, op),
        }
        Ok(())
    }

    fn apply_password_or_selector(&mut self, catalog: &Catalog, op: &str) -> Result<(), RuleError> {
        let rest = op.get(1..).unwrap_or("");
        match op.as_bytes().first() {
            Some(b'>') | Some(b'#') => {
                let hash = if op.starts_with('>') {
                    sha256::hex(rest.as_bytes())
                } else if valid_hash(rest) {
                    rest.to_string()
                } else {
                    return Err(RuleError::BadHash);
                };
                if !self.passwords.contains(&hash) {
                    self.passwords.push(hash);
                }
                self.nopass = false;
            }
            Some(b'<') | Some(b'!') => {
                let hash = if op.starts_with('<') {
                    sha256::hex(rest.as_bytes())
                } else if valid_hash(rest) {
                    rest.to_string()
                } else {
                    return Err(RuleError::BadHash);
                };
                let before = self.passwords.len();
                self.passwords.retain(|h| *h != hash);
                if self.passwords.len() == before {
                    return Err(RuleError::NoSuchPassword);
                }
            }
            Some(b'(') if op.ends_with(')') && op.len() >= 2 => {
                let mut sel = Selector::new(catalog, false);
                for word in op[1..op.len() - 1].split_ascii_whitespace() {
                    sel.apply(catalog, word)?;
                }
                self.selectors.push(sel);
            }
            _ => self.root.apply(catalog, op)?,
        }
        Ok(())
    }

    /// Applies rule words as ACL SETUSER does: selectors spread over several words
    /// are joined first; on error nothing is applied (the caller keeps the old user).
    pub fn apply_all(
        &mut self,
        catalog: &Catalog,
        ops: &[String],
        pubsub_default_all: bool,
    ) -> Result<(), SetUserError> {
        for op in merge_selectors(ops)? {
            self.apply(catalog, &op, pubsub_default_all)
                .map_err(|err| SetUserError::Modifier { op, err })?;
        }
        Ok(())
    }

    /// Whether `pass` is one of the user's passwords (any, with `nopass`).
    pub fn password_ok(&self, pass: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let h = sha256::hex(pass);
        // Every stored hash is compared, so timing does not tell which matched.
        let mut ok = false;
        for p in &self.passwords {
            ok |= constant_time_eq(p.as_bytes(), h.as_bytes());
        }
        ok
    }

    /// Checks a command (Redis `ACLCheckAllUserCommandPerm`): the root selector, then
    /// each selector; if none allows it, the most relevant denial and its argument.
    pub fn check(&self, req: &Request) -> Result<(), (Denial, usize)> {
        if self.unrestricted {
            return Ok(());
        }
        let mut worst = (Denial::Command, 0);
        for s in std::iter::once(&self.root).chain(&self.selectors) {
            match s.check(req) {
                Ok(()) => return Ok(()),
                Err(d) => {
                    if d.0 > worst.0 || (d.0 == worst.0 && d.1 > worst.1) {
                        worst = d;
                    }
                }
            }
        }
        Err(worst)
    }

    /// The user's flags as GETUSER lists them.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// The user as rules, without the `user <name>` prefix (ACL LIST, the ACL file).
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut s = self.flags().join(" ");
        for p in &self.passwords {
            s.push_str(" #");
            s.push_str(p);
        }
        s.push(' ');
        s.push_str(&self.root.describe(catalog));
        for sel in &self.selectors {
            s.push_str(" (");
            s.push_str(&sel.describe(catalog));
            s.push(')');
        }
        s
    }

    /// Whether the user could still use a channel it is subscribed to (after a rule
    /// change, Redis disconnects subscribers that lost access).
    pub fn channel_allowed(&self, channel: &[u8], is_pattern: bool) -> bool {
        std::iter::once(&self.root).chain(&self.selectors).any(|s| {
            s.all_channels
                || s.channels.iter().any(|p| {
                    if is_pattern {
                        p[..] == channel[..]
                    } else {
                        crate::util::glob_match(p, channel, false)
                    }
                })
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Joins a selector spread over several words (`(~x*`, `+get)`) into one word
/// (Redis `ACLMergeSelectorArguments`).
pub fn merge_selectors(ops: &[String]) -> Result<Vec<String>, SetUserError> {
    let mut out = Vec::with_capacity(ops.len());
    // The selector being joined, and the word that opened it (named in the error).
    let mut open: Option<(String, &String)> = None;
    for op in ops {
        match open.as_mut() {
            Some((acc, _)) => {
                acc.push(' ');
                acc.push_str(op);
                if op.ends_with(')') {
                    out.extend(open.take().map(|(acc, _)| acc));
                }
            }
            None if op.starts_with('(') && !op.ends_with(')') => open = Some((op.clone(), op)),
            None => out.push(op.clone()),
        }
    }
    match open {
        Some((_, first)) => Err(SetUserError::Unmatched(first.clone())),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// get (read|string), set (write|string), config with get/set subcommands (admin).
    fn catalog() -> Catalog {
        let bit = |n| crate::acl::catalog::category_bit(n).unwrap_or(0);
        let mut c = Catalog::default();
        c.add("get", bit("read") | bit("string"), &[]);
        c.add("set", bit("write") | bit("string"), &[]);
        c.add(
            "config",
            bit("slow"),
            &[("config|get", bit("admin")), ("config|set", bit("admin"))],
        );
        c.add("select", bit("fast"), &[]);
        c
    }

    fn req<'a>(c: &Catalog, argv: &'a [Bytes], keys: &'a [(usize, u8)]) -> Request<'a> {
        let name = String::from_utf8_lossy(&argv[0]).to_string();
        let full = match argv.get(1) {
            Some(sub) if name == "config" => format!("config|{}", String::from_utf8_lossy(sub)),
            _ => name,
        };
        Request {
            id: c.id(&full).unwrap_or(usize::MAX),
            no_auth: false,
            first_arg: if full.contains('|') { 2 } else { 1 },
            argv,
            keys,
            channels: &[],
        }
    }

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn selectors_first_args_and_key_permissions() {
        let c = catalog();
        let mut u = User::new(&c, "u", false);
        let ops: Vec<String> = ["on", "%R~r*", "+get", "+select|0", "(~w* +set)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        u.apply_all(&c, &ops, false).expect("rules");
        assert!(!u.unrestricted);
        let get_r = argv(&["get", "r1"]);
        assert_eq!(u.check(&req(&c, &get_r, &[(1, READ)])), Ok(()));
        let set_r = argv(&["set", "r1", "v"]);
        // The root selector lacks SET, the selector lacks the key: the key wins.
        assert_eq!(
            u.check(&req(&c, &set_r, &[(1, WRITE)])),
            Err((Denial::Key, 1))
        );
        let set_w = argv(&["set", "w1", "v"]);
        assert_eq!(u.check(&req(&c, &set_w, &[(1, WRITE)])), Ok(()));
        assert_eq!(u.check(&req(&c, &argv(&["select", "0"]), &[])), Ok(()));
        assert_eq!(
            u.check(&req(&c, &argv(&["select", "1"]), &[])),
            Err((Denial::Command, 0))
        );
        assert_eq!(
            u.describe(&c),
            "on %R~r* resetchannels -@all +@read +select|0 (~w* resetchannels -@all +@write)"
        );
    }

    #[test]
    fn container_rules_cover_subcommands_and_describe_back() {
        let c = catalog();
        let mut u = User::new(&c, "u", true);
        u.apply(&c, "+config", false).expect("+config");
        u.apply(&c, "-config|set", false).expect("-config|set");
        // `config` is all of @slow here, so the category is the better fit.
        assert_eq!(u.root.describe_commands(&c), "-@all +@slow -config|set");
        assert_eq!(u.apply(&c, "+config|get|x", false), Err(RuleError::Unknown));
        assert_eq!(u.apply(&c, "+get|", false), Err(RuleError::Syntax));
        assert_eq!(u.apply(&c, "+config|get", false), Ok(()));
        assert_eq!(u.apply(&c, "&x", false), Err(RuleError::ChannelsAfterAll));
        let d = User::default_user(&c);
        assert!(d.unrestricted);
        assert_eq!(d.describe(&c), "on nopass ~* &* +@all");
    }

    #[test]
    fn passwords_add_remove_and_hash_forms() {
        let c = catalog();
        let mut u = User::new(&c, "u", false);
        u.apply(&c, ">a", false).expect(">a");
        u.apply(&c, ">b", false).expect(">b");
        assert!(u.password_ok(b"a") && u.password_ok(b"b") && !u.password_ok(b"c"));
        u.apply(&c, "<a", false).expect("<a");
        assert!(!u.password_ok(b"a"));
        assert_eq!(u.apply(&c, "<a", false), Err(RuleError::NoSuchPassword));
        assert_eq!(u.apply(&c, "#ABC", false), Err(RuleError::BadHash));
        let h = sha256::hex(b"z");
        u.apply(&c, &format!("#{h}"), false).expect("#hash");
        assert!(u.password_ok(b"z"));
        u.apply(&c, &format!("!{h}"), false).expect("!hash");
        assert!(!u.password_ok(b"z"));
        u.apply(&c, "nopass", false).expect("nopass");
        assert!(u.password_ok(b"anything") && u.passwords.is_empty());
    }

    #[test]
    fn unmatched_selector_names_its_first_word() {
        let ops: Vec<String> = ["(~x", "+get"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            merge_selectors(&ops),
            Err(SetUserError::Unmatched("(~x".into()))
        );
        let ops: Vec<String> = ["on", "(~x", "+get)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            merge_selectors(&ops),
            Ok(vec!["on".to_string(), "(~x +get)".to_string()])
        );
    }

    #[test]
    fn password_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
