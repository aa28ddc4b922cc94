//! JSON shapes of football data in responses, built from database rows (pure).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::data::{MatchRow, OddsRow, OverUnderRow, ResultRow};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TeamRef {
    pub id: i64,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Score {
    pub home: i32,
    pub away: i32,
}

#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct MatchStatsView {
    pub home_shots: Option<i32>,
    pub away_shots: Option<i32>,
    pub home_shots_on_target: Option<i32>,
    pub away_shots_on_target: Option<i32>,
    pub home_fouls: Option<i32>,
    pub away_fouls: Option<i32>,
    pub home_corners: Option<i32>,
    pub away_corners: Option<i32>,
    pub home_yellow_cards: Option<i32>,
    pub away_yellow_cards: Option<i32>,
    pub home_red_cards: Option<i32>,
    pub away_red_cards: Option<i32>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MatchView {
    pub id: i64,
    /// League code, e.g. `E0`.
    pub league: String,
    /// e.g. `2019-2020`.
    pub season: String,
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// RFC 3339 UTC kick-off, or null when the source has no time.
    pub kickoff: Option<String>,
    /// `scheduled`, `finished` or `postponed`.
    pub status: String,
    pub home_team: TeamRef,
    pub away_team: TeamRef,
    pub score: Option<Score>,
    pub half_time_score: Option<Score>,
    pub referee: Option<String>,
    pub attendance: Option<i32>,
    /// Present when the source had any statistic.
    pub stats: Option<MatchStatsView>,
}

pub fn utc(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or_default()
}

pub fn rfc3339(ts: i64) -> String {
    utc(ts).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn score(home: Option<i32>, away: Option<i32>) -> Option<Score> {
    Some(Score {
        home: home?,
        away: away?,
    })
}

impl MatchView {
    pub fn from_row(m: &MatchRow) -> Self {
        let stats = MatchStatsView {
            home_shots: m.home_shots,
            away_shots: m.away_shots,
            home_shots_on_target: m.home_shots_on_target,
            away_shots_on_target: m.away_shots_on_target,
            home_fouls: m.home_fouls,
            away_fouls: m.away_fouls,
            home_corners: m.home_corners,
            away_corners: m.away_corners,
            home_yellow_cards: m.home_yellow_cards,
            away_yellow_cards: m.away_yellow_cards,
            home_red_cards: m.home_red_cards,
            away_red_cards: m.away_red_cards,
        };
        let has_stats = [
            m.home_shots,
            m.away_shots,
            m.home_fouls,
            m.home_corners,
            m.home_yellow_cards,
            m.home_red_cards,
        ]
        .iter()
        .any(Option::is_some);
        Self {
            id: m.id,
            league: m.league.clone(),
            season: m.season.clone(),
            date: utc(m.kickoff_at).format("%Y-%m-%d").to_string(),
            kickoff: m.kickoff_time_known.then(|| rfc3339(m.kickoff_at)),
            status: m.status.clone(),
            home_team: TeamRef {
                id: m.home_team_id,
                name: m.home_team.clone(),
            },
            away_team: TeamRef {
                id: m.away_team_id,
                name: m.away_team.clone(),
            },
            score: score(m.home_goals, m.away_goals),
            half_time_score: score(m.half_time_home_goals, m.half_time_away_goals),
            referee: m.referee.clone(),
            attendance: m.attendance,
            stats: has_stats.then_some(stats),
        }
    }
}

/// Outcome probabilities implied by decimal odds with the bookmaker's margin removed
/// proportionally.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct Implied {
    pub home: f64,
    pub draw: f64,
    pub away: f64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OddsView {
    /// Bookmaker code, e.g. `B365`, `PS`, `Avg`.
    pub bookmaker: String,
    pub bookmaker_name: String,
    /// `opening` (football-data's early prices) or `closing`.
    pub kind: String,
    pub home: f64,
    pub draw: f64,
    pub away: f64,
    /// The bookmaker's margin: sum of inverse odds minus one.
    pub margin: f64,
    pub implied: Implied,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OverUnderView {
    pub bookmaker: String,
    pub bookmaker_name: String,
    pub kind: String,
    pub over: f64,
    pub under: f64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MatchOddsView {
    pub match_id: i64,
    pub one_x_two: Vec<OddsView>,
    pub over_under_2_5: Vec<OverUnderView>,
}

fn bookmaker_name(code: &str) -> String {
    crate::csvdata::Bookmaker::from_code(code)
        .map_or_else(|| code.to_string(), |b| b.name().to_string())
}

impl OddsView {
    pub fn from_row(o: &OddsRow) -> Self {
        let inverse = [1.0 / o.home, 1.0 / o.draw, 1.0 / o.away];
        let total: f64 = inverse.iter().sum();
        Self {
            bookmaker: o.bookmaker.clone(),
            bookmaker_name: bookmaker_name(&o.bookmaker),
            kind: o.kind.clone(),
            home: o.home,
            draw: o.draw,
            away: o.away,
            margin: total - 1.0,
            implied: Implied {
                home: inverse[0] / total,
                draw: inverse[1] / total,
                away: inverse[2] / total,
            },
        }
    }
}

impl OverUnderView {
    pub fn from_row(o: &OverUnderRow) -> Self {
        Self {
            bookmaker: o.bookmaker.clone(),
            bookmaker_name: bookmaker_name(&o.bookmaker),
            kind: o.kind.clone(),
            over: o.over_price,
            under: o.under_price,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Record {
    pub played: u32,
    pub wins: u32,
    pub draws: u32,
    pub losses: u32,
    pub goals_for: u32,
    pub goals_against: u32,
    pub goal_difference: i64,
    /// 3 for a win, 1 for a draw.
    pub points: u32,
}

impl Record {
    fn add(&mut self, scored: i32, conceded: i32) {
        self.played += 1;
        self.goals_for += scored.max(0) as u32;
        self.goals_against += conceded.max(0) as u32;
        self.goal_difference += i64::from(scored) - i64::from(conceded);
        match scored.cmp(&conceded) {
            std::cmp::Ordering::Greater => {
                self.wins += 1;
                self.points += 3;
            }
            std::cmp::Ordering::Equal => {
                self.draws += 1;
                self.points += 1;
            }
            std::cmp::Ordering::Less => self.losses += 1,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TeamStatsView {
    pub team: TeamRef,
    pub league: String,
    /// The season the figures cover, or null for all seasons in the database.
    pub season: Option<String>,
    pub overall: Record,
    pub home: Record,
    pub away: Record,
    /// Results of the last five matches, oldest first: W, D or L.
    pub form: String,
}

/// Aggregates a team's finished matches (oldest first) into its record (pure).
pub fn team_record(team_id: i64, results: &[ResultRow]) -> (Record, Record, Record, String) {
    let (mut overall, mut home, mut away) =
        (Record::default(), Record::default(), Record::default());
    let mut letters = Vec::with_capacity(results.len());
    for r in results {
        let at_home = r.home_team_id == team_id;
        let (scored, conceded) = if at_home {
            (r.home_goals, r.away_goals)
        } else {
            (r.away_goals, r.home_goals)
        };
        overall.add(scored, conceded);
        if at_home {
            home.add(scored, conceded);
        } else {
            away.add(scored, conceded);
        }
        letters.push(match scored.cmp(&conceded) {
            std::cmp::Ordering::Greater => 'W',
            std::cmp::Ordering::Equal => 'D',
            std::cmp::Ordering::Less => 'L',
        });
    }
    let form: String = letters[letters.len().saturating_sub(5)..].iter().collect();
    (overall, home, away, form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(h: i64, a: i64, hg: i32, ag: i32) -> ResultRow {
        ResultRow {
            home_team_id: h,
            away_team_id: a,
            home_goals: hg,
            away_goals: ag,
            kickoff_at: 0,
        }
    }

    #[test]
    fn records_split_home_and_away() {
        let results = [r(1, 2, 2, 0), r(3, 1, 1, 1), r(1, 4, 0, 3), r(5, 1, 0, 1)];
        let (overall, home, away, form) = team_record(1, &results);
        assert_eq!(overall.played, 4);
        assert_eq!((overall.wins, overall.draws, overall.losses), (2, 1, 1));
        assert_eq!(overall.points, 7);
        assert_eq!((overall.goals_for, overall.goals_against), (4, 4));
        assert_eq!(home.played, 2);
        assert_eq!(away.points, 4);
        assert_eq!(form, "WDLW");
    }

    #[test]
    fn implied_probabilities_remove_the_margin() {
        let v = OddsView::from_row(&OddsRow {
            bookmaker: "B365".into(),
            kind: "closing".into(),
            home: 2.0,
            draw: 3.5,
            away: 4.0,
        });
        let sum = v.implied.home + v.implied.draw + v.implied.away;
        assert!((sum - 1.0).abs() < 1e-12);
        assert!(v.margin > 0.0);
        assert_eq!(
            v.bookmaker_name,
            crate::csvdata::Bookmaker::from_code("B365").unwrap().name()
        );
    }
}
