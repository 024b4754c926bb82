//! `nodes.conf`: where a Redis 7.0 cluster node keeps its view of the cluster (the file
//! of `cluster-config-file`), rewritten whole at every change; and CLUSTER NODES, whose
//! reply is the same node lines without the last one.
//!
//! One line per known node, fields separated by single spaces:
//!
//! ```text
//! <id> <ip>:<port>@<cport>[,<hostname>] <flags> <primary id or -> <ping_sent> <pong_recv> <configEpoch> <connected|disconnected> [<slots>...]
//! ```
//!
//! * the flags are a comma-separated subset of `myself`, `master`, `slave`, `fail?`,
//!   `fail`, `handshake`, `noaddr`, `nofailover`, always written in that order, or
//!   `noflags` for none of them;
//! * `ping_sent` and `pong_recv` are Unix times in milliseconds (0: no ping pending);
//! * `connected` when the node has a bus link to it (or is the node itself);
//! * the slots are runs, `first-last` or a single `slot`, in ascending order; on the
//!   node's own line come after them the slots it is migrating to another node,
//!   `[slot->-id]`, and importing from one, `[slot-<-id]`, in slot order.
//!
//! The last line is `vars currentEpoch <n> lastVoteEpoch <m>`. Lines end with `\n`.
//! Reading is as strict as Redis's where Redis refuses to start (too few fields, an
//! unknown flag, a malformed address) and stricter where it would read garbage as 0 (a
//! number that is not one, a slot past 16383): an error names the line, and no input
//! makes it panic. What is written for the state read is what Redis writes for it.

use std::fmt;

use super::bus::{
    NODE_FAIL, NODE_HANDSHAKE, NODE_MASTER, NODE_MYSELF, NODE_NOADDR, NODE_NOFAILOVER, NODE_PFAIL,
    NODE_SLAVE, SLOTS,
};

/// The flags `nodes.conf` names, in the order Redis writes them.
pub const FLAG_NAMES: [(u16, &str); 8] = [
    (NODE_MYSELF, "myself"),
    (NODE_MASTER, "master"),
    (NODE_SLAVE, "slave"),
    (NODE_PFAIL, "fail?"),
    (NODE_FAIL, "fail"),
    (NODE_HANDSHAKE, "handshake"),
    (NODE_NOADDR, "noaddr"),
    (NODE_NOFAILOVER, "nofailover"),
];

/// A slot the node of the line is moving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotMark {
    /// `[slot->-id]`: the slot is being migrated to node `id`.
    Migrating { slot: u16, to: String },
    /// `[slot-<-id]`: the slot is being imported from node `id`.
    Importing { slot: u16, from: String },
}

/// One node line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    /// The node's name (40 hex digits in Redis's files).
    pub id: String,
    /// Empty for a node whose address is not known (`noaddr`).
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    /// `cluster-announce-hostname`, when the node has one.
    pub hostname: Option<String>,
    /// `NODE_*` bits; only those of [`FLAG_NAMES`] are written.
    pub flags: u16,
    /// The node's primary, for a replica.
    pub primary: Option<String>,
    /// Milliseconds.
    pub ping_sent: i64,
    /// Milliseconds.
    pub pong_recv: i64,
    pub config_epoch: u64,
    pub connected: bool,
    /// Runs of slots, `(first, last)` inclusive, as written.
    pub slots: Vec<(u16, u16)>,
    /// Migrating and importing slots, in the order written.
    pub marks: Vec<SlotMark>,
}

/// A whole `nodes.conf`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodesConf {
    pub nodes: Vec<NodeLine>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
}

/// Why a `nodes.conf` could not be read: the line (1-based) and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unrecoverable error in cluster config file at line {}: {}",
            self.line, self.reason
        )
    }
}

impl std::error::Error for Error {}

/// The flags of `flags` as `nodes.conf` writes them (`noflags` when none is named).
pub fn flags_text(flags: u16) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|&(_, name)| name)
        .collect();
    if names.is_empty() {
        "noflags".to_string()
    } else {
        names.join(",")
    }
}

impl NodeLine {
    /// The line as Redis writes it, without the newline.
    pub fn to_line(&self) -> String {
        let mut s = format!("{} {}:{}@{}", self.id, self.ip, self.port, self.cport);
        if let Some(h) = &self.hostname {
            s.push(',');
            s.push_str(h);
        }
        s.push(' ');
        s.push_str(&flags_text(self.flags));
        s.push(' ');
        s.push_str(self.primary.as_deref().unwrap_or("-"));
        s.push_str(&format!(
            " {} {} {} {}",
            self.ping_sent,
            self.pong_recv,
            self.config_epoch,
            if self.connected {
                "connected"
            } else {
                "disconnected"
            }
        ));
        for &(a, b) in &self.slots {
            if a == b {
                s.push_str(&format!(" {a}"));
            } else {
                s.push_str(&format!(" {a}-{b}"));
            }
        }
        for m in &self.marks {
            match m {
                SlotMark::Migrating { slot, to } => s.push_str(&format!(" [{slot}->-{to}]")),
                SlotMark::Importing { slot, from } => s.push_str(&format!(" [{slot}-<-{from}]")),
            }
        }
        s
    }

    /// Reads one node line (without its newline).
    pub fn parse(line: &str) -> Result<NodeLine, String> {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 8 {
            return Err("fewer than 8 fields".to_string());
        }
        let (addr, hostname) = match f[1].split_once(',') {
            Some((a, h)) => (a, Some(h.to_string())),
            None => (f[1], None),
        };
        let (ip, ports) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("address {addr:?} has no port"))?;
        let (port, cport) = match ports.split_once('@') {
            Some((p, c)) => (number::<u16>(p, "port")?, number::<u16>(c, "bus port")?),
            // Before Redis 4 the bus port was always the client port plus 10000.
            None => {
                let p = number::<u16>(ports, "port")?;
                let c = p
                    .checked_add(10000)
                    .ok_or_else(|| format!("port {p} has no implied bus port"))?;
                (p, c)
            }
        };
        let mut flags = 0;
        for name in f[2].split(',') {
            if name == "noflags" {
                continue;
            }
            match FLAG_NAMES.iter().find(|(_, n)| *n == name) {
                Some((bit, _)) => flags |= bit,
                None => return Err(format!("unknown flag {name:?}")),
            }
        }
        let primary = (f[3] != "-").then(|| f[3].to_string());
        let ping_sent = number::<i64>(f[4], "ping_sent")?;
        let pong_recv = number::<i64>(f[5], "pong_recv")?;
        let config_epoch = number::<u64>(f[6], "configEpoch")?;
        let connected = match f[7] {
            "connected" => true,
            "disconnected" => false,
            other => return Err(format!("link state {other:?}")),
        };
        let mut slots = Vec::new();
        let mut marks = Vec::new();
        for &arg in &f[8..] {
            if let Some(inner) = arg.strip_prefix('[') {
                let inner = inner
                    .strip_suffix(']')
                    .ok_or_else(|| format!("unterminated slot mark {arg:?}"))?;
                if let Some((s, to)) = inner.split_once("->-") {
                    marks.push(SlotMark::Migrating {
                        slot: slot(s)?,
                        to: to.to_string(),
                    });
                } else if let Some((s, from)) = inner.split_once("-<-") {
                    marks.push(SlotMark::Importing {
                        slot: slot(s)?,
                        from: from.to_string(),
                    });
                } else {
                    return Err(format!("slot mark {arg:?}"));
                }
                continue;
            }
            let (a, b) = match arg.split_once('-') {
                Some((a, b)) => (slot(a)?, slot(b)?),
                None => {
                    let s = slot(arg)?;
                    (s, s)
                }
            };
            if a > b {
                return Err(format!("slot range {arg:?}"));
            }
            slots.push((a, b));
        }
        Ok(NodeLine {
            id: f[0].to_string(),
            ip: ip.to_string(),
            port,
            cport,
            hostname,
            flags,
            primary,
            ping_sent,
            pong_recv,
            config_epoch,
            connected,
            slots,
            marks,
        })
    }
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    // Digits only (a leading '-' for signed fields): no '+', no spaces.
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse()
        .map_err(|_| format!("{what} {s:?} is out of range"))
}

fn slot(s: &str) -> Result<u16, String> {
    match number::<u16>(s, "slot") {
        Ok(n) if usize::from(n) < SLOTS => Ok(n),
        _ => Err(format!("slot {s:?} is not between 0 and 16383")),
    }
}

impl NodesConf {
    /// Reads a whole file. Blank lines are skipped, as Redis does; the `vars` line may
    /// be missing (both epochs are then 0) and names unknown variables, which are
    /// skipped (Redis logs them).
    pub fn parse(text: &[u8]) -> Result<NodesConf, Error> {
        let mut conf = NodesConf::default();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let err = |reason: String| Error { line, reason };
            let s = std::str::from_utf8(raw).map_err(|_| err("not UTF-8".to_string()))?;
            let fields: Vec<&str> = s.split_ascii_whitespace().collect();
            let Some(&first) = fields.first() else {
                continue; // a blank line
            };
            if first == "vars" {
                if fields.len() % 2 != 1 {
                    return Err(err("vars without a value".to_string()));
                }
                for pair in fields[1..].chunks_exact(2) {
                    match pair[0] {
                        "currentEpoch" => {
                            conf.current_epoch = number(pair[1], "currentEpoch").map_err(err)?
                        }
                        "lastVoteEpoch" => {
                            conf.last_vote_epoch = number(pair[1], "lastVoteEpoch").map_err(err)?
                        }
                        _ => {}
                    }
                }
                continue;
            }
            conf.nodes.push(NodeLine::parse(s).map_err(err)?);
        }
        Ok(conf)
    }

    /// The file as Redis writes it: the node lines in order, then the `vars` line.
    pub fn to_text(&self) -> String {
        let mut s = nodes_text(&self.nodes);
        s.push_str(&format!(
            "vars currentEpoch {} lastVoteEpoch {}\n",
            self.current_epoch, self.last_vote_epoch
        ));
        s
    }
}

/// Node lines each ended by a newline: CLUSTER NODES's reply, the file less its `vars`.
pub fn nodes_text(nodes: &[NodeLine]) -> String {
    let mut s = String::new();
    for n in nodes {
        s.push_str(&n.to_line());
        s.push('\n');
    }
    s
}
