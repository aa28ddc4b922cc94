//! Bookmakers (and market aggregates) that football-data.co.uk quotes, with their column prefixes.

use serde::{Deserialize, Serialize};

/// A source of odds. Serialised as its stable [`code`](Bookmaker::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Bookmaker {
    #[serde(rename = "B365")]
    Bet365,
    #[serde(rename = "BW")]
    BetAndWin,
    #[serde(rename = "BS")]
    BlueSquare,
    #[serde(rename = "GB")]
    Gamebookers,
    #[serde(rename = "IW")]
    Interwetten,
    #[serde(rename = "LB")]
    Ladbrokes,
    #[serde(rename = "PS")]
    Pinnacle,
    #[serde(rename = "SB")]
    Sportingbet,
    #[serde(rename = "SJ")]
    StanJames,
    #[serde(rename = "SO")]
    SportingOdds,
    #[serde(rename = "SY")]
    Stanleybet,
    #[serde(rename = "VC")]
    VcBet,
    #[serde(rename = "WH")]
    WilliamHill,
    #[serde(rename = "1XB")]
    OneXBet,
    #[serde(rename = "BF")]
    Betfair,
    #[serde(rename = "BFE")]
    BetfairExchange,
    /// The best price across the bookmakers football-data tracks.
    #[serde(rename = "Max")]
    MarketMaximum,
    /// The mean price across the bookmakers football-data tracks.
    #[serde(rename = "Avg")]
    MarketAverage,
    /// Betbrain's maximum (files up to 2018-19).
    #[serde(rename = "BbMx")]
    BetbrainMaximum,
    /// Betbrain's average (files up to 2018-19).
    #[serde(rename = "BbAv")]
    BetbrainAverage,
}

impl Bookmaker {
    pub const ALL: [Bookmaker; 20] = [
        Self::Bet365,
        Self::BetAndWin,
        Self::BlueSquare,
        Self::Gamebookers,
        Self::Interwetten,
        Self::Ladbrokes,
        Self::Pinnacle,
        Self::Sportingbet,
        Self::StanJames,
        Self::SportingOdds,
        Self::Stanleybet,
        Self::VcBet,
        Self::WilliamHill,
        Self::OneXBet,
        Self::Betfair,
        Self::BetfairExchange,
        Self::MarketMaximum,
        Self::MarketAverage,
        Self::BetbrainMaximum,
        Self::BetbrainAverage,
    ];

    /// Stable short code (what to store); equal to the 1X2 column prefix.
    pub fn code(self) -> &'static str {
        match self {
            Self::Bet365 => "B365",
            Self::BetAndWin => "BW",
            Self::BlueSquare => "BS",
            Self::Gamebookers => "GB",
            Self::Interwetten => "IW",
            Self::Ladbrokes => "LB",
            Self::Pinnacle => "PS",
            Self::Sportingbet => "SB",
            Self::StanJames => "SJ",
            Self::SportingOdds => "SO",
            Self::Stanleybet => "SY",
            Self::VcBet => "VC",
            Self::WilliamHill => "WH",
            Self::OneXBet => "1XB",
            Self::Betfair => "BF",
            Self::BetfairExchange => "BFE",
            Self::MarketMaximum => "Max",
            Self::MarketAverage => "Avg",
            Self::BetbrainMaximum => "BbMx",
            Self::BetbrainAverage => "BbAv",
        }
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bet365 => "Bet365",
            Self::BetAndWin => "Bet&Win",
            Self::BlueSquare => "Blue Square",
            Self::Gamebookers => "Gamebookers",
            Self::Interwetten => "Interwetten",
            Self::Ladbrokes => "Ladbrokes",
            Self::Pinnacle => "Pinnacle",
            Self::Sportingbet => "Sportingbet",
            Self::StanJames => "Stan James",
            Self::SportingOdds => "Sporting Odds",
            Self::Stanleybet => "Stanleybet",
            Self::VcBet => "VC Bet",
            Self::WilliamHill => "William Hill",
            Self::OneXBet => "1XBet",
            Self::Betfair => "Betfair",
            Self::BetfairExchange => "Betfair Exchange",
            Self::MarketMaximum => "Market maximum",
            Self::MarketAverage => "Market average",
            Self::BetbrainMaximum => "Betbrain maximum",
            Self::BetbrainAverage => "Betbrain average",
        }
    }

    /// The bookmaker with this [`code`](Bookmaker::code).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.code() == code)
    }

    /// Column prefix of the 1X2 columns (`{prefix}H`, `{prefix}CH` for closing).
    pub(crate) fn prefix_1x2(self) -> &'static str {
        self.code()
    }

    /// Column prefix of the over/under 2.5 columns (`{prefix}>2.5`, `{prefix}C>2.5` for closing);
    /// Pinnacle uses `P` there instead of `PS`.
    pub(crate) fn prefix_over_under(self) -> &'static str {
        match self {
            Self::Pinnacle => "P",
            other => other.code(),
        }
    }
}

impl std::fmt::Display for Bookmaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for b in Bookmaker::ALL {
            assert_eq!(Bookmaker::from_code(b.code()), Some(b));
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.code()));
        }
        let mut codes: Vec<_> = Bookmaker::ALL.iter().map(|b| b.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Bookmaker::ALL.len());
    }

    #[test]
    fn pinnacle_uses_p_for_over_under() {
        assert_eq!(Bookmaker::Pinnacle.prefix_over_under(), "P");
        assert_eq!(Bookmaker::Bet365.prefix_over_under(), "B365");
    }
}
