//! football-data gives kick-off times in UK local time; we store UTC. UK summer time (BST,
//! UTC+1) runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
//! October (the rule since 1996; kick-off times only appear in the files from 2019-20).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    let mut day = first_of_next.pred_opt()?;
    while day.weekday() != Weekday::Sun {
        day = day.pred_opt()?;
    }
    Some(day)
}

/// The UK's offset from UTC, in hours, at a local wall-clock time.
pub fn uk_offset_hours(local: NaiveDateTime) -> i64 {
    let year = local.date().year();
    let (Some(march), Some(october)) = (last_sunday(year, 3), last_sunday(year, 10)) else {
        return 0;
    };
    // Local clocks jump 01:00 GMT -> 02:00 BST, and fall back 02:00 BST -> 01:00 GMT.
    let starts = march.and_hms_opt(1, 0, 0);
    let ends = october.and_hms_opt(2, 0, 0);
    match (starts, ends) {
        (Some(s), Some(e)) if local >= s && local < e => 1,
        _ => 0,
    }
}

/// Kick-off in UTC: the date and UK local time when the file has a time, else the date at
/// 00:00 UTC (and `false`: the time is unknown).
pub fn kickoff_utc(date: NaiveDate, time: Option<NaiveTime>) -> (DateTime<Utc>, bool) {
    match time {
        Some(t) => {
            let local = date.and_time(t);
            let utc = local - Duration::hours(uk_offset_hours(local));
            (utc.and_utc(), true)
        }
        None => (date.and_time(NaiveTime::MIN).and_utc(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn summer_and_winter_kickoffs() {
        // 2023-08-11 20:00 BST (Burnley v Man City) = 19:00 UTC.
        let d = NaiveDate::from_ymd_opt(2023, 8, 11).unwrap();
        let (utc, known) = kickoff_utc(d, NaiveTime::from_hms_opt(20, 0, 0));
        assert!(known);
        assert_eq!(utc.to_rfc3339(), "2023-08-11T19:00:00+00:00");
        // December is GMT.
        let d = NaiveDate::from_ymd_opt(2023, 12, 26).unwrap();
        let (utc, _) = kickoff_utc(d, NaiveTime::from_hms_opt(15, 0, 0));
        assert_eq!(utc.to_rfc3339(), "2023-12-26T15:00:00+00:00");
        // Unknown time: midnight UTC, flagged.
        let (utc, known) = kickoff_utc(d, None);
        assert!(!known);
        assert_eq!(utc.to_rfc3339(), "2023-12-26T00:00:00+00:00");
    }

    #[test]
    fn switch_days() {
        // 2024: BST from Sunday 31 March 01:00 GMT to Sunday 27 October 02:00 BST.
        assert_eq!(uk_offset_hours(at("2024-03-31 00:59")), 0);
        assert_eq!(uk_offset_hours(at("2024-03-31 12:00")), 1);
        assert_eq!(uk_offset_hours(at("2024-10-27 01:30")), 1);
        assert_eq!(uk_offset_hours(at("2024-10-27 14:00")), 0);
        assert_eq!(uk_offset_hours(at("2024-10-26 14:00")), 1);
    }
}
