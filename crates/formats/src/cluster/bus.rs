//! The cluster bus: the binary messages Redis 7.0 nodes exchange on their cluster port
//! (the client port plus 10000 unless configured otherwise), one TCP connection per
//! direction between every two nodes.
//!
//! Every message starts with the same 2256-byte header: the signature `RCmb`, the total
//! length of the message, the protocol version (1), the message type, and the sender's
//! view of itself (name, epochs, replication offset, the slots it serves, its primary,
//! its address, ports, flags, the cluster state it sees). Integers are big-endian
//! throughout (Redis converts each with `htons`/`htonl`/its 64-bit equivalent), except the
//! module id of MODULE messages, which modules hand over already encoded and which is
//! carried as bytes here.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | signature `RCmb` |
//! | 4 | 4 | `totlen`: the whole message, header included |
//! | 8 | 2 | protocol version, 1 |
//! | 10 | 2 | the sender's client port |
//! | 12 | 2 | message type |
//! | 14 | 2 | `count`: gossip entries (PING, PONG, MEET; 0 otherwise) |
//! | 16 | 8 | the sender's current epoch |
//! | 24 | 8 | its config epoch (its primary's, for a replica) |
//! | 32 | 8 | its replication offset |
//! | 40 | 40 | its node name (40 hex digits) |
//! | 80 | 2048 | the slots it (or its primary) serves, slot `s` at bit `s % 8` of byte `s / 8` |
//! | 2128 | 40 | its primary's name, or 40 zero bytes |
//! | 2168 | 46 | the IP it announces, NUL-padded (all zero: use the connection's address) |
//! | 2214 | 2 | how many ping extensions follow the gossip entries |
//! | 2216 | 30 | reserved, zero |
//! | 2246 | 2 | plaintext client port (when the client port is TLS) |
//! | 2248 | 2 | its cluster bus port |
//! | 2250 | 2 | its node flags (`NODE_*`) |
//! | 2252 | 1 | the cluster state it sees (`STATE_OK`, `STATE_FAIL`) |
//! | 2253 | 3 | message flags (`MFLAG0_*` in the first byte) |
//!
//! What follows depends on the type:
//!
//! * PING, PONG, MEET: `count` gossip entries of 104 bytes (a node's name, the times in
//!   seconds the sender last pinged it and last heard from it, its IP in 46 bytes, client
//!   port, bus port, flags, plaintext port, 2 reserved bytes), then, when `MFLAG0_EXT_DATA`
//!   is set, as many ping extensions as the header's extension count says: each a 4-byte
//!   length (itself included, a multiple of 8), a 2-byte type, 2 reserved bytes and its
//!   data, zero-padded to the length. Redis 7.0 knows one, the hostname
//!   (`cluster-announce-hostname`, NUL-terminated); later versions add others, carried
//!   here as bytes. `totlen` is exactly 2256 + 104 × `count` + the extensions' lengths.
//! * FAIL: the name of the node the sender found failing (`totlen` 2296).
//! * PUBLISH, PUBLISHSHARD: the channel's and the message's lengths (4 bytes each), then
//!   the channel and the message (`totlen` 2264 + both lengths).
//! * FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK, MFSTART: nothing (`totlen` 2256).
//! * UPDATE: a config epoch, a node name and its slots' bitmap (`totlen` 4352).
//! * MODULE: a module id (8 bytes), the payload's length (4), a type byte, the payload
//!   (`totlen` 2269 + the length).
//!
//! Types above 10 are carried as bytes (Redis accepts them as well-formed and ignores
//! them). A reader first uses [`frame`] on what it has read so far: it answers whether a
//! whole message is there, or that the stream is not a cluster bus (a bad signature, a
//! length no message can have), before anything is allocated for it; then [`decode`]
//! turns the message's bytes into a [`Message`] and [`encode`] does the reverse, giving
//! back the same bytes for every message Redis writes.

use std::fmt;

/// The first four bytes of every message ("Redis Cluster message bus").
pub const SIGNATURE: [u8; 4] = *b"RCmb";
/// The protocol version this codec reads and writes; Redis ignores messages of others.
pub const PROTOCOL_VERSION: u16 = 1;
/// Length of a node name: 40 hex digits.
pub const NAME_LEN: usize = 40;
/// Size of an IP address field, NUL-padded (room for any IPv6 text form).
pub const IP_LEN: usize = 46;
/// Number of hash slots.
pub const SLOTS: usize = 16384;
/// Size of a slot bitmap.
pub const SLOT_BITMAP_LEN: usize = SLOTS / 8;
/// Size of the header every message starts with, and the shortest possible message.
pub const HEADER_LEN: usize = 2256;
/// Size of one gossip entry of PING, PONG and MEET.
pub const GOSSIP_LEN: usize = 104;
/// Size of a ping extension's own header (length, type, reserved).
pub const EXT_HEADER_LEN: usize = 8;
/// A reasonable bound for [`frame`]'s `max_len`: Redis has none (a PUBLISH carries a
/// client's message whole), but a larger message is more likely a broken peer.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 << 20;

/// Message types.
pub const TYPE_PING: u16 = 0;
pub const TYPE_PONG: u16 = 1;
pub const TYPE_MEET: u16 = 2;
pub const TYPE_FAIL: u16 = 3;
pub const TYPE_PUBLISH: u16 = 4;
pub const TYPE_FAILOVER_AUTH_REQUEST: u16 = 5;
pub const TYPE_FAILOVER_AUTH_ACK: u16 = 6;
pub const TYPE_UPDATE: u16 = 7;
pub const TYPE_MFSTART: u16 = 8;
pub const TYPE_MODULE: u16 = 9;
pub const TYPE_PUBLISHSHARD: u16 = 10;
/// How many types Redis 7.0 has (its per-type statistics are sized by it).
pub const TYPE_COUNT: u16 = 11;

/// Node flags, in the header (the sender's), in gossip entries and, by name, in
/// `nodes.conf`.
pub const NODE_MASTER: u16 = 1;
pub const NODE_SLAVE: u16 = 2;
/// The sender has not heard from the node for longer than the node timeout.
pub const NODE_PFAIL: u16 = 4;
/// Enough primaries agree that the node is failing.
pub const NODE_FAIL: u16 = 8;
pub const NODE_MYSELF: u16 = 16;
/// Not yet a known node: the first PING / PONG exchange is still to come.
pub const NODE_HANDSHAKE: u16 = 32;
pub const NODE_NOADDR: u16 = 64;
/// A MEET is to be sent to this node rather than a PING.
pub const NODE_MEET: u16 = 128;
/// A primary that may receive a migrating replica.
pub const NODE_MIGRATE_TO: u16 = 256;
/// A replica that does not start failovers (`cluster-replica-no-failover`).
pub const NODE_NOFAILOVER: u16 = 512;

/// Message flags, in the first of the header's three message flag bytes.
/// The sender is a primary whose clients are paused for a manual failover (the offset
/// in the header is the one to catch up to).
pub const MFLAG0_PAUSED: u8 = 1;
/// A FAILOVER_AUTH_REQUEST to grant even though the primary is not failing (manual
/// failover).
pub const MFLAG0_FORCEACK: u8 = 2;
/// Ping extensions follow the gossip entries.
pub const MFLAG0_EXT_DATA: u8 = 4;

/// The cluster state byte of the header.
pub const STATE_OK: u8 = 0;
pub const STATE_FAIL: u8 = 1;

/// Ping extension types Redis 7.0 sends.
pub const EXT_HOSTNAME: u16 = 0;

/// A node name: 40 bytes, hex digits in Redis's own messages (all zero for "none").
pub type NodeName = [u8; NAME_LEN];
/// An IP address as text, NUL-padded.
pub type Ip = [u8; IP_LEN];

/// The text of a NUL-padded field (an IP, a hostname): the bytes before the first NUL.
pub fn until_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// An IP field holding `ip` (cut to 45 bytes, so that a NUL always ends it).
pub fn ip_field(ip: &[u8]) -> Ip {
    let mut f = [0; IP_LEN];
    let n = ip.len().min(IP_LEN - 1);
    f[..n].copy_from_slice(&ip[..n]);
    f
}

/// The set of slots a node serves, as the 2048-byte bitmap the bus carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotBitmap(pub [u8; SLOT_BITMAP_LEN]);

impl Default for SlotBitmap {
    fn default() -> Self {
        SlotBitmap([0; SLOT_BITMAP_LEN])
    }
}

impl SlotBitmap {
    /// Whether `slot` is in the set (slots past 16383 never are).
    pub fn contains(&self, slot: u16) -> bool {
        let s = usize::from(slot);
        s < SLOTS && self.0[s / 8] & (1 << (s % 8)) != 0
    }

    /// Adds or removes `slot` (slots past 16383 are ignored).
    pub fn set(&mut self, slot: u16, on: bool) {
        let s = usize::from(slot);
        if s < SLOTS {
            if on {
                self.0[s / 8] |= 1 << (s % 8);
            } else {
                self.0[s / 8] &= !(1 << (s % 8));
            }
        }
    }

    /// How many slots are in the set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The set as ascending runs of consecutive slots, `(first, last)` inclusive: the
    /// form `nodes.conf` and CLUSTER NODES write.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for s in 0..SLOTS as u16 {
            if !self.contains(s) {
                continue;
            }
            match out.last_mut() {
                Some((_, last)) if *last + 1 == s => *last = s,
                _ => out.push((s, s)),
            }
        }
        out
    }
}

impl fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.ranges().iter().map(|&(a, b)| a..=b))
            .finish()
    }
}

/// The header of every message, less what [`encode`] derives from the body (the
/// signature, `totlen`, the version, the type, the gossip and extension counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The sender's client port (its TLS port when it uses TLS).
    pub port: u16,
    pub current_epoch: u64,
    /// The sender's config epoch, or its primary's when it is a replica.
    pub config_epoch: u64,
    /// The sender's replication offset (processed offset for a replica).
    pub offset: u64,
    pub sender: NodeName,
    /// The slots the sender serves (its primary's, for a replica).
    pub myslots: SlotBitmap,
    /// The sender's primary, or all zero.
    pub slaveof: NodeName,
    /// The IP the sender announces (`cluster-announce-ip`), or all zero.
    pub myip: Ip,
    /// The sender's plaintext client port when `port` is its TLS port, else 0.
    pub pport: u16,
    pub cport: u16,
    /// The sender's node flags (`NODE_*`).
    pub flags: u16,
    /// The cluster state the sender sees (`STATE_OK` or `STATE_FAIL`).
    pub state: u8,
    /// The message flags (`MFLAG0_*` in the first byte). [`encode`] sets
    /// `MFLAG0_EXT_DATA` itself when a PING, PONG or MEET carries extensions.
    pub mflags: [u8; 3],
}

impl Default for Header {
    fn default() -> Self {
        Header {
            port: 0,
            current_epoch: 0,
            config_epoch: 0,
            offset: 0,
            sender: [0; NAME_LEN],
            myslots: SlotBitmap::default(),
            slaveof: [0; NAME_LEN],
            myip: [0; IP_LEN],
            pport: 0,
            cport: 0,
            flags: 0,
            state: STATE_OK,
            mflags: [0; 3],
        }
    }
}

/// One gossip entry of PING, PONG and MEET: what the sender knows of another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    pub name: NodeName,
    /// When the sender last pinged the node, in Unix seconds (0: no ping pending).
    pub ping_sent: u32,
    /// When the sender last heard a PONG from it, in Unix seconds.
    pub pong_received: u32,
    pub ip: Ip,
    pub port: u16,
    pub cport: u16,
    /// The node's flags as the sender sees them (`NODE_*`).
    pub flags: u16,
    pub pport: u16,
}

/// A ping extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extension {
    /// The sender's `cluster-announce-hostname` (without its terminating NUL).
    Hostname(Vec<u8>),
    /// A type Redis 7.0 does not send: its data as it came (a multiple of 8 bytes once
    /// encoded; shorter data is zero-padded).
    Other { ext_type: u16, data: Vec<u8> },
}

/// What PING, PONG and MEET carry after the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ping {
    /// At most 65535 are encoded.
    pub gossip: Vec<Gossip>,
    /// At most 65535 are encoded.
    pub extensions: Vec<Extension>,
}

/// The part of a message after the header.
// UPDATE's slot bitmap makes it the largest variant by far; a message already holds the
// header's bitmap inline, so boxing this one would save little.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Ping(Ping),
    Pong(Ping),
    /// A PING that also asks the receiver to add the sender to its nodes.
    Meet(Ping),
    /// The sender (with a majority of primaries) found `about` failing.
    Fail {
        about: NodeName,
    },
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    PublishShard {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    /// A replica asks the primaries for their vote (header: its epoch and slots).
    FailoverAuthRequest,
    /// A primary votes for the replica it sends this to.
    FailoverAuthAck,
    /// A replica asks its primary to pause clients for a manual failover.
    MfStart,
    /// The configuration of the node `name` is newer than the receiver's view of it.
    Update {
        config_epoch: u64,
        name: NodeName,
        slots: SlotBitmap,
    },
    /// A module's message: carried as it came.
    Module {
        module_id: [u8; 8],
        module_type: u8,
        payload: Vec<u8>,
    },
    /// A type Redis 7.0 does not know (11 and above): the bytes after the header.
    Unknown {
        msg_type: u16,
        data: Vec<u8>,
    },
}

/// A whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

impl Message {
    /// The message's type (`TYPE_*`).
    pub fn msg_type(&self) -> u16 {
        match &self.body {
            Body::Ping(_) => TYPE_PING,
            Body::Pong(_) => TYPE_PONG,
            Body::Meet(_) => TYPE_MEET,
            Body::Fail { .. } => TYPE_FAIL,
            Body::Publish { .. } => TYPE_PUBLISH,
            Body::PublishShard { .. } => TYPE_PUBLISHSHARD,
            Body::FailoverAuthRequest => TYPE_FAILOVER_AUTH_REQUEST,
            Body::FailoverAuthAck => TYPE_FAILOVER_AUTH_ACK,
            Body::MfStart => TYPE_MFSTART,
            Body::Update { .. } => TYPE_UPDATE,
            Body::Module { .. } => TYPE_MODULE,
            Body::Unknown { msg_type, .. } => *msg_type,
        }
    }
}

/// Why bytes are not a (supported) message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The first bytes are not `RCmb`: not a cluster bus peer.
    BadSignature,
    /// `totlen` is below what a message of its type needs (`msg_type` is `None` when the
    /// type is not known yet, or for any type: shorter than the header).
    TooShort { msg_type: Option<u16>, totlen: u32 },
    /// `totlen` is above the reader's limit.
    TooLong { totlen: u32, max: usize },
    /// [`decode`] was given a slice whose length is not the message's `totlen`.
    LengthMismatch { totlen: u32, len: usize },
    /// A protocol version other than 1 (Redis ignores such messages).
    Version(u16),
    /// The body does not add up to `totlen` (gossip count, extension lengths, publish
    /// or module lengths) or has the wrong size for its type.
    BadBody { msg_type: u16, reason: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadSignature => write!(f, "bad cluster bus message signature"),
            Error::TooShort {
                msg_type: Some(t),
                totlen,
            } => write!(
                f,
                "cluster bus message of type {t} too short: {totlen} bytes"
            ),
            Error::TooShort {
                msg_type: None,
                totlen,
            } => write!(f, "cluster bus message too short: {totlen} bytes"),
            Error::TooLong { totlen, max } => {
                write!(
                    f,
                    "cluster bus message too long: {totlen} bytes (limit {max})"
                )
            }
            Error::LengthMismatch { totlen, len } => {
                write!(
                    f,
                    "cluster bus message of {totlen} bytes given as {len} bytes"
                )
            }
            Error::Version(v) => write!(f, "unsupported cluster bus protocol version {v}"),
            Error::BadBody { msg_type, reason } => {
                write!(
                    f,
                    "invalid cluster bus message of type {msg_type}: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// The shortest `totlen` a message of type `t` can have (for the types with a fixed
/// size, that size).
pub fn min_len(t: u16) -> usize {
    match t {
        TYPE_FAIL => HEADER_LEN + NAME_LEN,
        TYPE_PUBLISH | TYPE_PUBLISHSHARD => HEADER_LEN + 8,
        TYPE_UPDATE => HEADER_LEN + 8 + NAME_LEN + SLOT_BITMAP_LEN,
        TYPE_MODULE => HEADER_LEN + 13,
        _ => HEADER_LEN,
    }
}

/// What [`frame`] found at the start of a read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of `len` bytes (its `totlen`) starts the buffer.
    Complete { len: usize },
    /// More bytes are needed: at least `needed` more (the exact number once the length
    /// field is in).
    Incomplete { needed: usize },
}

/// Looks at the start of a cluster bus read buffer: a whole message, or how much more
/// to read, or an error when the stream cannot be a cluster bus (a wrong signature, a
/// length shorter than the header or than the message's type needs, or above
/// `max_len`). Checks what it can as soon as the bytes are there (the signature from the
/// first byte, the length from the eighth, the type's minimum from the fourteenth), so
/// a reader never sizes a buffer by an impossible length. (Redis itself drops the
/// connection on a bad signature or a length under the header's, and drops just the
/// message when its type needs more; a peer doing the latter is broken either way.)
pub fn frame(buf: &[u8], max_len: usize) -> Result<Frame, Error> {
    let sig = buf.len().min(4);
    if buf[..sig] != SIGNATURE[..sig] {
        return Err(Error::BadSignature);
    }
    if buf.len() < 8 {
        return Ok(Frame::Incomplete {
            needed: 8 - buf.len(),
        });
    }
    let totlen = be32(buf, 4);
    let len = totlen as usize;
    if len < HEADER_LEN {
        return Err(Error::TooShort {
            msg_type: None,
            totlen,
        });
    }
    if len > max_len {
        return Err(Error::TooLong {
            totlen,
            max: max_len,
        });
    }
    if buf.len() >= 14 {
        let t = be16(buf, 12);
        if len < min_len(t) {
            return Err(Error::TooShort {
                msg_type: Some(t),
                totlen,
            });
        }
    }
    if buf.len() < len {
        return Ok(Frame::Incomplete {
            needed: len - buf.len(),
        });
    }
    Ok(Frame::Complete { len })
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

/// Decodes one whole message: `buf` must be exactly its `totlen` bytes (as [`frame`]
/// delimits them). Never panics; allocates at most in proportion to `buf`.
pub fn decode(buf: &[u8]) -> Result<Message, Error> {
    if buf.len() < 4 || buf[..4] != SIGNATURE {
        return Err(Error::BadSignature);
    }
    if buf.len() < HEADER_LEN {
        let totlen = if buf.len() >= 8 {
            be32(buf, 4)
        } else {
            buf.len() as u32
        };
        return Err(Error::TooShort {
            msg_type: None,
            totlen,
        });
    }
    let totlen = be32(buf, 4);
    if totlen as usize != buf.len() {
        return Err(Error::LengthMismatch {
            totlen,
            len: buf.len(),
        });
    }
    let version = be16(buf, 8);
    if version != PROTOCOL_VERSION {
        return Err(Error::Version(version));
    }
    let t = be16(buf, 12);
    if buf.len() < min_len(t) {
        return Err(Error::TooShort {
            msg_type: Some(t),
            totlen,
        });
    }
    let header = Header {
        port: be16(buf, 10),
        current_epoch: be64(buf, 16),
        config_epoch: be64(buf, 24),
        offset: be64(buf, 32),
        sender: array(buf, 40),
        myslots: SlotBitmap(array(buf, 80)),
        slaveof: array(buf, 2128),
        myip: array(buf, 2168),
        pport: be16(buf, 2246),
        cport: be16(buf, 2248),
        flags: be16(buf, 2250),
        state: buf[2252],
        mflags: array(buf, 2253),
    };
    let data = &buf[HEADER_LEN..];
    let bad = |reason| Error::BadBody {
        msg_type: t,
        reason,
    };
    let exact = |n: usize| {
        if data.len() == n {
            Ok(())
        } else {
            Err(bad("wrong length for the type"))
        }
    };
    let body = match t {
        TYPE_PING | TYPE_PONG | TYPE_MEET => {
            let ping = decode_ping(buf, data).map_err(bad)?;
            match t {
                TYPE_PING => Body::Ping(ping),
                TYPE_PONG => Body::Pong(ping),
                _ => Body::Meet(ping),
            }
        }
        TYPE_FAIL => {
            exact(NAME_LEN)?;
            Body::Fail {
                about: array(data, 0),
            }
        }
        TYPE_PUBLISH | TYPE_PUBLISHSHARD => {
            let clen = be32(data, 0) as usize;
            let mlen = be32(data, 4) as usize;
            let rest = &data[8..];
            if clen > rest.len() || mlen != rest.len() - clen {
                return Err(bad("channel and message lengths do not add up to totlen"));
            }
            let channel = rest[..clen].to_vec();
            let message = rest[clen..].to_vec();
            if t == TYPE_PUBLISH {
                Body::Publish { channel, message }
            } else {
                Body::PublishShard { channel, message }
            }
        }
        TYPE_FAILOVER_AUTH_REQUEST | TYPE_FAILOVER_AUTH_ACK | TYPE_MFSTART => {
            exact(0)?;
            match t {
                TYPE_FAILOVER_AUTH_REQUEST => Body::FailoverAuthRequest,
                TYPE_FAILOVER_AUTH_ACK => Body::FailoverAuthAck,
                _ => Body::MfStart,
            }
        }
        TYPE_UPDATE => {
            exact(8 + NAME_LEN + SLOT_BITMAP_LEN)?;
            Body::Update {
                config_epoch: be64(data, 0),
                name: array(data, 8),
                slots: SlotBitmap(array(data, 8 + NAME_LEN)),
            }
        }
        TYPE_MODULE => {
            let len = be32(data, 8) as usize;
            if data.len() - 13 != len {
                return Err(bad("payload length does not add up to totlen"));
            }
            Body::Module {
                module_id: array(data, 0),
                module_type: data[12],
                payload: data[13..].to_vec(),
            }
        }
        _ => Body::Unknown {
            msg_type: t,
            data: data.to_vec(),
        },
    };
    Ok(Message { header, body })
}

fn decode_ping(buf: &[u8], data: &[u8]) -> Result<Ping, &'static str> {
    let count = usize::from(be16(buf, 14));
    if count > data.len() / GOSSIP_LEN {
        return Err("more gossip entries than totlen holds");
    }
    let mut gossip = Vec::with_capacity(count);
    for g in data.chunks_exact(GOSSIP_LEN).take(count) {
        gossip.push(Gossip {
            name: array(g, 0),
            ping_sent: be32(g, 40),
            pong_received: be32(g, 44),
            ip: array(g, 48),
            port: be16(g, 94),
            cport: be16(g, 96),
            flags: be16(g, 98),
            pport: be16(g, 100),
        });
    }
    let mut rest = &data[count * GOSSIP_LEN..];
    let mut extensions = Vec::new();
    if buf[2253] & MFLAG0_EXT_DATA != 0 {
        let n = be16(buf, 2214);
        for _ in 0..n {
            if rest.len() < EXT_HEADER_LEN {
                return Err("extension past totlen");
            }
            let len = be32(rest, 0) as usize;
            if !len.is_multiple_of(8) || len < EXT_HEADER_LEN {
                return Err("extension length not a multiple of 8");
            }
            if len > rest.len() {
                return Err("extension past totlen");
            }
            let ext_type = be16(rest, 4);
            let payload = &rest[EXT_HEADER_LEN..len];
            extensions.push(match ext_type {
                EXT_HOSTNAME => Extension::Hostname(until_nul(payload).to_vec()),
                _ => Extension::Other {
                    ext_type,
                    data: payload.to_vec(),
                },
            });
            rest = &rest[len..];
        }
    }
    if !rest.is_empty() {
        return Err("bytes past the gossip entries and extensions");
    }
    Ok(Ping { gossip, extensions })
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Encodes a message as Redis 7.0 writes it: the header's derived fields filled in
/// (`totlen`, version 1, type, gossip and extension counts, `MFLAG0_EXT_DATA` when a
/// PING, PONG or MEET has extensions), reserved bytes zero. The whole message must stay
/// under 4 GiB (`totlen` is 32 bits); PING, PONG and MEET carry at most 65535 gossip
/// entries and 65535 extensions, the rest are left out.
pub fn encode(msg: &Message) -> Vec<u8> {
    let h = &msg.header;
    let t = msg.msg_type();
    let ping = match &msg.body {
        Body::Ping(p) | Body::Pong(p) | Body::Meet(p) => Some(p),
        _ => None,
    };
    let gossip = ping.map_or(&[][..], |p| &p.gossip[..p.gossip.len().min(65535)]);
    let exts = ping.map_or(&[][..], |p| &p.extensions[..p.extensions.len().min(65535)]);
    let mut mflags = h.mflags;
    if !exts.is_empty() {
        mflags[0] |= MFLAG0_EXT_DATA;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + gossip.len() * GOSSIP_LEN);
    out.extend_from_slice(&SIGNATURE);
    put32(&mut out, 0); // totlen, once known
    put16(&mut out, PROTOCOL_VERSION);
    put16(&mut out, h.port);
    put16(&mut out, t);
    put16(&mut out, gossip.len() as u16);
    put64(&mut out, h.current_epoch);
    put64(&mut out, h.config_epoch);
    put64(&mut out, h.offset);
    out.extend_from_slice(&h.sender);
    out.extend_from_slice(&h.myslots.0);
    out.extend_from_slice(&h.slaveof);
    out.extend_from_slice(&h.myip);
    put16(&mut out, exts.len() as u16);
    out.extend_from_slice(&[0; 30]);
    put16(&mut out, h.pport);
    put16(&mut out, h.cport);
    put16(&mut out, h.flags);
    out.push(h.state);
    out.extend_from_slice(&mflags);
    debug_assert_eq!(out.len(), HEADER_LEN);
    match &msg.body {
        Body::Ping(_) | Body::Pong(_) | Body::Meet(_) => {
            for g in gossip {
                out.extend_from_slice(&g.name);
                put32(&mut out, g.ping_sent);
                put32(&mut out, g.pong_received);
                out.extend_from_slice(&g.ip);
                put16(&mut out, g.port);
                put16(&mut out, g.cport);
                put16(&mut out, g.flags);
                put16(&mut out, g.pport);
                put16(&mut out, 0);
            }
            for e in exts {
                let (ext_type, data, nul) = match e {
                    Extension::Hostname(name) => (EXT_HOSTNAME, name, 1),
                    Extension::Other { ext_type, data } => (*ext_type, data, 0),
                };
                let len = (EXT_HEADER_LEN + data.len() + nul).div_ceil(8) * 8;
                put32(&mut out, len32(len));
                put16(&mut out, ext_type);
                put16(&mut out, 0);
                out.extend_from_slice(data);
                out.resize(out.len() + len - EXT_HEADER_LEN - data.len(), 0);
            }
        }
        Body::Fail { about } => out.extend_from_slice(about),
        Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
            put32(&mut out, len32(channel.len()));
            put32(&mut out, len32(message.len()));
            out.extend_from_slice(channel);
            out.extend_from_slice(message);
        }
        Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => {}
        Body::Update {
            config_epoch,
            name,
            slots,
        } => {
            put64(&mut out, *config_epoch);
            out.extend_from_slice(name);
            out.extend_from_slice(&slots.0);
        }
        Body::Module {
            module_id,
            module_type,
            payload,
        } => {
            out.extend_from_slice(module_id);
            put32(&mut out, len32(payload.len()));
            out.push(*module_type);
            out.extend_from_slice(payload);
        }
        Body::Unknown { data, .. } => out.extend_from_slice(data),
    }
    let totlen = len32(out.len());
    out[4..8].copy_from_slice(&totlen.to_be_bytes());
    out
}
