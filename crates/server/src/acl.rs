//! Access control lists: users, their rules, the permission check, and the ACL log.
//!
//! A user has flags, password hashes and one or more *selectors*; the first (the root
//! selector) holds the rules given outside parentheses. A selector allows commands (a bit
//! per command id, plus first arguments allowed for a command whose bit is off), keys
//! (glob patterns with read / write permissions) and pub/sub channels. A command runs when
//! one selector allows all of it, as in Redis 7.0.
//!
//! This module knows commands only through a [`Catalog`] (ids, full names, categories,
//! subcommands) that the command table builds: it depends on nothing else of the server.
//! Rules are applied to a copy and swapped in whole ([`Acl::set_user`]), so a connection
//! reads its user's rules as one consistent [`Rules`] value; connections cache that value
//! and look again only when [`Acl::version`] moved.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use crate::util::glob_match;

/// ACL categories in Redis's order (its `ACL CAT` order and bit order).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of a category name (with or without `@`, any case).
pub fn category_bit(name: &[u8]) -> Option<u32> {
    let name = name.strip_prefix(b"@").unwrap_or(name);
    CATEGORIES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// Which arguments of a command are pub/sub channels the channel rules apply to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChannelArgs {
    None,
    /// The first argument (PUBLISH, SPUBLISH).
    First,
    /// Every argument (SUBSCRIBE, SSUBSCRIBE).
    All,
    /// Every argument, each a pattern compared literally with the rules (PSUBSCRIBE).
    AllPatterns,
}

/// One command or subcommand as ACL rules see it.
pub struct Entry {
    /// `get`, `config|get`.
    pub fullname: String,
    pub categories: u32,
    pub parent: Option<usize>,
    pub subs: Vec<usize>,
    /// Allowed to every user (AUTH, HELLO: `no_auth`).
    pub no_auth: bool,
    pub channels: ChannelArgs,
}

/// Every command by id, as the command table numbers them.
#[derive(Default)]
pub struct Catalog {
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// `entries[i]` must describe id `i`.
    pub fn new(entries: Vec<Entry>) -> Self {
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.fullname.clone(), i))
            .collect();
        Self { entries, by_name }
    }

    /// A command (`get`) or subcommand (`config|get`) by name, any case.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        self.by_name.get(&name).copied()
    }

    fn top_level(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.entries.len()).filter(|&i| self.entries[i].parent.is_none())
    }

    /// Full names in a category, commands each followed by their subcommands (ACL CAT).
    pub fn in_category(&self, bit: u32) -> Vec<&str> {
        let mut out = Vec::new();
        for id in self.top_level() {
            let e = &self.entries[id];
            if e.categories & bit != 0 {
                out.push(e.fullname.as_str());
            }
            for &s in &e.subs {
                if self.entries[s].categories & bit != 0 {
                    out.push(self.entries[s].fullname.as_str());
                }
            }
        }
        out
    }
}

/// Key permissions of a pattern.
const READ: u8 = 1;
const WRITE: u8 = 2;
const READ_WRITE: u8 = READ | WRITE;

#[derive(Clone, PartialEq, Eq, Debug)]
struct KeyPattern {
    flags: u8,
    pattern: Vec<u8>,
}

/// A set of rules: what a user (root selector) or one of its parenthesised selectors
/// allows.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    all_keys: bool,
    all_channels: bool,
    /// Redis's ALLCOMMANDS flag: set by `+@all`, lost as soon as any command is removed.
    all_commands: bool,
    /// Redis's reserved bit: set by `+@all` (so the user may run commands added later),
    /// cleared by `-@all`. Decides whether the rules are described from `+@all` or `-@all`.
    future: bool,
    commands: Vec<u64>,
    /// First arguments allowed for a command whose bit is off (`+select|0`).
    first_args: BTreeMap<usize, Vec<Vec<u8>>>,
    keys: Vec<KeyPattern>,
    channels: Vec<Vec<u8>>,
}

/// Why a rule was refused, as `ACL SETUSER` words it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RuleError {
    Syntax,
    UnknownCommand,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    FirstArgOfSubcommand,
    UnmatchedParenthesis,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            Self::Syntax => "Syntax error",
            Self::UnknownCommand => "Unknown command or category name in ACL",
            Self::KeyAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            Self::ChannelAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            Self::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            Self::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            Self::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
            Self::UnmatchedParenthesis => "Unmatched parenthesis in selector definition",
        }
    }
}

/// Why a command was refused, in Redis's order of relevance (a later kind wins when no
/// selector allows the command).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Reason {
    Command = 1,
    Key = 2,
    Auth = 3,
    Channel = 4,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Key => "key",
            Self::Auth => "auth",
            Self::Channel => "channel",
        }
    }
}

/// A refusal: its reason and the argument (key or channel) it is about, 0 for a command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Denied {
    pub reason: Reason,
    pub pos: usize,
}

/// Whether a character is one ACL names and patterns may not contain (Redis's
/// `ACLStringHasSpaces`: `isspace` or NUL).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c == 0 || c == b' ' || (b'\t'..=b'\r').contains(&c))
}

fn eq_nocase(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

impl Selector {
    fn new(pubsub_all: bool, ids: usize) -> Self {
        Self {
            all_channels: pubsub_all,
            commands: vec![0; ids.div_ceil(64)],
            ..Default::default()
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.commands
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        let Some(w) = self.commands.get_mut(id / 64) else {
            return;
        };
        if on {
            *w |= 1 << (id % 64);
        } else {
            *w &= !(1 << (id % 64));
            self.all_commands = false;
        }
    }

    /// Allows or blocks a command, and all its subcommands with it.
    fn change(&mut self, cat: &Catalog, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.first_args.remove(&id);
        for &s in &cat.entries[id].subs {
            self.set_bit(s, allow);
        }
    }

    fn change_category(&mut self, cat: &Catalog, bit: u32, allow: bool) {
        for id in cat.top_level() {
            if cat.entries[id].categories & bit != 0 {
                self.change(cat, id, allow);
            }
            for &s in &cat.entries[id].subs {
                if cat.entries[s].categories & bit != 0 {
                    self.change(cat, s, allow);
                }
            }
        }
    }

    fn set_all(&mut self, on: bool) {
        let fill = if on { u64::MAX } else { 0 };
        self.commands.iter_mut().for_each(|w| *w = fill);
        self.all_commands = on;
        self.future = on;
        self.first_args.clear();
    }

    /// Applies one selector rule (Redis's `ACLSetSelector`).
    fn apply(&mut self, cat: &Catalog, op: &[u8]) -> Result<(), RuleError> {
        if eq_nocase(op, "allkeys") || op == b"~*" {
            self.all_keys = true;
            self.keys.clear();
        } else if eq_nocase(op, "resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if eq_nocase(op, "allchannels") || op == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if eq_nocase(op, "resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if eq_nocase(op, "allcommands") || eq_nocase(op, "+@all") {
            self.set_all(true);
        } else if eq_nocase(op, "nocommands") || eq_nocase(op, "-@all") {
            self.set_all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            if self.all_keys {
                return Err(RuleError::KeyAfterAll);
            }
            let (flags, pattern) = if op[0] == b'%' {
                let mut flags = 0;
                let mut rest = None;
                for (i, &c) in op.iter().enumerate().skip(1) {
                    match c.to_ascii_uppercase() {
                        b'R' if flags & READ == 0 => flags |= READ,
                        b'W' if flags & WRITE == 0 => flags |= WRITE,
                        b'~' => {
                            rest = Some(&op[i + 1..]);
                            break;
                        }
                        _ => return Err(RuleError::Syntax),
                    }
                }
                match rest {
                    Some(p) if flags != 0 => (flags, p),
                    _ => return Err(RuleError::Syntax),
                }
            } else {
                (READ_WRITE, &op[1..])
            };
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            match self.keys.iter_mut().find(|k| k.pattern == pattern) {
                Some(k) => k.flags |= flags,
                None => self.keys.push(KeyPattern {
                    flags,
                    pattern: pattern.to_vec(),
                }),
            }
        } else if op[0] == b'&' {
            if self.all_channels {
                return Err(RuleError::ChannelAfterAll);
            }
            let pattern = &op[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pattern) {
                self.channels.push(pattern.to_vec());
            }
        } else if op[0] == b'+' && op.get(1) != Some(&b'@') {
            let name = &op[1..];
            match name.iter().rposition(|&c| c == b'|') {
                None => {
                    let id = cat.lookup(name).ok_or(RuleError::UnknownCommand)?;
                    self.change(cat, id, true);
                }
                Some(bar) => {
                    let (base, sub) = (&name[..bar], &name[bar + 1..]);
                    let id = cat.lookup(base).ok_or(RuleError::UnknownCommand)?;
                    if cat.entries[id].parent.is_some() {
                        return Err(RuleError::FirstArgOfSubcommand);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if cat.entries[id].subs.is_empty() {
                        // A first argument of an otherwise blocked command (`+select|0`).
                        tracing::warn!(
                            "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
                            String::from_utf8_lossy(name)
                        );
                        let list = self.first_args.entry(id).or_default();
                        if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                            list.push(sub.to_vec());
                        }
                    } else {
                        let sid = cat.lookup(name).ok_or(RuleError::UnknownCommand)?;
                        self.change(cat, sid, true);
                    }
                }
            }
        } else if op[0] == b'-' && op.get(1) != Some(&b'@') {
            let id = cat.lookup(&op[1..]).ok_or(RuleError::UnknownCommand)?;
            self.change(cat, id, false);
        } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
            let bit = category_bit(&op[2..]).ok_or(RuleError::UnknownCommand)?;
            self.change_category(cat, bit, op[0] == b'+');
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// Commands allowed (`on`) and not (`off`) among those in a category.
    fn count(&self, cat: &Catalog, bit: u32) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for (id, e) in cat.entries.iter().enumerate() {
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

    /// The command rules that rebuild this selector's commands, as Redis describes them:
    /// `+@all` or `-@all`, then the categories that fit best, then single commands.
    fn describe_commands(&self, cat: &Catalog) -> String {
        let ids = cat.entries.len();
        let additive = !self.future;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new(false, ids);
        fake.set_all(!additive);
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (j, name) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count(cat, 1 << j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some((j, *name));
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some((j, name)) = best else { break };
            fake.change_category(cat, 1 << j, additive);
            temp.change_category(cat, 1 << j, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(name);
            rules.push(' ');
            applied[j] = true;
        }
        // Single commands the categories did not get right, with allowed first args.
        for id in cat.top_level() {
            self.describe_single(cat, &mut fake, &mut rules, id);
            for &s in &cat.entries[id].subs {
                self.describe_single(cat, &mut fake, &mut rules, s);
            }
        }
        rules.pop();
        debug_assert_eq!(fake.commands, self.commands, "{rules}");
        rules
    }

    fn describe_single(&self, cat: &Catalog, fake: &mut Selector, rules: &mut String, id: usize) {
        let user = self.bit(id);
        if user != fake.bit(id) {
            rules.push(if user { '+' } else { '-' });
            rules.push_str(&cat.entries[id].fullname);
            rules.push(' ');
            fake.change(cat, id, user);
        }
        if !user {
            for a in self.first_args.get(&id).into_iter().flatten() {
                rules.push('+');
                rules.push_str(&cat.entries[id].fullname);
                rules.push('|');
                rules.push_str(&String::from_utf8_lossy(a));
                rules.push(' ');
            }
        }
    }

    fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        let parts: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                let prefix = match k.flags {
                    READ => "%R~",
                    WRITE => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(&k.pattern))
            })
            .collect();
        parts.join(" ")
    }

    fn describe_channels(&self) -> String {
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

    /// The selector as `ACL LIST` writes it.
    fn describe(&self, cat: &Catalog) -> String {
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
        s.push_str(&self.describe_commands(cat));
        s
    }

    fn key_allowed(&self, key: &[u8], need: u8) -> bool {
        self.all_keys
            || self
                .keys
                .iter()
                .any(|k| k.flags & need == need && glob_match(&k.pattern, key, false))
    }

    fn channel_allowed(&self, channel: &[u8], literal: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| {
                if literal {
                    p == channel
                } else {
                    glob_match(p, channel, false)
                }
            })
    }

    /// Redis's `ACLSelectorCheckCmd`.
    fn check(
        &self,
        cat: &Catalog,
        id: usize,
        argv: &[&[u8]],
        keys: &mut KeyCache<impl FnOnce() -> Vec<(usize, u8)>>,
    ) -> Result<(), Denied> {
        let e = &cat.entries[id];
        let denied = |reason, pos| Err(Denied { reason, pos });
        if !self.all_commands && !e.no_auth && !self.bit(id) {
            let idx = if e.parent.is_some() { 2 } else { 1 };
            let ok = argv.get(idx).is_some_and(|a| {
                self.first_args
                    .get(&id)
                    .is_some_and(|l| l.iter().any(|x| x.eq_ignore_ascii_case(a)))
            });
            if !ok {
                return denied(Reason::Command, 0);
            }
        }
        if !self.all_keys {
            for &(pos, need) in keys.get() {
                if !self.key_allowed(argv[pos], need) {
                    return denied(Reason::Key, pos);
                }
            }
        }
        if !self.all_channels {
            let (range, literal) = match e.channels {
                ChannelArgs::None => (0..0, false),
                ChannelArgs::First => (1..2.min(argv.len()), false),
                ChannelArgs::All => (1..argv.len(), false),
                ChannelArgs::AllPatterns => (1..argv.len(), true),
            };
            for pos in range {
                if !self.channel_allowed(argv[pos], literal) {
                    return denied(Reason::Channel, pos);
                }
            }
        }
        Ok(())
    }
}

/// A command's keys with the permissions they need (argument position, needs), found
/// once for all selectors, and only if a selector restricts keys.
pub struct KeyCache<F> {
    find: Option<F>,
    keys: Vec<(usize, u8)>,
}

impl<F: FnOnce() -> Vec<(usize, u8)>> KeyCache<F> {
    /// `find` returns each key's argument position and needs ([`key_needs`]).
    pub fn new(find: F) -> Self {
        Self {
            find: Some(find),
            keys: Vec::new(),
        }
    }

    fn get(&mut self) -> &[(usize, u8)] {
        if let Some(f) = self.find.take() {
            self.keys = f();
        }
        &self.keys
    }
}

/// The permissions a key spec's flags need: reading for `access`, writing for `insert`,
/// `delete` and `update` (Redis's `ACLSelectorCheckKey`).
pub fn key_needs(spec_flags: &str) -> u8 {
    let mut need = 0;
    for f in spec_flags.split_whitespace() {
        match f {
            "access" => need |= READ,
            "insert" | "delete" | "update" => need |= WRITE,
            _ => {}
        }
    }
    need
}

/// Everything a user is: flags, password hashes and selectors (the root first).
#[derive(Clone, Debug)]
pub struct Rules {
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` (Some(true)) or `skip-sanitize-payload` (Some(false)).
    sanitize: Option<bool>,
    passwords: Vec<String>,
    selectors: Vec<Selector>,
}

/// SHA-256 of a password, in lowercase hex (how Redis stores and shows passwords).
pub fn hash_password(password: &[u8]) -> String {
    let digest = Sha256::digest(password);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares without a data-dependent early exit (Redis's `time_independent_strcmp`).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    diff == 0 && a.len() == b.len()
}

impl Rules {
    /// A new user: off, no passwords, no commands, no keys; channels per
    /// `acl-pubsub-default`.
    pub fn new(cat: &Catalog, pubsub_all: bool) -> Self {
        Self {
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new(pubsub_all, cat.entries.len())],
        }
    }

    /// The default user as Redis creates it: on, nopass, everything allowed.
    pub fn default_user(cat: &Catalog) -> Self {
        let mut r = Self::new(cat, true);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = r.apply(cat, op.as_bytes(), true);
        }
        r
    }

    /// Applies one rule (Redis's `ACLSetUser`); `pubsub_all` is `acl-pubsub-default`.
    pub fn apply(&mut self, cat: &Catalog, op: &[u8], pubsub_all: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        if eq_nocase(op, "on") {
            self.enabled = true;
        } else if eq_nocase(op, "off") {
            self.enabled = false;
        } else if eq_nocase(op, "skip-sanitize-payload") {
            self.sanitize = Some(false);
        } else if eq_nocase(op, "sanitize-payload") {
            self.sanitize = Some(true);
        } else if eq_nocase(op, "nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if eq_nocase(op, "resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = if op[0] == b'>' {
                hash_password(&op[1..])
            } else if valid_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = if op[0] == b'<' {
                hash_password(&op[1..])
            } else if valid_hash(&op[1..]) {
                String::from_utf8_lossy(&op[1..]).into_owned()
            } else {
                return Err(RuleError::BadHash);
            };
            let at = self.passwords.iter().position(|p| *p == hash);
            self.passwords.remove(at.ok_or(RuleError::NoSuchPassword)?);
        } else if op[0] == b'(' && op.len() > 1 && op[op.len() - 1] == b')' {
            let mut s = Selector::new(pubsub_all, cat.entries.len());
            for w in op[1..op.len() - 1]
                .split(|c| c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
            {
                s.apply(cat, w)?;
            }
            self.selectors.push(s);
        } else if eq_nocase(op, "clearselectors") {
            self.selectors.truncate(1);
        } else if eq_nocase(op, "reset") {
            self.nopass = false;
            self.passwords.clear();
            let root = &mut self.selectors[0];
            root.all_keys = false;
            root.keys.clear();
            root.all_channels = pubsub_all;
            root.channels.clear();
            self.enabled = false;
            self.sanitize = Some(true);
            self.selectors.truncate(1);
            self.selectors[0].set_all(false);
        } else {
            self.selectors[0].apply(cat, op)?;
        }
        Ok(())
    }

    /// Whether every command, key and channel is allowed: nothing to check per command.
    pub fn unrestricted(&self) -> bool {
        self.selectors
            .iter()
            .any(|s| s.all_commands && s.all_keys && s.all_channels)
    }

    /// Whether `password` authenticates as this user (an enabled one).
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(password);
        self.passwords.iter().fold(false, |ok, p| {
            same_secret(p.as_bytes(), hash.as_bytes()) | ok
        })
    }

    /// Redis's `ACLCheckAllUserCommandPerm`: allowed when one selector allows it all;
    /// otherwise the most relevant refusal.
    pub fn check(
        &self,
        cat: &Catalog,
        id: usize,
        argv: &[&[u8]],
        keys: &mut KeyCache<impl FnOnce() -> Vec<(usize, u8)>>,
    ) -> Result<(), Denied> {
        let mut worst = Denied {
            reason: Reason::Command,
            pos: 0,
        };
        for s in &self.selectors {
            match s.check(cat, id, argv, keys) {
                Ok(()) => return Ok(()),
                Err(d) => {
                    if d.reason > worst.reason || (d.reason == worst.reason && d.pos > worst.pos) {
                        worst = d;
                    }
                }
            }
        }
        Err(worst)
    }

    /// Whether a selector that allows the command may also read every key (SORT's BY and
    /// GET patterns read keys the arguments do not name: Redis's
    /// `ACLUserCheckCmdWithUnrestrictedKeyAccess`).
    pub fn reads_every_key(
        &self,
        cat: &Catalog,
        id: usize,
        argv: &[&[u8]],
        keys: &mut KeyCache<impl FnOnce() -> Vec<(usize, u8)>>,
    ) -> bool {
        self.selectors.iter().any(|s| {
            s.check(cat, id, argv, keys).is_ok()
                && (s.all_keys
                    || s.keys
                        .iter()
                        .any(|k| k.pattern == b"*" && k.flags & READ != 0))
        })
    }

    /// Whether some selector allows a channel (literally, for a pattern subscription).
    pub fn channel_allowed(&self, channel: &[u8], literal: bool) -> bool {
        self.selectors
            .iter()
            .any(|s| s.channel_allowed(channel, literal))
    }

    /// Whether the channel rules allow at least what `old` allowed (Redis's shortcut before
    /// looking at subscribed clients): some selector allows every channel, or every old
    /// pattern is still listed.
    fn channels_cover(&self, old: &Rules) -> bool {
        if self.selectors.iter().any(|s| s.all_channels) {
            return true;
        }
        old.selectors
            .iter()
            .flat_map(|s| &s.channels)
            .all(|c| self.selectors.iter().any(|s| s.channels.contains(c)))
    }

    /// Flags in Redis's order of description.
    pub fn flag_names(&self) -> Vec<&'static str> {
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

    pub fn passwords(&self) -> &[String] {
        &self.passwords
    }

    /// The user's rules as `ACL LIST` and the ACL file write them (after the name).
    pub fn describe(&self, cat: &Catalog) -> String {
        let mut s = String::new();
        for f in self.flag_names() {
            s.push_str(f);
            s.push(' ');
        }
        for p in &self.passwords {
            s.push('#');
            s.push_str(p);
            s.push(' ');
        }
        s.push_str(&self.selectors[0].describe(cat));
        for sel in &self.selectors[1..] {
            s.push_str(" (");
            s.push_str(&sel.describe(cat));
            s.push(')');
        }
        s
    }

    /// `(commands, keys, channels)` of each selector, the root first (ACL GETUSER).
    pub fn selector_fields(&self, cat: &Catalog) -> Vec<[String; 3]> {
        self.selectors
            .iter()
            .map(|s| {
                [
                    s.describe_commands(cat),
                    s.describe_keys(),
                    s.describe_channels(),
                ]
            })
            .collect()
    }
}

/// Merges selector rules split over several arguments (`(~key` `+get)`) into one
/// (Redis's `ACLMergeSelectorArguments`); `Err(i)`: the unclosed one starts at `i`.
pub fn merge_selectors(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, a) in args.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(a);
            if a.last() == Some(&b')') {
                out.push(open.take().map(|(_, s)| s).unwrap_or_default());
            }
            continue;
        }
        if a.first() == Some(&b'(') && a.last() != Some(&b')') {
            open = Some((i, a.to_vec()));
            continue;
        }
        out.push(a.to_vec());
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(out),
    }
}

/// One user: a name and its current rules, swapped whole on change.
pub struct User {
    pub name: Vec<u8>,
    rules: RwLock<Arc<Rules>>,
    /// Set once the user is deleted: connections using it are closed.
    pub deleted: AtomicBool,
}

impl User {
    fn new(name: &[u8], rules: Rules) -> Self {
        Self {
            name: name.to_vec(),
            rules: RwLock::new(Arc::new(rules)),
            deleted: AtomicBool::new(false),
        }
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().clone()
    }
}

/// Where a refused command ran (ACL LOG `context`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogContext {
    Toplevel,
    Multi,
    Lua,
}

impl LogContext {
    fn name(self) -> &'static str {
        match self {
            Self::Toplevel => "toplevel",
            Self::Multi => "multi",
            Self::Lua => "lua",
        }
    }
}

/// One ACL LOG entry: similar refusals within a minute are counted in one.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub count: u64,
    pub reason: Reason,
    pub context: LogContext,
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    pub ctime_ms: u64,
    pub client_info: String,
}

impl LogEntry {
    pub fn reason_name(&self) -> &'static str {
        self.reason.name()
    }

    pub fn context_name(&self) -> &'static str {
        self.context.name()
    }
}

/// Entries closer in time than this are grouped (Redis's ACL_LOG_GROUPING_MAX_TIME_DELTA).
const LOG_GROUPING_MS: u64 = 60_000;

/// A user's new rules, and its current ones if it exists.
pub type Staged = (Rules, Option<Arc<Rules>>);

/// The server's users, the ACL log, and the catalog rules are written against.
pub struct Acl {
    pub catalog: Catalog,
    users: RwLock<BTreeMap<Vec<u8>, Arc<User>>>,
    default: Arc<User>,
    /// Moves whenever any user's rules change: connections re-read their user's rules.
    version: AtomicU64,
    /// The default user requires a password or is off (Redis's `authRequired` test).
    auth_required: AtomicBool,
    log: Mutex<VecDeque<LogEntry>>,
    pub log_max_len: AtomicU64,
    /// `acl-pubsub-default allchannels`.
    pub pubsub_all: AtomicBool,
}

impl Acl {
    pub fn new(catalog: Catalog) -> Self {
        let default = Arc::new(User::new(b"default", Rules::default_user(&catalog)));
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), default.clone());
        Self {
            catalog,
            users: RwLock::new(users),
            default,
            version: AtomicU64::new(0),
            auth_required: AtomicBool::new(false),
            log: Mutex::new(VecDeque::new()),
            log_max_len: AtomicU64::new(128),
            pubsub_all: AtomicBool::new(false),
        }
    }

    pub fn version(&self) -> u64 {
        self.version.load(Relaxed)
    }

    pub fn default_user(&self) -> Arc<User> {
        self.default.clone()
    }

    /// Whether a new connection starts unauthenticated.
    pub fn auth_required(&self) -> bool {
        self.auth_required.load(Relaxed)
    }

    pub fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    fn changed(&self) {
        let d = self.default.rules();
        self.auth_required.store(!d.nopass || !d.enabled, Relaxed);
        self.version.fetch_add(1, Relaxed);
    }

    /// The rules of `name` with `ops` applied (a new user's if it does not exist), without
    /// changing anything: `Err((op, error))` names the first rule that failed.
    pub fn staged(&self, name: &[u8], ops: &[Vec<u8>]) -> Result<Staged, (Vec<u8>, RuleError)> {
        let pubsub_all = self.pubsub_all.load(Relaxed);
        let old = self.user(name).map(|u| u.rules());
        let mut rules = match &old {
            Some(r) => (**r).clone(),
            None => Rules::new(&self.catalog, pubsub_all),
        };
        for op in ops {
            rules
                .apply(&self.catalog, op, pubsub_all)
                .map_err(|e| (op.clone(), e))?;
        }
        Ok((rules, old))
    }

    /// Creates or replaces a user's rules. Returns whether the user's channel rules no
    /// longer cover what they did (its subscribers must then be checked).
    pub fn set_user(&self, name: &[u8], rules: Rules) -> bool {
        let mut users = self.users.write();
        let narrowed = match users.get(name) {
            Some(u) => {
                let mut cur = u.rules.write();
                let narrowed = !rules.channels_cover(&cur);
                *cur = Arc::new(rules);
                narrowed
            }
            None => {
                users.insert(name.to_vec(), Arc::new(User::new(name, rules)));
                false
            }
        };
        drop(users);
        self.changed();
        narrowed
    }

    /// Deletes users (never `default`); returns those that existed.
    pub fn delete(&self, names: &[&[u8]]) -> Vec<Arc<User>> {
        let mut users = self.users.write();
        let gone: Vec<Arc<User>> = names.iter().filter_map(|n| users.remove(*n)).collect();
        drop(users);
        for u in &gone {
            u.deleted.store(true, Relaxed);
        }
        self.changed();
        gone
    }

    /// Replaces every user at once (ACL LOAD, startup); the default user keeps its
    /// identity (connections hold it) and takes the new rules, or Redis's defaults.
    pub fn replace_all(&self, new: Vec<(Vec<u8>, Rules)>) -> Vec<Arc<User>> {
        let mut users = self.users.write();
        let mut default_rules = Rules::default_user(&self.catalog);
        let mut fresh = BTreeMap::new();
        for (name, rules) in new {
            if name == b"default" {
                default_rules = rules;
            } else {
                fresh.insert(name.clone(), Arc::new(User::new(&name, rules)));
            }
        }
        *self.default.rules.write() = Arc::new(default_rules);
        fresh.insert(b"default".to_vec(), self.default.clone());
        let old = std::mem::replace(&mut *users, fresh);
        drop(users);
        let gone: Vec<Arc<User>> = old
            .into_iter()
            .filter(|(n, _)| n != b"default")
            .map(|(_, u)| u)
            .collect();
        for u in &gone {
            u.deleted.store(true, Relaxed);
        }
        self.changed();
        gone
    }

    /// `requirepass`: the default user's only password, or nopass when empty.
    pub fn set_default_password(&self, password: &[u8]) {
        let mut rules = (*self.default.rules()).clone();
        let pubsub_all = self.pubsub_all.load(Relaxed);
        let _ = rules.apply(&self.catalog, b"resetpass", pubsub_all);
        if password.is_empty() {
            let _ = rules.apply(&self.catalog, b"nopass", pubsub_all);
        } else {
            let mut op = b">".to_vec();
            op.extend_from_slice(password);
            let _ = rules.apply(&self.catalog, &op, pubsub_all);
        }
        *self.default.rules.write() = Arc::new(rules);
        self.changed();
    }

    /// Checks credentials: the user, when they authenticate it.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let u = self.user(name)?;
        u.rules().password_ok(password).then_some(u)
    }

    /// Adds a refusal to the ACL log, counting it in a similar recent entry if there is one
    /// among the last ten.
    pub fn log(&self, mut e: LogEntry) {
        let mut log = self.log.lock();
        let similar = log.iter().take(10).position(|o| {
            o.reason == e.reason
                && o.context == e.context
                && o.ctime_ms.abs_diff(e.ctime_ms) <= LOG_GROUPING_MS
                && o.object == e.object
                && o.username == e.username
        });
        if let Some(i) = similar {
            if let Some(mut old) = log.remove(i) {
                old.count += 1;
                old.ctime_ms = e.ctime_ms;
                old.client_info = std::mem::take(&mut e.client_info);
                log.push_front(old);
            }
            return;
        }
        log.push_front(e);
        let max = self.log_max_len.load(Relaxed) as usize;
        log.truncate(max);
    }

    /// The newest `count` log entries.
    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.log.lock().iter().take(count).cloned().collect()
    }

    pub fn log_reset(&self) {
        self.log.lock().clear();
    }

    /// Trims the log to `acllog-max-len` after it changed.
    pub fn trim_log(&self) {
        let max = self.log_max_len.load(Relaxed) as usize;
        self.log.lock().truncate(max);
    }
}

/// A connection's user and the rules it last read.
pub struct Session {
    pub user: Arc<User>,
    pub rules: Arc<Rules>,
    version: u64,
    /// The cached rules allow everything: the per-command check is one comparison.
    pub unrestricted: bool,
}

impl Session {
    pub fn new(acl: &Acl, user: Arc<User>) -> Self {
        let rules = user.rules();
        Self {
            unrestricted: rules.unrestricted(),
            rules,
            user,
            version: acl.version(),
        }
    }

    /// Re-reads the user's rules if any user changed since they were read.
    #[inline]
    pub fn refresh(&mut self, acl: &Acl) {
        let v = acl.version();
        if v != self.version {
            self.rules = self.user.rules();
            self.unrestricted = self.rules.unrestricted();
            self.version = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let e = |name: &str, cats: &[&str], parent: Option<usize>, subs: Vec<usize>| Entry {
            fullname: name.into(),
            categories: cats
                .iter()
                .map(|c| category_bit(c.as_bytes()).unwrap())
                .fold(0, |a, b| a | b),
            parent,
            subs,
            no_auth: name == "auth",
            channels: if name == "publish" {
                ChannelArgs::First
            } else {
                ChannelArgs::None
            },
        };
        Catalog::new(vec![
            e("get", &["read", "string", "fast"], None, vec![]),
            e("set", &["write", "string", "slow"], None, vec![]),
            e("config", &["slow"], None, vec![3, 4]),
            e(
                "config|get",
                &["admin", "slow", "dangerous"],
                Some(2),
                vec![],
            ),
            e(
                "config|set",
                &["admin", "slow", "dangerous"],
                Some(2),
                vec![],
            ),
            e("select", &["fast", "connection"], None, vec![]),
            e("auth", &["fast", "connection"], None, vec![]),
            e("publish", &["pubsub", "fast"], None, vec![]),
        ])
    }

    fn rules(cat: &Catalog, ops: &[&str]) -> Rules {
        let mut r = Rules::new(cat, false);
        for op in ops {
            r.apply(cat, op.as_bytes(), false).unwrap();
        }
        r
    }

    fn check(
        cat: &Catalog,
        r: &Rules,
        argv: &[&str],
        keys: Vec<(usize, u8)>,
    ) -> Result<(), Denied> {
        let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        let id = cat.lookup(argv[0]).unwrap();
        let id = if cat.entries[id].subs.is_empty() {
            id
        } else {
            let mut n = argv[0].to_vec();
            n.push(b'|');
            n.extend_from_slice(argv[1]);
            cat.lookup(&n).unwrap()
        };
        r.check(cat, id, &argv, &mut KeyCache::new(move || keys))
    }

    #[test]
    fn describes_rules_as_redis_does() {
        let cat = catalog();
        let r = rules(
            &cat,
            &[
                "on",
                ">pw",
                "~k*",
                "%R~r*",
                "&ch*",
                "-@all",
                "+get",
                "+config|get",
                "+select|0",
            ],
        );
        assert_eq!(
            r.describe(&cat),
            format!(
                "on #{} ~k* %R~r* resetchannels &ch* -@all +@read +config|get +select|0",
                hash_password(b"pw")
            )
        );
        let d = Rules::default_user(&cat);
        assert_eq!(d.describe(&cat), "on nopass ~* &* +@all");
        let r = rules(&cat, &["+@all", "-@dangerous", "(~x* +get)"]);
        assert_eq!(
            r.describe(&cat),
            "off resetchannels +@all -@admin (~x* resetchannels -@all +@read)"
        );
        let r = rules(&cat, &["+@string"]);
        assert_eq!(r.describe(&cat), "off resetchannels -@all +@string");
    }

    #[test]
    fn checks_commands_keys_and_channels() {
        let cat = catalog();
        let r = rules(
            &cat,
            &[
                "on", "-@all", "+get", "+set", "+publish", "~k*", "%R~r*", "&ch*",
            ],
        );
        assert!(check(&cat, &r, &["get", "k1"], vec![(1, READ)]).is_ok());
        assert_eq!(
            check(&cat, &r, &["get", "x"], vec![(1, READ)])
                .unwrap_err()
                .reason,
            Reason::Key
        );
        assert!(check(&cat, &r, &["get", "r1"], vec![(1, READ)]).is_ok());
        assert_eq!(
            check(&cat, &r, &["set", "r1", "v"], vec![(1, WRITE)]).unwrap_err(),
            Denied {
                reason: Reason::Key,
                pos: 1
            }
        );
        assert_eq!(
            check(&cat, &r, &["config", "get", "x"], vec![])
                .unwrap_err()
                .reason,
            Reason::Command
        );
        assert!(check(&cat, &r, &["auth", "x"], vec![]).is_ok());
        assert!(check(&cat, &r, &["publish", "ch1", "m"], vec![]).is_ok());
        assert_eq!(
            check(&cat, &r, &["publish", "zz", "m"], vec![]).unwrap_err(),
            Denied {
                reason: Reason::Channel,
                pos: 1
            }
        );
        let r = rules(&cat, &["+select|0"]);
        assert!(check(&cat, &r, &["select", "0"], vec![]).is_ok());
        assert!(check(&cat, &r, &["select", "1"], vec![]).is_err());
    }

    #[test]
    fn rule_errors_leave_nothing_half_done() {
        let cat = catalog();
        let mut r = rules(&cat, &["~*"]);
        assert_eq!(r.apply(&cat, b"~x", false), Err(RuleError::KeyAfterAll));
        assert_eq!(
            r.apply(&cat, b"+nosuch", false),
            Err(RuleError::UnknownCommand)
        );
        assert_eq!(
            r.apply(&cat, b"+@nosuch", false),
            Err(RuleError::UnknownCommand)
        );
        assert_eq!(
            r.apply(&cat, b"+config|get|x", false),
            Err(RuleError::FirstArgOfSubcommand)
        );
        assert_eq!(r.apply(&cat, b"#abc", false), Err(RuleError::BadHash));
        assert_eq!(
            r.apply(&cat, b"<nope", false),
            Err(RuleError::NoSuchPassword)
        );
        r.apply(&cat, b"resetkeys", false).unwrap();
        assert_eq!(r.apply(&cat, b"%X~a", false), Err(RuleError::Syntax));
        assert_eq!(r.apply(&cat, b"%R", false), Err(RuleError::Syntax));
        assert_eq!(r.apply(&cat, b"bogus", false), Err(RuleError::Syntax));
        assert_eq!(
            merge_selectors(&[b"on", b"(~a", b"+get)", b"(+set)"]),
            Ok(vec![
                b"on".to_vec(),
                b"(~a +get)".to_vec(),
                b"(+set)".to_vec()
            ])
        );
        assert_eq!(merge_selectors(&[b"on", b"(~a"]), Err(1));
    }

    #[test]
    fn passwords_authenticate_enabled_users() {
        let cat = catalog();
        let r = rules(&cat, &["on", ">pw"]);
        assert!(r.password_ok(b"pw"));
        assert!(!r.password_ok(b"pw2"));
        let r = rules(&cat, &[">pw"]);
        assert!(
            !r.password_ok(b"pw"),
            "a user that is off cannot authenticate"
        );
        let r = rules(&cat, &["on", "nopass"]);
        assert!(r.password_ok(b"anything"));
    }
}
