//! League codes and their display names.

/// A league's identity as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeagueMeta {
    pub code: String,
    pub name: String,
    pub country: String,
}

/// League codes are football-data's `Div` values: 1-8 characters of A-Z and 0-9.
pub fn validate_league_code(code: &str) -> Result<(), String> {
    let ok = (1..=8).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "league must be 1-8 characters of A-Z and 0-9 (e.g. E0), got {code:?}"
        ))
    }
}

/// The generated demo league that `serve` seeds, named like a real one.
pub const DEMO_LEAGUE_CODE: &str = "DEMO";
pub const DEMO_LEAGUE_NAME: &str = "Demo League";

/// Known leagues get their names; any other valid code is named after itself.
pub fn league_meta(code: &str) -> LeagueMeta {
    let (name, country) = match code {
        "E0" => ("Premier League", "England"),
        "E1" => ("Championship", "England"),
        "D1" => ("Bundesliga", "Germany"),
        "SP1" => ("La Liga", "Spain"),
        "I1" => ("Serie A", "Italy"),
        "F1" => ("Ligue 1", "France"),
        "N1" => ("Eredivisie", "Netherlands"),
        "P1" => ("Primeira Liga", "Portugal"),
        DEMO_LEAGUE_CODE => (DEMO_LEAGUE_NAME, "Nowhere"),
        other => (other, "unknown"),
    };
    LeagueMeta {
        code: code.to_string(),
        name: name.to_string(),
        country: country.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(validate_league_code("E0").is_ok());
        assert!(validate_league_code("SP1").is_ok());
        assert!(validate_league_code("e0").is_err());
        assert!(validate_league_code("").is_err());
        assert!(validate_league_code("E0; DROP").is_err());
        assert_eq!(league_meta("D1").name, "Bundesliga");
        assert_eq!(league_meta("X9").name, "X9");
    }
}
