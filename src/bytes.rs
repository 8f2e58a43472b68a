//! Byte-string equality for the routing hot path, and 16-byte blocks compared at once for
//! the scans of JSON text (message lines, bodies, the sinks' minifier).

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

/// Whether [`Block`] is SSE2 (16 bytes in a few instructions) rather than its byte-wise
/// fallback: scans take their block loops only then, and their word loops elsewhere.
pub(crate) const BLOCKS: bool = cfg!(all(target_arch = "x86_64", target_feature = "sse2"));

/// Sixteen bytes of text, compared with a byte all at once: each mask has bit `k` set for
/// byte `k` (only the low 16 bits). On x86_64 through SSE2 (`safe_arch`'s safe functions, as
/// our crate forbids `unsafe`); elsewhere byte by byte, so the scans that use it compile
/// and their tests run, while [`BLOCKS`] keeps them on their word loops.
#[derive(Clone, Copy)]
pub(crate) struct Block {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    v: safe_arch::m128i,
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    v: [u8; 16],
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
impl Block {
    #[inline(always)]
    pub(crate) fn load(bytes: &[u8; 16]) -> Block {
        Block {
            v: safe_arch::load_unaligned_m128i(bytes),
        }
    }

    #[inline(always)]
    fn eq_vec(self, c: u8) -> safe_arch::m128i {
        safe_arch::cmp_eq_mask_i8_m128i(self.v, safe_arch::set_splat_i8_m128i(c as i8))
    }

    /// The bytes at most 0x1f: those whose unsigned maximum with 0x1f is 0x1f.
    #[inline(always)]
    fn control_vec(self) -> safe_arch::m128i {
        let low = safe_arch::set_splat_i8_m128i(0x1f);
        safe_arch::cmp_eq_mask_i8_m128i(safe_arch::max_u8_m128i(self.v, low), low)
    }

    #[inline(always)]
    fn mask(v: safe_arch::m128i) -> u32 {
        safe_arch::move_mask_i8_m128i(v) as u32
    }

    /// The bytes equal to `c`.
    #[inline(always)]
    pub(crate) fn eq(self, c: u8) -> u32 {
        Block::mask(self.eq_vec(c))
    }

    /// The control bytes (below 0x20).
    #[inline(always)]
    pub(crate) fn control(self) -> u32 {
        Block::mask(self.control_vec())
    }

    /// The bytes equal to `a` or `b` (one mask move).
    #[inline(always)]
    pub(crate) fn eq_either(self, a: u8, b: u8) -> u32 {
        Block::mask(safe_arch::bitor_m128i(self.eq_vec(a), self.eq_vec(b)))
    }

    /// The bytes that stop a run of a JSON string's plain text: `"`, `\` and control bytes
    /// (one mask move).
    #[inline(always)]
    pub(crate) fn string_stops(self) -> u32 {
        let quote_or_backslash = safe_arch::bitor_m128i(self.eq_vec(b'"'), self.eq_vec(b'\\'));
        Block::mask(safe_arch::bitor_m128i(
            quote_or_backslash,
            self.control_vec(),
        ))
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
impl Block {
    #[inline(always)]
    pub(crate) fn load(bytes: &[u8; 16]) -> Block {
        Block { v: *bytes }
    }

    fn bits(self, f: impl Fn(u8) -> bool) -> u32 {
        (self.v.iter().enumerate()).fold(0, |m, (k, &c)| m | u32::from(f(c)) << k)
    }

    pub(crate) fn eq(self, c: u8) -> u32 {
        self.bits(|x| x == c)
    }

    pub(crate) fn control(self) -> u32 {
        self.bits(|x| x < 0x20)
    }

    pub(crate) fn eq_either(self, a: u8, b: u8) -> u32 {
        self.bits(|x| x == a || x == b)
    }

    pub(crate) fn string_stops(self) -> u32 {
        self.bits(|x| x == b'"' || x == b'\\' || x < 0x20)
    }
}

/// The mask of ASCII digits (the sinks' number check, `json_text::number`): kept apart from
/// the string scans' masks above.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
impl Block {
    /// The bytes `0`..=`9`: those that, less `0` (wrapping), are at most 9 unsigned.
    #[inline(always)]
    pub(crate) fn digits(self) -> u32 {
        let offset = safe_arch::sub_i8_m128i(self.v, safe_arch::set_splat_i8_m128i(b'0' as i8));
        let nine = safe_arch::set_splat_i8_m128i(9);
        Block::mask(safe_arch::cmp_eq_mask_i8_m128i(
            safe_arch::max_u8_m128i(offset, nine),
            nine,
        ))
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
impl Block {
    pub(crate) fn digits(self) -> u32 {
        self.bits(|x| x.is_ascii_digit())
    }
}

/// The bytewise unsigned minimum of two blocks (`json_scan`'s unescaping of 64 bytes at a
/// time): four blocks' minimum has a control byte exactly when one of them has, so one mask
/// move checks them all. Kept apart from the masks above.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
impl Block {
    #[inline(always)]
    pub(crate) fn min(self, other: Block) -> Block {
        Block {
            v: safe_arch::min_u8_m128i(self.v, other.v),
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
impl Block {
    pub(crate) fn min(self, other: Block) -> Block {
        let mut v = self.v;
        for (a, b) in v.iter_mut().zip(other.v) {
            *a = (*a).min(b);
        }
        Block { v }
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

    /// Every mask of a block is its bytes tested one by one: every byte value at every
    /// position, among bytes that match nothing.
    #[test]
    fn block_masks_are_the_bytes_tested_one_by_one() {
        for c in 0..=255u8 {
            for k in 0..16 {
                let mut bytes = [b'a'; 16];
                bytes[k] = c;
                let v = Block::load(&bytes);
                let bit = |hit: bool| u32::from(hit) << k;
                assert_eq!(v.eq(c), if c == b'a' { 0xffff } else { 1 << k });
                assert_eq!(v.eq(b'"'), bit(c == b'"'), "{c} at {k}");
                assert_eq!(v.control(), bit(c < 0x20), "{c} at {k}");
                assert_eq!(v.eq_either(b'\'', b'\\'), bit(c == b'\'' || c == b'\\'));
                let stop = c == b'"' || c == b'\\' || c < 0x20;
                assert_eq!(v.string_stops(), bit(stop), "{c} at {k}");
                assert_eq!(v.digits(), bit(c.is_ascii_digit()), "{c} at {k}");
                // The minimum with a block of every byte value around `c`'s.
                let mut others = [0u8; 16];
                for (j, o) in others.iter_mut().enumerate() {
                    *o = c.wrapping_add(j as u8).wrapping_sub(8);
                }
                let both = v.min(Block::load(&others));
                for j in 0..16 {
                    let want = bytes[j].min(others[j]);
                    assert_eq!(both.eq(want) >> j & 1, 1, "{c} at {k}: {j}");
                }
            }
        }
    }
}
