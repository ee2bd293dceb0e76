//! Deadlines scaled for slow machines. Every wait in the harness goes
//! through [`scaled`], so one environment variable stretches them all
//! (TCG on a loaded CI runner can be several times slower than here).

use std::sync::OnceLock;
use std::time::Duration;

/// A positive float multiplying every deadline (default 1.0).
pub const TIMEOUT_SCALE_ENV: &str = "HUSK_TIMEOUT_SCALE";

/// The factor from [`TIMEOUT_SCALE_ENV`], read once.
///
/// # Panics
/// If the variable is set but is not a positive number: silently using
/// 1.0 would turn a configuration mistake into confusing timeouts.
pub fn timeout_scale() -> f64 {
    static SCALE: OnceLock<f64> = OnceLock::new();
    *SCALE.get_or_init(|| {
        let value = std::env::var(TIMEOUT_SCALE_ENV).ok();
        parse_scale(value.as_deref()).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Parses the scale; `None` (unset) means 1.0.
pub fn parse_scale(value: Option<&str>) -> Result<f64, String> {
    let Some(value) = value else { return Ok(1.0) };
    match value.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!(
            "{TIMEOUT_SCALE_ENV}={value:?} is not a positive number"
        )),
    }
}

/// `d` multiplied by `factor`, saturating instead of overflowing.
pub fn scale_by(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// `d` multiplied by the configured [`timeout_scale`].
pub fn scaled(d: Duration) -> Duration {
    scale_by(d, timeout_scale())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_means_unscaled() {
        assert_eq!(parse_scale(None), Ok(1.0));
    }

    #[test]
    fn fractional_and_large_factors_parse() {
        assert_eq!(parse_scale(Some("2.5")), Ok(2.5));
        assert_eq!(parse_scale(Some(" 0.5 ")), Ok(0.5));
    }

    #[test]
    fn nonsense_is_rejected_not_ignored() {
        for bad in ["", "abc", "0", "-1", "inf", "NaN"] {
            assert!(parse_scale(Some(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn scaling_multiplies_and_saturates() {
        assert_eq!(
            scale_by(Duration::from_secs(10), 2.5),
            Duration::from_secs(25)
        );
        assert_eq!(
            scale_by(Duration::from_millis(100), 0.5),
            Duration::from_millis(50)
        );
        assert_eq!(scale_by(Duration::MAX, 2.0), Duration::MAX);
    }
}
