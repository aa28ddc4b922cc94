//! The zero-setup demo league: 20 generated clubs, a played first half of a double round robin
//! (results drawn from a Poisson model with fixed team strengths) and the second half as
//! upcoming fixtures. Deterministic: the same clubs, fixtures and scores every time; only the
//! calendar is anchored to the week the database was seeded, so the fixtures are upcoming.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Utc};

use crate::db::Db;
use crate::db::auth::AuditEntry;
use crate::import::write::ImportSummary;
use crate::import::{ImportPlan, MatchSpec, TeamSpec, league_meta, season_of};

pub use crate::import::{DEMO_LEAGUE_CODE as LEAGUE_CODE, DEMO_LEAGUE_NAME as LEAGUE_NAME};

const CLUBS: [&str; 20] = [
    "Ashford Rovers",
    "Bramley Town",
    "Castleford United",
    "Dunmore Athletic",
    "Eastwick City",
    "Fairhaven Albion",
    "Glenbrook Wanderers",
    "Harrowgate FC",
    "Ironbridge Forest",
    "Juniper Vale",
    "Kingsmoor Rangers",
    "Larkspur County",
    "Marlow Harriers",
    "Northcliff Borough",
    "Oakhurst Villa",
    "Pinecrest Athletic",
    "Queensbury Celtic",
    "Redwater Town",
    "Stonefield United",
    "Thornbury Swifts",
];

/// A tiny deterministic generator (SplitMix64): no dependency, same sequence everywhere.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let v = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        v
    }

    /// Knuth's Poisson sampler (fine for football-sized rates).
    fn poisson(&mut self, rate: f64) -> i32 {
        let limit = (-rate).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= limit || k >= 15 {
                return k;
            }
            k += 1;
        }
    }
}

/// Round-robin pairings (circle method): `rounds[r]` lists (home, away) indices.
fn round_robin(n: usize) -> Vec<Vec<(usize, usize)>> {
    let mut ring: Vec<usize> = (0..n).collect();
    let mut first_half = Vec::with_capacity(n - 1);
    for round in 0..n - 1 {
        let mut games = Vec::with_capacity(n / 2);
        for i in 0..n / 2 {
            let (a, b) = (ring[i], ring[n - 1 - i]);
            // Alternate home advantage so every club hosts about half its games.
            games.push(if (round + i) % 2 == 0 { (a, b) } else { (b, a) });
        }
        first_half.push(games);
        ring[1..].rotate_right(1);
    }
    let second_half: Vec<Vec<(usize, usize)>> = first_half
        .iter()
        .map(|games| games.iter().map(|&(h, a)| (a, h)).collect())
        .collect();
    first_half.into_iter().chain(second_half).collect()
}

/// The demo league as an import plan, with rounds on Saturdays at 15:00 UTC: the first half
/// played before `today`, the second half from the next Saturday on.
pub fn plan(today: NaiveDate) -> ImportPlan {
    let mut rng = SplitMix(0x00F0_07BA_11DE_E5ED);
    // Strengths: attack and defence in [-0.35, 0.35], fixed by the seed.
    let strengths: Vec<(f64, f64)> = (0..CLUBS.len())
        .map(|_| ((rng.unit() - 0.5) * 0.7, (rng.unit() - 0.5) * 0.7))
        .collect();
    let rounds = round_robin(CLUBS.len());
    let played = rounds.len() / 2;
    let days_to_saturday = (i64::from(Weekday::Sat.num_days_from_monday())
        - i64::from(today.weekday().num_days_from_monday()))
    .rem_euclid(7);
    let next_saturday = today
        + Duration::days(if days_to_saturday == 0 {
            7
        } else {
            days_to_saturday
        });
    let first_round = next_saturday - Duration::weeks(i64::try_from(played).unwrap_or(0));
    let kickoff_time = NaiveTime::from_hms_opt(15, 0, 0).unwrap_or(NaiveTime::MIN);
    let key = |i: usize| crate::csvdata::normalise_team_name(CLUBS[i]);
    let mut matches = Vec::new();
    for (r, games) in rounds.iter().enumerate() {
        let date = first_round + Duration::weeks(i64::try_from(r).unwrap_or(0));
        let kickoff = date.and_time(kickoff_time).and_utc().timestamp();
        for &(h, a) in games {
            let (home_goals, away_goals) = if r < played {
                let home_rate = (0.25 + 0.3 + strengths[h].0 - strengths[a].1).exp();
                let away_rate = (0.25 + strengths[a].0 - strengths[h].1).exp();
                (Some(rng.poisson(home_rate)), Some(rng.poisson(away_rate)))
            } else {
                (None, None)
            };
            matches.push(MatchSpec {
                line: 0,
                home_key: key(h),
                away_key: key(a),
                kickoff_at: kickoff,
                kickoff_time_known: true,
                status: if home_goals.is_some() {
                    "finished"
                } else {
                    "scheduled"
                },
                home_goals,
                away_goals,
                half_time_home_goals: None,
                half_time_away_goals: None,
                referee: None,
                attendance: None,
                stats: [None; 12],
                odds: Vec::new(),
                over_under: Vec::new(),
            });
        }
    }
    ImportPlan {
        league: league_meta(LEAGUE_CODE),
        season: season_of(first_round),
        teams: (0..CLUBS.len())
            .map(|i| TeamSpec {
                key: key(i),
                name: CLUBS[i].to_string(),
            })
            .collect(),
        matches,
    }
}

use chrono::Weekday;

/// Seeds the demo league (one transaction, like an import).
pub async fn seed(db: &Db) -> Result<ImportSummary, crate::db::DbError> {
    let plan = plan(Utc::now().date_naive());
    let entry = AuditEntry {
        actor_id: None,
        actor: "system".into(),
        action: "data.seed_demo",
        target: format!("{LEAGUE_CODE}/{}", plan.season.name),
        details: serde_json::json!({"matches": plan.matches.len()}),
    };
    crate::import::write::write(db, &plan, "generated demo league", "", &entry).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_double_round_robin_half_played() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let p = plan(today);
        assert_eq!(p.teams.len(), 20);
        assert_eq!(p.matches.len(), 380);
        let pairs: HashSet<(&str, &str)> = p
            .matches
            .iter()
            .map(|m| (m.home_key.as_str(), m.away_key.as_str()))
            .collect();
        assert_eq!(pairs.len(), 380, "each ordered pair once");
        let finished = p.matches.iter().filter(|m| m.status == "finished").count();
        assert_eq!(finished, 190);
        let now = today.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        assert!(
            p.matches
                .iter()
                .filter(|m| m.status == "scheduled")
                .all(|m| m.kickoff_at > now)
        );
        assert!(
            p.matches
                .iter()
                .filter(|m| m.status == "finished")
                .all(|m| m.kickoff_at < now)
        );
    }

    #[test]
    fn deterministic_results() {
        let a = plan(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        let b = plan(NaiveDate::from_ymd_opt(2030, 6, 9).unwrap());
        let scores = |p: &ImportPlan| -> Vec<(Option<i32>, Option<i32>)> {
            p.matches
                .iter()
                .map(|m| (m.home_goals, m.away_goals))
                .collect()
        };
        assert_eq!(scores(&a), scores(&b));
        let goals: i32 = a
            .matches
            .iter()
            .filter_map(|m| Some(m.home_goals? + m.away_goals?))
            .sum();
        assert!((380..=760).contains(&goals), "plausible goal count {goals}");
    }
}
