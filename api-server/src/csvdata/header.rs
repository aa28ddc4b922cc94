//! Header handling: normalising header names and locating the columns the parser reads.
//!
//! Columns are found by name because the set changes by era. Pandas-resaved files rename the
//! over/under headers (`B365>2.5` -> `B365_2_5`, `B365<2.5` -> `B365_2_5_1`); a few other
//! football-data leagues use `HG`/`AG`/`Res`/`Home`/`Away`; both are mapped back here.

use std::collections::HashMap;

use super::bookmaker::Bookmaker;
use super::error::Problem;
use super::types::OddsKind;

/// Canonical name of one header cell.
pub fn normalise_header(raw: &str) -> String {
    let name = raw.trim_start_matches('\u{feff}').trim();
    let renamed = if let Some(prefix) = name.strip_suffix("_2_5_1") {
        format!("{prefix}<2.5")
    } else if let Some(prefix) = name.strip_suffix("_2_5") {
        format!("{prefix}>2.5")
    } else {
        name.to_owned()
    };
    match renamed.as_str() {
        "HG" => "FTHG".to_owned(),
        "AG" => "FTAG".to_owned(),
        "Res" => "FTR".to_owned(),
        "Home" => "HomeTeam".to_owned(),
        "Away" => "AwayTeam".to_owned(),
        _ => renamed,
    }
}

/// A column the parser reads: its index in the row and its canonical name (for error messages).
#[derive(Debug, Clone)]
pub struct Column {
    pub index: usize,
    pub name: String,
}

/// Columns of one 1X2 quote (home, draw, away).
#[derive(Debug, Clone)]
pub struct OddsColumns1x2 {
    pub bookmaker: Bookmaker,
    pub kind: OddsKind,
    pub columns: [Column; 3],
}

/// Columns of one over/under 2.5 quote (over, under).
#[derive(Debug, Clone)]
pub struct OddsColumnsOverUnder {
    pub bookmaker: Bookmaker,
    pub kind: OddsKind,
    pub columns: [Column; 2],
}

/// Statistic columns, home then away, in [`MatchStats`](super::MatchStats) field order.
pub const STAT_COLUMNS: [&str; 12] = [
    "HS", "AS", "HST", "AST", "HF", "AF", "HC", "AC", "HY", "AY", "HR", "AR",
];

/// Where each field lives in this file's rows.
#[derive(Debug, Clone)]
pub struct Columns {
    pub division: Column,
    pub date: Column,
    pub home_team: Column,
    pub away_team: Column,
    pub time: Option<Column>,
    pub full_time_home: Option<Column>,
    pub full_time_away: Option<Column>,
    pub full_time_result: Option<Column>,
    pub half_time_home: Option<Column>,
    pub half_time_away: Option<Column>,
    pub half_time_result: Option<Column>,
    pub referee: Option<Column>,
    pub attendance: Option<Column>,
    pub stats: [Option<Column>; 12],
    pub odds_1x2: Vec<OddsColumns1x2>,
    pub over_under_25: Vec<OddsColumnsOverUnder>,
}

impl Columns {
    /// Locates the columns in a header row; lists every missing required column.
    pub fn locate<'a>(header: impl IntoIterator<Item = &'a str>) -> Result<Self, Vec<Problem>> {
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (index, raw) in header.into_iter().enumerate() {
            let name = normalise_header(raw);
            // Trailing empty header cells carry nothing; the first of duplicate names wins.
            if !name.is_empty() {
                by_name.entry(name).or_insert(index);
            }
        }
        let find = |name: &str| {
            by_name.get(name).map(|&index| Column {
                index,
                name: name.to_owned(),
            })
        };
        let mut missing = Vec::new();
        let mut required = |name: &'static str| {
            let column = find(name);
            if column.is_none() {
                missing.push(Problem::MissingColumn(name));
            }
            column
        };
        let (division, date, home_team, away_team) = (
            required("Div"),
            required("Date"),
            required("HomeTeam"),
            required("AwayTeam"),
        );
        let (Some(division), Some(date), Some(home_team), Some(away_team)) =
            (division, date, home_team, away_team)
        else {
            return Err(missing);
        };

        let mut odds_1x2 = Vec::new();
        let mut over_under_25 = Vec::new();
        for bookmaker in Bookmaker::ALL {
            for kind in [OddsKind::Opening, OddsKind::Closing] {
                let closing = if kind == OddsKind::Closing { "C" } else { "" };
                let p = bookmaker.prefix_1x2();
                if let (Some(h), Some(d), Some(a)) = (
                    find(&format!("{p}{closing}H")),
                    find(&format!("{p}{closing}D")),
                    find(&format!("{p}{closing}A")),
                ) {
                    odds_1x2.push(OddsColumns1x2 {
                        bookmaker,
                        kind,
                        columns: [h, d, a],
                    });
                }
                let p = bookmaker.prefix_over_under();
                if let (Some(over), Some(under)) = (
                    find(&format!("{p}{closing}>2.5")),
                    find(&format!("{p}{closing}<2.5")),
                ) {
                    over_under_25.push(OddsColumnsOverUnder {
                        bookmaker,
                        kind,
                        columns: [over, under],
                    });
                }
            }
        }

        Ok(Self {
            division,
            date,
            home_team,
            away_team,
            time: find("Time"),
            full_time_home: find("FTHG"),
            full_time_away: find("FTAG"),
            full_time_result: find("FTR"),
            half_time_home: find("HTHG"),
            half_time_away: find("HTAG"),
            half_time_result: find("HTR"),
            referee: find("Referee"),
            attendance: find("Attendance"),
            stats: STAT_COLUMNS.map(find),
            odds_1x2,
            over_under_25,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pandas_and_alias_headers_are_mapped_back() {
        assert_eq!(normalise_header("B365_2_5"), "B365>2.5");
        assert_eq!(normalise_header("B365_2_5_1"), "B365<2.5");
        assert_eq!(normalise_header("PC_2_5_1"), "PC<2.5");
        assert_eq!(normalise_header("\u{feff}Div"), "Div");
        assert_eq!(normalise_header(" Res "), "FTR");
        assert_eq!(normalise_header("B365>2.5"), "B365>2.5");
    }

    #[test]
    fn locates_odds_including_closing_and_pinnacle_over_under() {
        let header =
            "Div,Date,HomeTeam,AwayTeam,PSH,PSD,PSA,PSCH,PSCD,PSCA,P_2_5,P_2_5_1,B365H,B365D,,";
        let columns = Columns::locate(header.split(',')).unwrap();
        let found: Vec<_> = columns
            .odds_1x2
            .iter()
            .map(|o| (o.bookmaker, o.kind, o.columns[0].index))
            .collect();
        // B365 lacks its away column, so it is not a quote.
        assert_eq!(
            found,
            vec![
                (Bookmaker::Pinnacle, OddsKind::Opening, 4),
                (Bookmaker::Pinnacle, OddsKind::Closing, 7)
            ]
        );
        assert_eq!(columns.over_under_25.len(), 1);
        assert_eq!(columns.over_under_25[0].columns[1].index, 11);
        assert_eq!(columns.over_under_25[0].columns[1].name, "P<2.5");
    }

    #[test]
    fn reports_every_missing_required_column() {
        let problems = Columns::locate("Div,HomeTeam,FTHG".split(',')).unwrap_err();
        assert_eq!(
            problems,
            vec![
                Problem::MissingColumn("Date"),
                Problem::MissingColumn("AwayTeam")
            ]
        );
    }
}
