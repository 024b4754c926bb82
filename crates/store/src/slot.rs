//! Redis Cluster's hash slots: a key belongs to slot `CRC16(key) mod 16384`, where only the
//! part between the first `{` and the next `}` is hashed when that part is not empty (a hash
//! tag, so that related keys can share a slot).
//!
//! In cluster mode the keyspace puts a key's slot in the top 14 bits of its hash (see
//! [`crate::keyspace::KeyHasher`]), so a slot's keys live in one shard, a shard's table keeps
//! a list per slot, and SCAN walks the keyspace slot by slot.

/// Number of hash slots.
pub const SLOTS: usize = 16384;

/// Bits of a key hash that hold the slot in cluster mode (the top ones).
pub const SLOT_BITS: u32 = 14;

/// CRC16 as Redis Cluster defines it: XMODEM (polynomial 0x1021, initial value 0, no
/// reflection, no final xor).
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[(((crc >> 8) as u8) ^ b) as usize]
    })
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The part of `key` that decides its slot: the hash tag when there is a non-empty one,
/// otherwise the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The hash slot of `key`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS as u16 - 1)
}

/// The slot a cluster-mode key hash carries.
#[inline]
pub fn slot_of_hash(h: u64) -> u16 {
    (h >> (64 - SLOT_BITS)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_specifications_check_value() {
        // The specification's reference: CRC16 of "123456789" is 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_of_known_keys() {
        // Values CLUSTER KEYSLOT gives on redis-server 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
    }

    #[test]
    fn hash_tags_follow_the_first_brace_pair_only_when_non_empty() {
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{a"), b"{a");
        assert_eq!(hash_tag(b"}a{b}"), b"b");
    }
}
