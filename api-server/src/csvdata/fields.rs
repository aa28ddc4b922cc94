//! Parsers for single cells. Each takes the trimmed cell text and returns a value or a [`Problem`].

use chrono::{NaiveDate, NaiveTime};

use super::error::Problem;

/// Largest goal count accepted: more is a data error, not a football match.
const MAX_GOALS: u32 = 30;
/// Highest decimal price accepted (football-data has long shots up to a few hundred).
const MAX_ODDS: f64 = 10_000.0;

/// Parses `dd/mm/yy` (years 50-99 are 19xx, 00-49 are 20xx), `dd/mm/yyyy` or ISO `yyyy-mm-dd`.
pub fn parse_date(text: &str) -> Result<NaiveDate, Problem> {
    let invalid = || Problem::InvalidDate(text.to_owned());
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date);
    }
    let mut parts = text.split('/');
    let (Some(d), Some(m), Some(y), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(d) && all_digits(m) && all_digits(y)) || d.len() > 2 || m.len() > 2 {
        return Err(invalid());
    }
    let day: u32 = d.parse().map_err(|_| invalid())?;
    let month: u32 = m.parse().map_err(|_| invalid())?;
    let year: i32 = match y.len() {
        2 => {
            let yy: i32 = y.parse().map_err(|_| invalid())?;
            if yy >= 50 { 1900 + yy } else { 2000 + yy }
        }
        4 => y.parse().map_err(|_| invalid())?,
        _ => return Err(invalid()),
    };
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(invalid)
}

/// Parses `HH:MM` or `HH:MM:SS`.
pub fn parse_time(text: &str) -> Result<NaiveTime, Problem> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| Problem::InvalidTime(text.to_owned()))
}

/// Parses a non-negative whole number, also in the `8.0` form pandas writes.
pub fn parse_count(text: &str) -> Result<u32, Problem> {
    let invalid = || Problem::InvalidCount(text.to_owned());
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    if whole.is_empty() || whole.len() > 9 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    if let Some(f) = fraction
        && (f.is_empty() || !f.bytes().all(|b| b == b'0'))
    {
        return Err(invalid());
    }
    whole.parse().map_err(|_| invalid())
}

/// A goal count: a whole number no larger than [`MAX_GOALS`].
pub fn parse_goals(text: &str) -> Result<u8, Problem> {
    let n = parse_count(text)?;
    if n > MAX_GOALS {
        return Err(Problem::ImplausibleGoals(n));
    }
    u8::try_from(n).map_err(|_| Problem::ImplausibleGoals(n))
}

/// A small statistic (shots, cards): a whole number that fits in `u16`.
pub fn parse_stat(text: &str) -> Result<u16, Problem> {
    let n = parse_count(text)?;
    u16::try_from(n).map_err(|_| Problem::InvalidCount(text.to_owned()))
}

/// A decimal price: finite, above 1 and at most [`MAX_ODDS`].
pub fn parse_odds(text: &str) -> Result<f64, Problem> {
    let invalid = || Problem::InvalidOdds(text.to_owned());
    // Rust's f64 parser accepts "inf" and "NaN"; only plain decimals are prices.
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid());
    }
    let value: f64 = text.parse().map_err(|_| invalid())?;
    if value.is_finite() && value > 1.0 && value <= MAX_ODDS {
        Ok(value)
    } else {
        Err(invalid())
    }
}

/// A full- or half-time result letter.
pub fn parse_outcome(text: &str) -> Result<super::MatchOutcome, Problem> {
    use super::MatchOutcome;
    match text {
        "H" => Ok(MatchOutcome::HomeWin),
        "D" => Ok(MatchOutcome::Draw),
        "A" => Ok(MatchOutcome::AwayWin),
        other => Err(Problem::InvalidResult(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn dates_in_every_format_of_the_data() {
        assert_eq!(parse_date("14/08/93").unwrap(), date(1993, 8, 14));
        assert_eq!(parse_date("07/08/15").unwrap(), date(2015, 8, 7));
        assert_eq!(parse_date("17/08/2002").unwrap(), date(2002, 8, 17));
        assert_eq!(parse_date("1/9/2019").unwrap(), date(2019, 9, 1));
        assert_eq!(parse_date("2019-08-09").unwrap(), date(2019, 8, 9));
    }

    #[test]
    fn invalid_dates_are_rejected_with_the_value() {
        for bad in [
            "",
            "31/02/2020",
            "12/13/20",
            "1/1/123",
            "aa/bb/cc",
            "1/1/20/1",
            "001/1/20",
        ] {
            assert_eq!(
                parse_date(bad),
                Err(Problem::InvalidDate(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn counts_accept_pandas_floats_but_not_fractions() {
        assert_eq!(parse_count("8"), Ok(8));
        assert_eq!(parse_count("8.0"), Ok(8));
        assert_eq!(parse_count("0.00"), Ok(0));
        for bad in ["8.5", "-1", "1e3", "8.", ".0", "", " 8", "99999999999"] {
            assert_eq!(
                parse_count(bad),
                Err(Problem::InvalidCount(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(parse_goals("31"), Err(Problem::ImplausibleGoals(31)));
        assert_eq!(parse_goals("9.0"), Ok(9));
    }

    #[test]
    fn odds_must_be_decimal_prices_above_one() {
        assert_eq!(parse_odds("1.727"), Ok(1.727));
        assert_eq!(parse_odds("15"), Ok(15.0));
        for bad in ["1", "0.5", "inf", "NaN", "-2", "2,5", "1e5"] {
            assert_eq!(
                parse_odds(bad),
                Err(Problem::InvalidOdds(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("19:30").unwrap(),
            NaiveTime::from_hms_opt(19, 30, 0).unwrap()
        );
        assert_eq!(
            parse_time("25:00"),
            Err(Problem::InvalidTime("25:00".into()))
        );
    }
}
