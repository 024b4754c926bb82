//! Keyspace notifications (`notify-keyspace-events`): events published on
//! `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>` when commands modify keys.
//!
//! Handlers report what they did with `Ctx::notify(class, event, key)`; when no class is
//! enabled (the default) that is one relaxed atomic load.

/// `K`: publish on `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME, ...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: expired events.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: evicted events.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: key-miss events.
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events.
pub const MODULE: u32 = 1 << 12;
/// `n`: new-key events.
pub const NEW: u32 = 1 << 13;
/// `A`: alias for `g$lshzxetd`.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses a (validated) `notify-keyspace-events` value into flags.
pub fn parse(v: &str) -> u32 {
    let mut f = 0;
    for c in v.chars() {
        f |= match c {
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
            _ => 0,
        };
    }
    f
}

/// Whether events of `class` would be published under `flags`.
#[inline]
pub fn wanted(flags: u32, class: u32) -> bool {
    flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0
}

/// Publishes one event if its class is enabled in `flags`.
pub fn publish(
    pubsub: &crate::pubsub::PubSub,
    flags: u32,
    class: u32,
    event: &str,
    key: &[u8],
    db: usize,
) {
    if !wanted(flags, class) {
        return;
    }
    if flags & KEYSPACE != 0 {
        let mut ch = format!("__keyspace@{db}__:").into_bytes();
        ch.extend_from_slice(key);
        pubsub.publish(false, &ch, event.as_bytes());
    }
    if flags & KEYEVENT != 0 {
        let ch = format!("__keyevent@{db}__:{event}");
        pubsub.publish(false, ch.as_bytes(), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        assert_eq!(parse(""), 0);
        assert_eq!(parse("KEA"), KEYSPACE | KEYEVENT | ALL);
        assert_eq!(parse("Kx"), KEYSPACE | EXPIRED);
        assert_eq!(parse("AKEmn") & (KEY_MISS | NEW), KEY_MISS | NEW);
    }
}
