-- Initial schema. The PostgreSQL twin of this file differs only in the id column type
-- (a test checks that): every query is written once in portable SQL.
-- Timestamps are Unix seconds (UTC) in BIGINT columns: portable and index-friendly.

CREATE TABLE leagues (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    country     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE seasons (
    id          INTEGER PRIMARY KEY,
    league_id   BIGINT NOT NULL REFERENCES leagues (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    start_year  INTEGER NOT NULL,
    UNIQUE (league_id, name)
);

-- Team names are normalised per league: normalized_name is the identity, name the display form.
CREATE TABLE teams (
    id              INTEGER PRIMARY KEY,
    league_id       BIGINT NOT NULL REFERENCES leagues (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    normalized_name TEXT NOT NULL,
    UNIQUE (league_id, normalized_name)
);

-- In a league season each ordered pair of teams meets once: that is the natural key that makes
-- imports idempotent. kickoff_at is the date at 00:00 UTC when the source has no time.
CREATE TABLE matches (
    id                      INTEGER PRIMARY KEY,
    league_id               BIGINT NOT NULL REFERENCES leagues (id) ON DELETE CASCADE,
    season_id               BIGINT NOT NULL REFERENCES seasons (id) ON DELETE CASCADE,
    home_team_id            BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    away_team_id            BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    kickoff_at              BIGINT NOT NULL,
    kickoff_time_known      BOOLEAN NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('scheduled', 'finished', 'postponed')),
    home_goals              INTEGER,
    away_goals              INTEGER,
    half_time_home_goals    INTEGER,
    half_time_away_goals    INTEGER,
    referee                 TEXT,
    attendance              INTEGER,
    home_shots              INTEGER,
    away_shots              INTEGER,
    home_shots_on_target    INTEGER,
    away_shots_on_target    INTEGER,
    home_fouls              INTEGER,
    away_fouls              INTEGER,
    home_corners            INTEGER,
    away_corners            INTEGER,
    home_yellow_cards       INTEGER,
    away_yellow_cards       INTEGER,
    home_red_cards          INTEGER,
    away_red_cards          INTEGER,
    updated_at              BIGINT NOT NULL,
    UNIQUE (season_id, home_team_id, away_team_id),
    CHECK (home_team_id <> away_team_id),
    CHECK ((status = 'finished') = (home_goals IS NOT NULL AND away_goals IS NOT NULL))
);
-- Every list query orders by (kickoff_at, id) for keyset pagination; each filter has an index
-- that yields rows in that order.
CREATE INDEX matches_league_season_kickoff ON matches (league_id, season_id, kickoff_at, id);
CREATE INDEX matches_league_status_kickoff ON matches (league_id, status, kickoff_at, id);
CREATE INDEX matches_home_team_kickoff ON matches (home_team_id, kickoff_at, id);
CREATE INDEX matches_away_team_kickoff ON matches (away_team_id, kickoff_at, id);
CREATE INDEX matches_status_kickoff ON matches (status, kickoff_at, id);
CREATE INDEX matches_kickoff ON matches (kickoff_at, id);

-- kind: 'opening' = football-data's early ("pre-match") prices, 'closing' = at kick-off.
CREATE TABLE odds_1x2 (
    match_id    BIGINT NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    bookmaker   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('opening', 'closing')),
    home        DOUBLE PRECISION NOT NULL,
    draw        DOUBLE PRECISION NOT NULL,
    away        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (match_id, bookmaker, kind)
);

CREATE TABLE odds_over_under_25 (
    match_id    BIGINT NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    bookmaker   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('opening', 'closing')),
    over_price  DOUBLE PRECISION NOT NULL,
    under_price DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (match_id, bookmaker, kind)
);

-- Fitted model parameters (JSON) with the version that names them; the newest fit of a league
-- is the one every replica serves.
CREATE TABLE model_fits (
    id              INTEGER PRIMARY KEY,
    league_id       BIGINT NOT NULL REFERENCES leagues (id) ON DELETE CASCADE,
    model           TEXT NOT NULL,
    version         TEXT NOT NULL,
    fitted_at       BIGINT NOT NULL,
    matches_used    INTEGER NOT NULL,
    -- Fingerprint of the league's finished matches the fit saw; a different current value means
    -- the fit is stale (e.g. a crash between an import and its refit).
    data_stamp      TEXT NOT NULL,
    params          TEXT NOT NULL,
    UNIQUE (league_id, model, version)
);
CREATE INDEX model_fits_league_model_fitted ON model_fits (league_id, model, fitted_at, id);

-- The predictions each fit made for the matches that were still to be played when it was made.
CREATE TABLE predictions (
    match_id            BIGINT NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    model               TEXT NOT NULL,
    model_version       TEXT NOT NULL,
    home_win            DOUBLE PRECISION NOT NULL,
    draw                DOUBLE PRECISION NOT NULL,
    away_win            DOUBLE PRECISION NOT NULL,
    expected_home_goals DOUBLE PRECISION NOT NULL,
    expected_away_goals DOUBLE PRECISION NOT NULL,
    body                TEXT NOT NULL,
    generated_at        BIGINT NOT NULL,
    PRIMARY KEY (match_id, model, model_version)
);

CREATE TABLE model_evaluations (
    league_id       BIGINT NOT NULL REFERENCES leagues (id) ON DELETE CASCADE,
    season_id       BIGINT NOT NULL REFERENCES seasons (id) ON DELETE CASCADE,
    model           TEXT NOT NULL,
    data_stamp      TEXT NOT NULL,
    report          TEXT NOT NULL,
    computed_at     BIGINT NOT NULL,
    PRIMARY KEY (league_id, season_id, model)
);

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    username            TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    active              BOOLEAN NOT NULL,
    -- Access tokens issued before this instant are refused (role change, deactivation).
    sessions_valid_from BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Opaque refresh tokens, stored as SHA-256 hashes; one family per login, rotated on every use.
CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at, id);

CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    league_id   BIGINT NOT NULL REFERENCES leagues (id) ON DELETE CASCADE,
    season_id   BIGINT NOT NULL REFERENCES seasons (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    row_count   INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    imported_at BIGINT NOT NULL
);
CREATE INDEX imports_league_imported ON imports (league_id, imported_at);

-- One counter bumped by every write that changes what the API serves (imports, fits, users'
-- sessions). Each replica polls it to drop stale caches: a cheap, portable invalidation signal.
CREATE TABLE data_version (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
INSERT INTO data_version (id, version, updated_at) VALUES (1, 0, 0);
