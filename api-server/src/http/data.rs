//! Read endpoints for football data: leagues, teams (and their stats), matches, odds. Each
//! response is serialised once and cached under the data version and the request's path and
//! query, so repeated reads cost a token check and a cache lookup.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery, Viewer};
use super::params;
use crate::db::data::{self, MatchFilter};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::state::AppState;
use crate::import::validate_league_code;
use crate::views::{
    MatchOddsView, MatchView, OddsView, OverUnderView, TeamRef, TeamStatsView, team_record,
};

pub fn json_bytes<T: Serialize>(value: &T) -> ApiResult<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(ApiError::internal)
}

/// A 200 with pre-serialised JSON.
pub fn json_response(bytes: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// The response cache's key: the data version, the endpoint and its parsed parameters (never
/// the raw URI), so spellings of one request share an entry and parameters an endpoint ignores
/// cannot make new ones.
pub fn cache_key(state: &AppState, endpoint: &str, params: impl std::fmt::Debug) -> String {
    format!("{}|{endpoint}|{params:?}", state.data_version())
}

/// Serves `compute`'s JSON from the response cache under `key` (see [`cache_key`]). A 404 is
/// remembered for `--cache-miss-ttl` and answered again without a query.
pub async fn cached<F>(state: &AppState, key: String, compute: F) -> ApiResult<Response>
where
    F: Future<Output = ApiResult<Bytes>>,
{
    if let Some(miss) = state.caches.misses.get(&key).await {
        return Err(miss);
    }
    match state
        .caches
        .responses
        .get_or_compute(key.clone(), compute)
        .await
    {
        Ok(bytes) => Ok(json_response(bytes)),
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
            state.caches.misses.insert(key, e.clone()).await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeagueView {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub country: String,
    pub seasons: Vec<String>,
    pub teams: i64,
    pub matches: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeagueList {
    pub items: Vec<LeagueView>,
}

#[utoipa::path(get, path = "/api/v1/leagues", tag = "data", security(("bearer" = [])),
    responses((status = 200, description = "Every league with its seasons", body = LeagueList),
              (status = 401, description = "Missing or invalid token", body = ErrorBody)))]
pub async fn leagues(State(state): State<AppState>, _who: Viewer) -> ApiResult<Response> {
    cached(&state, cache_key(&state, "leagues", ()), async {
        let leagues = data::leagues(&state.db).await?;
        let seasons = data::seasons(&state.db).await?;
        let items = leagues
            .into_iter()
            .map(|l| LeagueView {
                seasons: seasons
                    .iter()
                    .filter(|(id, _)| *id == l.id)
                    .map(|(_, s)| s.clone())
                    .collect(),
                id: l.id,
                code: l.code,
                name: l.name,
                country: l.country,
                teams: l.teams,
                matches: l.matches,
            })
            .collect();
        json_bytes(&LeagueList { items })
    })
    .await
}

/// A league code from the query, checked but not yet resolved: resolving needs the database,
/// which a cached answer must not touch (see [`league_id`]).
pub fn league_param(value: Option<&str>) -> ApiResult<Option<&str>> {
    let Some(code) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    validate_league_code(code).map_err(|m| ApiError::invalid("league", m))?;
    Ok(Some(code))
}

/// The id of a checked league code (unknown codes are a 404, like an unknown id). Called inside the
/// cached computation: the cache key holds the code and the data version, so a hit needs no
/// lookup, and an unknown code (an error, never cached) is looked up each time.
pub async fn league_id(state: &AppState, code: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(code) = code else {
        return Ok(None);
    };
    data::league_id_by_code(&state.db, code)
        .await?
        .map(Some)
        .ok_or_else(|| ApiError::not_found(format!("no league {code}")))
}

/// A season in a query: two consecutive four-digit years. [`SEASON_PATTERN`] says the same to
/// the document; a season that holds no matches selects nothing (imports also check the years
/// are plausible, [`SeasonName::parse`]).
pub fn season_param(value: Option<&str>) -> ApiResult<Option<String>> {
    let Some(text) = value else {
        return Ok(None);
    };
    let year = |s: &str| {
        (s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match text.split_once('-').map(|(a, b)| (year(a), year(b))) {
        Some((Some(start), Some(end))) if end == start + 1 => Ok(Some(text.to_owned())),
        _ => Err(ApiError::invalid(
            "season",
            format!("season must be two consecutive years like 2019-2020, got {text:?}"),
        )),
    }
}

/// Two consecutive four-digit years, as a regular expression (ECMA-262 and Python alike, which
/// is what schemathesis generates from): the last digit steps up (`2019-2020` needs the carry
/// cases). [`season_param`] accepts exactly these; a test checks every year.
pub const SEASON_PATTERN: &str = concat!(
    "^(?:",
    "([0-9]{3})(?:0-\\1[1]|1-\\1[2]|2-\\1[3]|3-\\1[4]|4-\\1[5]|5-\\1[6]|6-\\1[7]|7-\\1[8]|8-\\1[9])",
    "|([0-9]{2})(?:09-\\2[1]0|19-\\2[2]0|29-\\2[3]0|39-\\2[4]0|49-\\2[5]0|59-\\2[6]0|69-\\2[7]0|79-\\2[8]0|89-\\2[9]0)",
    "|([0-9])(?:099-\\3[1]00|199-\\3[2]00|299-\\3[3]00|399-\\3[4]00|499-\\3[5]00|599-\\3[6]00|699-\\3[7]00|799-\\3[8]00|899-\\3[9]00)",
    "|0999-1000|1999-2000|2999-3000|3999-4000|4999-5000|5999-6000|6999-7000|7999-8000|8999-9000",
    ")$"
);

fn string_with_pattern(pattern: &str, description: &str) -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

/// A season parameter, as the document says it.
pub fn season_schema() -> utoipa::openapi::schema::Schema {
    string_with_pattern(SEASON_PATTERN, "Two consecutive years, e.g. `2019-2020`")
}

/// A page cursor, as the document says it.
pub fn cursor_schema() -> utoipa::openapi::schema::Schema {
    string_with_pattern(CURSOR_PATTERN, "`next_cursor` of the previous page")
}

/// `YYYY-MM-DD` or an RFC 3339 time, as the document says it.
pub fn date_or_time() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    OneOfBuilder::new()
        .item(string(KnownFormat::Date))
        .item(string(KnownFormat::DateTime))
        .into()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TeamsQuery {
    /// League code, e.g. `E0`.
    #[param(pattern = "^[A-Z0-9]{1,8}$")]
    pub league: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub id: i64,
    pub league: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    pub items: Vec<TeamView>,
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "data", params(TeamsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Teams, by league and name", body = TeamList),
              (status = 404, description = "No such league", body = ErrorBody)))]
pub async fn teams(
    State(state): State<AppState>,
    _who: Viewer,
    ApiQuery(q): ApiQuery<TeamsQuery>,
) -> ApiResult<Response> {
    let league = league_param(q.league.as_deref())?;
    cached(&state, cache_key(&state, "teams", league), async {
        let league_id = league_id(&state, league).await?;
        let items = data::teams(&state.db, league_id)
            .await?
            .into_iter()
            .map(|t| TeamView {
                id: t.id,
                league: t.league,
                name: t.name,
            })
            .collect();
        json_bytes(&TeamList { items })
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "data", params(("id" = i64, Path, description = "Team id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The team", body = TeamView),
              (status = 404, description = "No such team", body = ErrorBody)))]
pub async fn team(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let t = data::team(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such team"))?;
    Ok(json_response(json_bytes(&TeamView {
        id: t.id,
        league: t.league,
        name: t.name,
    })?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TeamStatsQuery {
    /// Two consecutive years, e.g. `2019-2020`; all seasons when absent.
    #[param(schema_with = season_schema)]
    pub season: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/teams/{id}/stats", tag = "data",
    params(("id" = i64, Path, description = "Team id"), TeamStatsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Record from finished matches: overall, home, away, form", body = TeamStatsView),
              (status = 404, description = "No such team", body = ErrorBody)))]
pub async fn team_stats(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<TeamStatsQuery>,
) -> ApiResult<Response> {
    let season = season_param(q.season.as_deref())?;
    cached(
        &state,
        cache_key(&state, "team_stats", (id, &season)),
        async {
            let t = data::team(&state.db, id)
                .await?
                .ok_or_else(|| ApiError::not_found("no such team"))?;
            let results = data::team_results(&state.db, id, season.as_deref()).await?;
            let (overall, home, away, form) = team_record(id, &results);
            json_bytes(&TeamStatsView {
                team: TeamRef {
                    id: t.id,
                    name: t.name,
                },
                league: t.league,
                season: season.clone(),
                overall,
                home,
                away,
                form,
            })
        },
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MatchesQuery {
    /// League code, e.g. `E0`.
    #[param(pattern = "^[A-Z0-9]{1,8}$")]
    pub league: Option<String>,
    /// Two consecutive years, e.g. `2019-2020`.
    #[param(schema_with = season_schema)]
    pub season: Option<String>,
    /// Team id: matches where it plays home or away.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub team: Option<String>,
    /// `scheduled`, `finished` or `postponed`.
    #[param(pattern = "^(scheduled|finished|postponed)$")]
    pub status: Option<String>,
    /// Kick-off on or after: `YYYY-MM-DD` or RFC 3339.
    #[param(schema_with = date_or_time)]
    pub from: Option<String>,
    /// Kick-off before (a date includes that whole day): `YYYY-MM-DD` or RFC 3339.
    #[param(schema_with = date_or_time)]
    pub to: Option<String>,
    /// Page size, default 20.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursor_schema)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MatchPage {
    pub items: Vec<MatchView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub fn parse_status(value: Option<&str>) -> ApiResult<Option<&'static str>> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some("scheduled") => Ok(Some("scheduled")),
        Some("finished") => Ok(Some("finished")),
        Some("postponed") => Ok(Some("postponed")),
        Some(_) => Err(ApiError::invalid(
            "status",
            "status must be scheduled, finished or postponed",
        )),
    }
}

/// A bound as Unix seconds; a plain date `to` covers that whole day.
pub fn parse_instant(
    field: &'static str,
    value: Option<&str>,
    end_of_day: bool,
) -> ApiResult<Option<i64>> {
    let Some(text) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            date.succ_opt().unwrap_or(date)
        } else {
            date
        };
        return Ok(Some(
            day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp(),
        ));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.timestamp()))
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!("{field} must be YYYY-MM-DD or an RFC 3339 time"),
            )
        })
}

/// A page cursor: the last row's kick-off (Unix seconds) and id, `<kickoff>_<id>`. Plain, so the
/// document can say exactly which strings are cursors (see [`CURSOR_PATTERN`]).
pub fn encode_cursor(kickoff: i64, id: i64) -> String {
    format!("{kickoff}_{id}")
}

/// What [`encode_cursor`] writes; every string it matches decodes (at most 18 digits fit i64).
pub const CURSOR_PATTERN: &str = "^-?[0-9]{1,18}_[0-9]{1,18}$";

pub fn decode_cursor(value: Option<&str>) -> ApiResult<Option<(i64, i64)>> {
    let Some(text) = value else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("cursor", "not a cursor from a previous page");
    let (k, i) = text.split_once('_').ok_or_else(bad)?;
    let digits = |s: &str| (1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let kickoff_digits = k.strip_prefix('-').unwrap_or(k);
    if !digits(kickoff_digits) || !digits(i) {
        return Err(bad());
    }
    Ok(Some((
        k.parse().map_err(|_| bad())?,
        i.parse().map_err(|_| bad())?,
    )))
}

/// Validates the list query into a filter (league codes are resolved by the caller, once the
/// cache missed).
pub fn match_filter(q: &MatchesQuery) -> ApiResult<MatchFilter> {
    let filter = MatchFilter {
        league_id: None,
        season: season_param(q.season.as_deref())?,
        team_id: params::id("team", q.team.as_deref())?,
        status: parse_status(q.status.as_deref())?,
        from: parse_instant("from", q.from.as_deref(), false)?,
        to: parse_instant("to", q.to.as_deref(), true)?,
        after: decode_cursor(q.cursor.as_deref())?,
        limit: params::limit(q.limit.as_deref(), 20)?,
    };
    // `to` at or before `from` is an empty range: it selects nothing, which the query says by
    // itself (an error here would refuse a request the document cannot call invalid).
    Ok(filter)
}

#[utoipa::path(get, path = "/api/v1/matches", tag = "data", params(MatchesQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of matches in kick-off order", body = MatchPage),
              (status = 404, description = "No such league", body = ErrorBody),
              (status = 422, description = "A filter is invalid (`field` names it)", body = ErrorBody)))]
pub async fn matches(
    State(state): State<AppState>,
    _who: Viewer,
    ApiQuery(q): ApiQuery<MatchesQuery>,
) -> ApiResult<Response> {
    let league = league_param(q.league.as_deref())?;
    let mut filter = match_filter(&q)?;
    cached(
        &state,
        cache_key(&state, "matches", (&league, &filter)),
        async {
            filter.league_id = league_id(&state, league).await?;
            let mut rows = data::list_matches(&state.db, &filter).await?;
            let more = rows.len() as i64 > filter.limit;
            rows.truncate(usize::try_from(filter.limit).unwrap_or(0));
            let next_cursor = more
                .then(|| rows.last().map(|m| encode_cursor(m.kickoff_at, m.id)))
                .flatten();
            json_bytes(&MatchPage {
                items: rows.iter().map(MatchView::from_row).collect(),
                next_cursor,
            })
        },
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/matches/{id}", tag = "data", params(("id" = i64, Path, description = "Match id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The match", body = MatchView),
              (status = 404, description = "No such match", body = ErrorBody)))]
pub async fn match_detail(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    cached(&state, cache_key(&state, "match", id), async {
        let m = data::match_by_id(&state.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such match"))?;
        json_bytes(&MatchView::from_row(&m))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/matches/{id}/odds", tag = "data", params(("id" = i64, Path, description = "Match id")),
    security(("bearer" = [])),
    responses((status = 200, description = "1X2 and over/under 2.5 quotes, opening and closing", body = MatchOddsView),
              (status = 404, description = "No such match", body = ErrorBody)))]
pub async fn match_odds(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    cached(&state, cache_key(&state, "match_odds", id), async {
        data::match_by_id(&state.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such match"))?;
        let (one_x_two, totals) = data::odds(&state.db, id).await?;
        json_bytes(&MatchOddsView {
            match_id: id,
            one_x_two: one_x_two.iter().map(OddsView::from_row).collect(),
            over_under_2_5: totals.iter().map(OverUnderView::from_row).collect(),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_422() {
        let c = encode_cursor(1_700_000_000, 42);
        assert_eq!(c, "1700000000_42");
        assert_eq!(decode_cursor(Some(&c)).unwrap(), Some((1_700_000_000, 42)));
        assert_eq!(decode_cursor(Some("-86400_7")).unwrap(), Some((-86_400, 7)));
        let pattern = regex::Regex::new(CURSOR_PATTERN).unwrap();
        assert!(pattern.is_match(&c) && pattern.is_match("-86400_7"));
        assert!(pattern.is_match("999999999999999999_999999999999999999"));
        assert!(decode_cursor(Some("999999999999999999_999999999999999999")).is_ok());
        for bad in [
            "!!",
            "bm90LWEtY3Vyc29y",
            "MTI6",
            "1_",
            "_1",
            "1_-2",
            "1__2",
            "",
            "1_2_3",
            "1000000000000000000_1",
        ] {
            assert!(!pattern.is_match(bad), "{bad}");
            let e = decode_cursor(Some(bad)).unwrap_err();
            assert_eq!(e.field(), Some("cursor"), "{bad}");
        }
    }

    #[test]
    fn seasons_are_consecutive_years_as_the_pattern_says() {
        for start in 0..9999u32 {
            let season = format!("{start:04}-{:04}", start + 1);
            assert_eq!(season_param(Some(&season)).unwrap(), Some(season));
        }
        for bad in [
            "2019-2021",
            "2020-2019",
            "2019",
            "19-20",
            "2019-20",
            "٢٠١٩-٢٠٢٠",
            "+019-2020",
        ] {
            assert!(season_param(Some(bad)).is_err(), "{bad}");
        }
        // The pattern spelled out by its rule (Rust's regex has no back-references, so the test
        // rebuilds it; schemathesis generates seasons from it and judges the server's answers).
        let digit_steps = |tail: &str, group: u8, carry: &str| {
            (0..9)
                .map(|d| format!("{d}{tail}-\\{group}[{}]{carry}", d + 1))
                .collect::<Vec<_>>()
                .join("|")
        };
        let thousands = (0..9)
            .map(|d| format!("{d}999-{}000", d + 1))
            .collect::<Vec<_>>()
            .join("|");
        let rebuilt = format!(
            "^(?:([0-9]{{3}})(?:{})|([0-9]{{2}})(?:{})|([0-9])(?:{})|{thousands})$",
            digit_steps("", 1, ""),
            digit_steps("9", 2, "0"),
            digit_steps("99", 3, "00"),
        );
        assert_eq!(SEASON_PATTERN, rebuilt);
    }

    #[test]
    fn instants_and_status() {
        assert_eq!(
            parse_instant("from", Some("2024-01-01"), false).unwrap(),
            Some(1_704_067_200)
        );
        assert_eq!(
            parse_instant("to", Some("2024-01-01"), true).unwrap(),
            Some(1_704_153_600)
        );
        assert_eq!(
            parse_instant("from", Some("2024-01-01T12:00:00Z"), false).unwrap(),
            Some(1_704_110_400)
        );
        assert_eq!(
            parse_instant("from", Some("yesterday"), false)
                .unwrap_err()
                .field(),
            Some("from")
        );
        assert_eq!(parse_status(Some("finished")).unwrap(), Some("finished"));
        assert!(parse_status(Some("done")).is_err());
    }
}
