//! Byte-string equality for the routing hot path.

/// Whether two byte strings are equal. Routing compares short strings (property names and
/// values, constants, body strings), for which the slice equality's call into libc's
/// `memcmp` cost more than the comparison itself: up to 32 bytes are compared here in
/// place, as the two (possibly overlapping) words or 16-byte blocks at the two ends.
#[inline(always)]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    fn ends<const W: usize>(a: &[u8], b: &[u8]) -> bool {
        a.first_chunk::<W>() == b.first_chunk::<W>() && a.last_chunk::<W>() == b.last_chunk::<W>()
    }
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0 => true,
        1 => a[0] == b[0],
        2..=3 => ends::<2>(a, b),
        4..=7 => ends::<4>(a, b),
        8..=16 => ends::<8>(a, b),
        17..=32 => ends::<16>(a, b),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal to std's slice equality for every length around the block sizes, with a
    /// difference (or none) at every position.
    #[test]
    fn agrees_with_slice_equality() {
        let base: Vec<u8> = (0..70u8).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(bytes_eq(a, a));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!bytes_eq(a, &b), "{len} {at}");
            }
            assert!(!bytes_eq(a, &base[..len + 1]));
        }
    }
}
