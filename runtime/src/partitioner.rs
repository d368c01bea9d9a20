//! The key-to-partition rule every Gavel producer follows: murmur2 of the key,
//! made positive, modulo the partition count, exactly as the Java client's
//! default partitioner and librdkafka's `murmur2_random` do for a non-null key.
//! The aggregate checks each command against it, because a producer on another
//! partitioner (librdkafka's default `consistent_random` is CRC32) would put an
//! auction's commands on a partition whose state does not hold that auction.

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` (which must be positive).
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by the Java client's own `Utils.murmur2` and
    /// `toPositive(h) % 6` (kafka-clients 4.3.1).
    #[test]
    fn matches_the_java_client() {
        let cases: [(&str, i32, i32); 11] = [
            ("21", -973_932_308, 0),
            ("foobar", -790_332_482, 0),
            ("a-little-bit-long-string", -985_981_536, 2),
            ("lot-7", -1_100_161_228, 4),
            ("auction-00001", 1_267_768_096, 4),
            ("abc", 479_470_107, 3),
            ("", 275_646_681, 3),
            ("x", 2_121_525_046, 4),
            ("xy", -1_884_506_471, 3),
            ("xyz", -2_021_271_510, 2),
            ("wxyz5", 1_174_434_730, 4),
        ];
        for (key, hash, partition) in cases {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key:?}");
            assert_eq!(partition_for(key.as_bytes(), 6), partition, "{key:?}");
        }
    }
}
