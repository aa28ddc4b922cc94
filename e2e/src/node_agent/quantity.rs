//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`) as exact integers, for the downward
//! API's `resourceFieldRef` (`ceil(value / divisor)` as kubelet computes it).

/// Nano-units per unit: quantities are held as an exact count of 10⁻⁹.
const NANO: i128 = 1_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

/// A quantity as an exact number of nano-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let invalid = || QuantityError(text.to_string());
        let text_trimmed = text.trim();
        let (negative, unsigned) = match text_trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (
                false,
                text_trimmed.strip_prefix('+').unwrap_or(text_trimmed),
            ),
        };
        let number_end = unsigned
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(unsigned.len());
        let (number, suffix) = unsigned.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if fraction.len() > 9 {
            return Err(invalid());
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| invalid())?
        };
        let fraction_nanos: i128 = if fraction.is_empty() {
            0
        } else {
            let padded = format!("{fraction:0<9}");
            padded.parse().map_err(|_| invalid())?
        };
        let base = whole
            .checked_mul(NANO)
            .and_then(|n| n.checked_add(fraction_nanos))
            .ok_or_else(invalid)?;
        let scaled = apply_suffix(base, suffix).ok_or_else(invalid)?;
        Ok(Self {
            nanos: if negative { -scaled } else { scaled },
        })
    }

    pub fn from_units(units: i64) -> Self {
        Self {
            nanos: i128::from(units) * NANO,
        }
    }

    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// `ceil(self / divisor)`, as kubelet renders resource values; `None` for a zero divisor.
    pub fn ceil_div(self, divisor: Self) -> Option<i128> {
        if divisor.nanos == 0 {
            return None;
        }
        let quotient = self.nanos / divisor.nanos;
        let remainder = self.nanos % divisor.nanos;
        let rounds_up = remainder != 0 && ((remainder > 0) == (divisor.nanos > 0));
        Some(if rounds_up { quotient + 1 } else { quotient })
    }
}

fn apply_suffix(nanos: i128, suffix: &str) -> Option<i128> {
    let pow = |base: i128, exp: u32| base.checked_pow(exp);
    match suffix {
        "" => Some(nanos),
        "n" => Some(nanos / NANO),
        "u" => Some(nanos / 1_000_000),
        "m" => Some(nanos / 1_000),
        "k" => nanos.checked_mul(1_000),
        "M" => nanos.checked_mul(pow(10, 6)?),
        "G" => nanos.checked_mul(pow(10, 9)?),
        "T" => nanos.checked_mul(pow(10, 12)?),
        "P" => nanos.checked_mul(pow(10, 15)?),
        "E" => nanos.checked_mul(pow(10, 18)?),
        "Ki" => nanos.checked_mul(1 << 10),
        "Mi" => nanos.checked_mul(1 << 20),
        "Gi" => nanos.checked_mul(1 << 30),
        "Ti" => nanos.checked_mul(1 << 40),
        "Pi" => nanos.checked_mul(1 << 50),
        "Ei" => nanos.checked_mul(1 << 60),
        exponent => {
            let digits = exponent
                .strip_prefix('e')
                .or_else(|| exponent.strip_prefix('E'))?;
            let exp: i32 = digits.parse().ok()?;
            if exp >= 0 {
                nanos.checked_mul(pow(10, u32::try_from(exp).ok()?)?)
            } else {
                Some(nanos / pow(10, exp.unsigned_abs())?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn parses_suffixes_exactly() {
        assert_eq!(q("1"), Quantity::from_units(1));
        assert_eq!(q("1000m"), Quantity::from_units(1));
        assert_eq!(q("1k"), Quantity::from_units(1000));
        assert_eq!(q("1Ki"), Quantity::from_units(1024));
        assert_eq!(q("1.5Gi"), Quantity::from_units(1_610_612_736));
        assert_eq!(q("2e3"), Quantity::from_units(2000));
        assert_eq!(q("0.1"), q("100m"));
        assert_eq!(q("-1"), Quantity::from_units(-1));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "m", "1.2.3", "1Xi", "abc", ".", "1.0000000001"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn divides_rounding_up_like_kubelet() {
        assert_eq!(q("250m").ceil_div(q("1")), Some(1));
        assert_eq!(q("250m").ceil_div(q("1m")), Some(250));
        assert_eq!(q("2").ceil_div(q("1")), Some(2));
        assert_eq!(q("128Mi").ceil_div(q("1Mi")), Some(128));
        assert_eq!(q("100M").ceil_div(q("1Mi")), Some(96));
        assert_eq!(q("1").ceil_div(q("0")), None);
    }
}
