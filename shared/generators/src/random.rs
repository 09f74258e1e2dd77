//! Uniform choices from the operating system's random source.

use secret_sync_providers::ProviderError;

/// A number in `0..n` (`n > 0`), uniform: draws falling in the last partial range are drawn
/// again, so no value is more likely than another.
pub(crate) fn below(n: usize) -> Result<usize, ProviderError> {
    let n = u64::try_from(n).unwrap_or(u64::MAX).max(1);
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| ProviderError::Provider {
            operation: "Generate",
            message: format!("the system's random source failed: {e}"),
            source: None,
        })?;
        let draw = u64::from_le_bytes(bytes);
        if draw < zone {
            return Ok(usize::try_from(draw % n).unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_below_n_is_drawn_and_none_at_or_above() {
        let mut seen = [0u32; 5];
        for _ in 0..2000 {
            seen[below(5).expect("draw")] += 1;
        }
        // Each of 5 values expects 400 draws; 250 is far outside chance.
        assert!(seen.iter().all(|&count| count > 250), "{seen:?}");
        assert_eq!(below(1).expect("draw"), 0);
    }
}
