//! A small deterministic generator (SplitMix64) for rate-based faults and generated ids, so a run
//! with the same seed and the same request order makes the same decisions.

/// SplitMix64: tiny, fast, good enough statistical quality for fault injection; not cryptographic.
#[derive(Clone, Debug)]
pub(crate) struct Prng {
    state: u64,
}

impl Prng {
    /// A generator starting from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Prng { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A uniform float in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random (version 4) UUID drawn from this generator.
    pub(crate) fn uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_floats_in_unit_interval() {
        let mut first = Prng::new(42);
        let mut second = Prng::new(42);
        for _ in 0..1000 {
            let value = first.next_f64();
            assert!((0.0..1.0).contains(&value));
            assert_eq!(value.to_bits(), second.next_f64().to_bits());
        }
        assert_ne!(Prng::new(1).uuid(), Prng::new(2).uuid());
    }
}
