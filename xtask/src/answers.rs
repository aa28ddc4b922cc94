//! What the benchmarks' smoke runs judge: that every answer is one the API documents, not how
//! fast it came. A machine starved of CPU may rightly shed load with the documented overload
//! answer (503 with `Retry-After` and code `busy`, `timeout` or `database_unavailable`, see
//! docs/api.md); anything else (another status, a 5xx without it, a socket error) is a defect.
//! Pure: the benchmarks feed it what their load generators saw.
use serde_json::Value;

/// The 503 codes the server sheds load with; each comes with `Retry-After`.
pub const OVERLOAD_CODES: [&str; 3] = ["busy", "timeout", "database_unavailable"];

/// One answer, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Served,
    /// The documented overload answer.
    Shed,
    /// Anything else, described for the report.
    Undocumented(String),
}

/// Judges one answer from its status (0: no HTTP answer), whether it had `Retry-After`, its
/// body (or the first bytes of it) and the client's error text.
pub fn judge(status: u16, retry_after: bool, body: &[u8], client_error: &str) -> Answer {
    if status == 0 {
        return Answer::Undocumented(format!("no answer: {client_error}"));
    }
    if (200..300).contains(&status) {
        return Answer::Served;
    }
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned));
    match code {
        Some(code) if status == 503 && retry_after && OVERLOAD_CODES.contains(&code.as_str()) => {
            Answer::Shed
        }
        Some(code) if status == 503 && OVERLOAD_CODES.contains(&code.as_str()) => {
            Answer::Undocumented(format!("503 {code} without Retry-After"))
        }
        Some(code) => Answer::Undocumented(format!("{status} {code}")),
        None => Answer::Undocumented(format!(
            "{status} {}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        )),
    }
}

/// How many answers of each kind a run got, and the first few undocumented ones.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    pub served: u64,
    pub shed: u64,
    pub undocumented: u64,
    pub first_undocumented: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, answer: Answer) {
        self.add_many(answer, 1);
    }

    /// `n` answers alike.
    pub fn add_many(&mut self, answer: Answer, n: u64) {
        match answer {
            Answer::Served => self.served += n,
            Answer::Shed => self.shed += n,
            Answer::Undocumented(what) => {
                self.undocumented += n;
                if n > 0 && self.first_undocumented.len() < 5 {
                    self.first_undocumented.push(what);
                }
            }
        }
    }

    /// Adds another run's answers.
    pub fn merge(&mut self, other: &Tally) {
        self.served += other.served;
        self.shed += other.shed;
        self.undocumented += other.undocumented;
        for what in &other.first_undocumented {
            if self.first_undocumented.len() < 5 {
                self.first_undocumented.push(what.clone());
            }
        }
    }

    /// The smoke's verdict: something was served and nothing undocumented came back.
    pub fn verdict(&self) -> Result<(), String> {
        if self.undocumented > 0 {
            return Err(format!(
                "{} undocumented answers (first: {})",
                self.undocumented,
                self.first_undocumented.join("; ")
            ));
        }
        if self.served == 0 {
            return Err(format!(
                "nothing was served ({} overload answers)",
                self.shed
            ));
        }
        Ok(())
    }
}

/// The requests the benchmarks send, by the shape of their 200 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `GET /api/v1/predictions/{id}`.
    Prediction,
    /// `GET /api/v1/matches?…`: a page of matches.
    MatchPage,
    /// `POST /api/v1/predictions/batch`.
    Batch,
    /// `POST /api/v1/auth/login`.
    Tokens,
}

impl Shape {
    /// The shape of a bench scenario's answer (`None` for the bare ceiling server).
    pub fn of_scenario(scenario: &str) -> Option<Self> {
        match scenario {
            "cached" | "spread" => Some(Self::Prediction),
            "list" => Some(Self::MatchPage),
            "batch" => Some(Self::Batch),
            "login" => Some(Self::Tokens),
            _ => None,
        }
    }

    /// Whether `body` (a whole 200 answer) has this shape: the fields a client reads, with
    /// sane values (probabilities that sum to 1, a non-empty page).
    pub fn check(self, body: &[u8]) -> Result<(), String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("not JSON ({e}): {}", lossy(body)))?;
        match self {
            Self::Prediction => prediction(&v),
            Self::MatchPage => {
                let items = non_empty_array(&v, "items")?;
                items.iter().try_for_each(|m| {
                    for key in ["id", "league", "season", "status", "home_team", "away_team"] {
                        field(m, key)?;
                    }
                    Ok(())
                })
            }
            Self::Batch => {
                field(&v, "missing")?;
                non_empty_array(&v, "items")?
                    .iter()
                    .try_for_each(prediction)
            }
            Self::Tokens => {
                let token = field(&v, "access_token")?.as_str().unwrap_or_default();
                if token.is_empty() || v["token_type"] != "Bearer" {
                    return Err(format!("no bearer access token: {}", lossy(body)));
                }
                field(&v, "refresh_token").map(|_| ())
            }
        }
    }
}

fn lossy(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned()
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("no field {key:?}"))
}

fn non_empty_array<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    match field(v, key)?.as_array() {
        Some(items) if !items.is_empty() => Ok(items),
        _ => Err(format!("{key:?} is not a non-empty array")),
    }
}

fn prediction(v: &Value) -> Result<(), String> {
    field(v, "match_id")?
        .as_i64()
        .ok_or("match_id is not an integer")?;
    let p = field(v, "probabilities")?;
    let sum: f64 = ["home", "draw", "away"]
        .iter()
        .map(|k| p[*k].as_f64().unwrap_or(f64::NAN))
        .sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(format!("probabilities sum to {sum}: {p}"));
    }
    for key in ["model", "model_version", "predicted_outcome"] {
        if field(v, key)?.as_str().is_none_or(str::is_empty) {
            return Err(format!("{key} is not a non-empty string"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_and_the_overload_answer_are_documented() {
        assert_eq!(judge(200, false, b"", ""), Answer::Served);
        assert_eq!(judge(204, false, b"", ""), Answer::Served);
        for code in OVERLOAD_CODES {
            let body = format!(r#"{{"code":"{code}","message":"retry"}}"#);
            assert_eq!(judge(503, true, body.as_bytes(), ""), Answer::Shed);
            assert_eq!(
                judge(503, false, body.as_bytes(), ""),
                Answer::Undocumented(format!("503 {code} without Retry-After"))
            );
        }
        // A 503 the server sends for another reason, a 500, a 429, a 404: defects in a smoke.
        let not_fitted = br#"{"code":"model_not_fitted","message":"x"}"#;
        assert_eq!(
            judge(503, true, not_fitted, ""),
            Answer::Undocumented("503 model_not_fitted".into())
        );
        assert_eq!(
            judge(500, false, br#"{"code":"internal","message":"x"}"#, ""),
            Answer::Undocumented("500 internal".into())
        );
        assert_eq!(
            judge(429, true, br#"{"code":"rate_limited"}"#, ""),
            Answer::Undocumented("429 rate_limited".into())
        );
        // A proxy's HTML error page, and no answer at all.
        assert_eq!(
            judge(502, false, b"<html>bad gateway</html>", ""),
            Answer::Undocumented("502 <html>bad gateway</html>".into())
        );
        assert_eq!(
            judge(0, false, b"", "connection refused"),
            Answer::Undocumented("no answer: connection refused".into())
        );
    }

    #[test]
    fn a_tally_fails_on_anything_undocumented_or_on_nothing_served() {
        let mut tally = Tally::default();
        assert!(tally.verdict().unwrap_err().contains("nothing was served"));
        tally.add(Answer::Shed);
        assert!(tally.verdict().is_err());
        tally.add(Answer::Served);
        assert_eq!(tally.verdict(), Ok(()));
        for i in 0..7 {
            tally.add(Answer::Undocumented(format!("500 n{i}")));
        }
        assert_eq!((tally.served, tally.shed, tally.undocumented), (1, 1, 7));
        assert_eq!(tally.first_undocumented.len(), 5);
        let err = tally.verdict().unwrap_err();
        assert!(
            err.starts_with("7 undocumented answers (first: 500 n0; 500 n1"),
            "{err}"
        );

        let mut runs = Tally::default();
        runs.add_many(Answer::Served, 1000);
        runs.add_many(Answer::Undocumented("never".into()), 0);
        assert_eq!(runs.verdict(), Ok(()));
        runs.merge(&tally);
        assert_eq!((runs.served, runs.shed, runs.undocumented), (1001, 1, 7));
        assert_eq!(runs.first_undocumented, tally.first_undocumented);
    }

    fn prediction_json(id: i64, home: f64) -> Value {
        serde_json::json!({
            "match_id": id, "model": "dixon-coles", "model_version": "v1",
            "predicted_outcome": "home",
            "probabilities": {"home": home, "draw": 0.25, "away": 0.75 - home},
        })
    }

    #[test]
    fn shapes_need_the_fields_clients_read() {
        let good = prediction_json(7, 0.5).to_string();
        assert_eq!(Shape::Prediction.check(good.as_bytes()), Ok(()));
        let mut skewed = prediction_json(7, 0.5);
        skewed["probabilities"]["draw"] = serde_json::json!(0.5);
        assert!(
            Shape::Prediction
                .check(skewed.to_string().as_bytes())
                .unwrap_err()
                .contains("sum to 1.25")
        );
        let mut unnamed = prediction_json(7, 0.5);
        unnamed["model"] = serde_json::json!("");
        assert!(
            Shape::Prediction
                .check(unnamed.to_string().as_bytes())
                .is_err()
        );
        assert!(
            Shape::Prediction
                .check(b"<html>")
                .unwrap_err()
                .starts_with("not JSON")
        );

        let batch = serde_json::json!({"items": [prediction_json(1, 0.4)], "missing": []});
        assert_eq!(Shape::Batch.check(batch.to_string().as_bytes()), Ok(()));
        let empty = serde_json::json!({"items": [], "missing": [1]});
        assert!(Shape::Batch.check(empty.to_string().as_bytes()).is_err());

        let page = serde_json::json!({"items": [{"id": 1, "league": "E0", "season": "2023-2024",
            "status": "finished", "home_team": {}, "away_team": {}}], "next_cursor": null});
        assert_eq!(Shape::MatchPage.check(page.to_string().as_bytes()), Ok(()));
        let bare = serde_json::json!({"items": [{"id": 1}]});
        assert_eq!(
            Shape::MatchPage.check(bare.to_string().as_bytes()),
            Err("no field \"league\"".into())
        );

        let tokens = br#"{"access_token":"a.b.c","token_type":"Bearer","refresh_token":"r"}"#;
        assert_eq!(Shape::Tokens.check(tokens), Ok(()));
        assert!(
            Shape::Tokens
                .check(br#"{"access_token":"","token_type":"Bearer"}"#)
                .is_err()
        );
    }

    #[test]
    fn every_scenario_but_the_ceiling_has_a_shape() {
        for scenario in crate::bench::SCENARIOS {
            if scenario != "mixed" {
                assert!(Shape::of_scenario(scenario).is_some(), "{scenario}");
            }
        }
        assert_eq!(Shape::of_scenario("hello"), None);
    }
}
