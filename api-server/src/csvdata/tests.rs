use chrono::{NaiveDate, NaiveTime};
use pretty_assertions::assert_eq;

use super::*;

fn errors(parsed: &ParsedCsv) -> Vec<(u64, Option<&str>, String)> {
    parsed
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_deref(), e.reason()))
        .collect()
}

#[test]
fn survives_every_quirk_of_the_real_files() {
    // BOM, pandas-renamed over/under headers, trailing empty header cells, CRLF and LF mixed,
    // `8.0` integers, a quoted referee with a comma, U+FFFD, a row of only commas, a row shorter
    // than the header, and both date formats.
    let mut csv = b"\xEF\xBB\xBFDiv,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR,HTHG,HTAG,HTR,Referee,HS,AS,B365H,B365D,B365A,PSCH,PSCD,PSCA,B365_2_5,B365_2_5_1,,\r\n".to_vec();
    csv.extend_from_slice(b"E0,07/08/15,Lille,Paris SG,0.0,1.0,A,0.0,0.0,D,\"Wiley, A. G.\",12.0,7.0,6.5,3.6,1.57,7.58,3.91,1.58,2.1,1.8,,\n");
    csv.extend_from_slice(",,,,,,,,,,,,,,,,,,,,,,\r\n".as_bytes());
    csv.extend_from_slice(
        "E0,17/08/2002,Aston  Villa ,Bolton,1,1,D,1,0,H,\u{FFFD}U Rennie,13,12\r\n".as_bytes(),
    );
    let parsed = parse(&csv);
    assert_eq!(errors(&parsed), vec![]);
    assert_eq!((parsed.data_rows, parsed.blank_rows), (2, 1));

    let first = &parsed.matches[0];
    assert_eq!(first.line, 2);
    assert_eq!(first.date, NaiveDate::from_ymd_opt(2015, 8, 7).unwrap());
    assert_eq!(first.full_time, Some(ScoreLine::new(0, 1)));
    assert_eq!(first.half_time, Some(ScoreLine::new(0, 0)));
    assert_eq!(first.referee.as_deref(), Some("Wiley, A. G."));
    assert_eq!(first.stats.home_shots, Some(12));
    assert_eq!(first.stats.home_corners, None);
    assert_eq!(
        first
            .odds(Bookmaker::Pinnacle, OddsKind::Closing)
            .map(|o| o.away),
        Some(1.58)
    );
    assert_eq!(first.odds(Bookmaker::Pinnacle, OddsKind::Opening), None);
    assert_eq!(first.odds_1x2.len(), 2);
    assert_eq!(
        first.over_under_25,
        vec![OverUnder25 {
            bookmaker: Bookmaker::Bet365,
            kind: OddsKind::Opening,
            over: 2.1,
            under: 1.8
        }]
    );

    let second = &parsed.matches[1];
    assert_eq!(second.line, 4);
    assert_eq!(second.date, NaiveDate::from_ymd_opt(2002, 8, 17).unwrap());
    assert_eq!(second.home_team, "Aston Villa");
    assert_eq!(second.home_key, "aston villa");
    assert_eq!(second.referee.as_deref(), Some("\u{FFFD}U Rennie"));
    assert!(second.odds_1x2.is_empty());
}

#[test]
fn fixtures_without_results_are_scheduled_matches() {
    let csv = b"Div,Date,Time,HomeTeam,AwayTeam,FTHG,FTAG,FTR\nE0,17/08/2024,12:30,Ipswich,Liverpool,,,\nE0,18/08/2024,,Chelsea,Man City\n";
    let parsed = parse(csv);
    assert_eq!(errors(&parsed), vec![]);
    assert_eq!(parsed.matches.len(), 2);
    assert!(parsed.matches.iter().all(|m| m.full_time.is_none()));
    assert_eq!(
        parsed.matches[0].time,
        Some(NaiveTime::from_hms_opt(12, 30, 0).unwrap())
    );
}

#[test]
fn malformed_rows_report_exact_lines_and_reasons_and_parsing_goes_on() {
    let csv = "Div,Date,Time,HomeTeam,AwayTeam,FTHG,FTAG,FTR,HTHG,HTAG,HTR,PSH,PSD,PSA\n\
E0,12/08/2023,15:00,Arsenal,Forest,2,1,H,1,0,H,1.2,7.0,13.0\n\
E0,32/08/2023,15:00,Burnley,Chelsea,0,3,A,,,,,,\r\n\
,,,,,,,,,,,,,\n\
E0,13/08/2023,25:00,Brentford,Spurs,2,2,H,,,,,,\n\
E0,13/08/2023,,Everton,Fulham,x,1,A,,,,,,\n\
E0,13/08/2023,,,Wolves,1,1,D,,,,,,\n\
E0,14/08/2023,,Luton,luton ,1,1,D\n\
E0,14/08/2023,,Arsenal,Forest,1,1,D\n\
E0,15/08/2023,20:00,Man City,Newcastle,,,,,,,2.0,3.5,\n\
E0,16/08/2023,,Sheffield,Bournemouth,,,,,,,0.9,3,4\n\
E0,17/08/2023,20:00,Crystal Palace,Liverpool,,,,,,,,,\n\
E0,17/08/2023,,Aston Villa,West Ham,1,,,,,\n\
E0,18/08/2023,,Brighton,Man United,,,H,,,\n\
E0,18/08/2023,,Leeds,Leicester,1,1,D,2,0,H\n";
    let parsed = parse(csv.as_bytes());
    let s = |x: &str| x.to_owned();
    assert_eq!(
        errors(&parsed),
        vec![
            (
                3,
                Some("Date"),
                s("invalid date \"32/08/2023\": expected dd/mm/yy or dd/mm/yyyy")
            ),
            (5, Some("Time"), s("invalid time \"25:00\": expected HH:MM")),
            (5, Some("FTR"), s("result H contradicts the score 2-2")),
            (
                6,
                Some("FTHG"),
                s("invalid number \"x\": expected a whole number")
            ),
            (7, Some("HomeTeam"), s("missing value")),
            (8, Some("AwayTeam"), s("home and away team are the same")),
            (
                9,
                None,
                s("duplicate match Arsenal v Forest: already on line 2")
            ),
            (13, Some("FTAG"), s("only one side's goals are given")),
            (
                14,
                Some("FTR"),
                s("a result is given without a complete score")
            ),
            (
                15,
                Some("HTHG"),
                s("half-time score 2-0 exceeds the full-time score 1-1")
            ),
        ]
    );
    assert_eq!(parsed.error_count, 10);
    // Odds problems drop the quote, not the match.
    let warnings: Vec<_> = parsed
        .warnings
        .iter()
        .map(|e| (e.line, e.column.as_deref(), e.reason()))
        .collect();
    assert_eq!(
        warnings,
        vec![
            (
                10,
                Some("PSA"),
                s("incomplete odds: PSH is given but PSA is empty")
            ),
            (
                11,
                Some("PSH"),
                s("invalid odds \"0.9\": expected a decimal price above 1")
            ),
        ]
    );
    assert_eq!((parsed.data_rows, parsed.blank_rows), (13, 1));
    let lines: Vec<u64> = parsed.matches.iter().map(|m| m.line).collect();
    assert_eq!(lines, vec![2, 10, 11, 12]);
    assert!(parsed.matches[1].odds_1x2.is_empty());
    assert!(!parsed.is_ok());
}

#[test]
fn header_problems_are_reported_on_line_one() {
    let parsed = parse(b"Div,HomeTeam,FTHG\nE0,Arsenal,1\n");
    assert_eq!(
        errors(&parsed),
        vec![
            (
                1,
                None,
                "required column Date is missing from the header".to_owned()
            ),
            (
                1,
                None,
                "required column AwayTeam is missing from the header".to_owned()
            ),
        ]
    );
    assert!(parsed.matches.is_empty());
    assert_eq!(
        errors(&parse(b"")),
        vec![(1, None, "the file has no header row".to_owned())]
    );
    assert_eq!(
        errors(&parse(b"\xEF\xBB\xBF")),
        vec![(1, None, "the file has no header row".to_owned())]
    );
}

#[test]
fn invalid_utf8_in_a_team_name_is_an_error_and_empty_lines_keep_line_numbers() {
    let csv = b"Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR\n\nE0,01/01/20,Ars\xFFnal,Chelsea,1,0,H\n\r\nE0,02/01/20,Leeds,Derby,0,x,A\n";
    let parsed = parse(csv);
    assert_eq!(
        errors(&parsed),
        vec![
            (3, Some("HomeTeam"), "text is not valid UTF-8".to_owned()),
            (
                5,
                Some("FTAG"),
                "invalid number \"x\": expected a whole number".to_owned()
            ),
        ]
    );
}

#[test]
fn an_unbalanced_quote_is_reported_at_its_row() {
    let csv = b"Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR\nE0,01/01/20,\"Arsenal,Chelsea,1,0,H\nE0,02/01/20,Leeds,Derby,0,1,A\n";
    let parsed = parse(csv);
    assert_eq!(
        errors(&parsed),
        vec![(
            2,
            None,
            "a field spans several lines (unbalanced quote?)".to_owned()
        )]
    );
}

#[test]
fn error_list_is_bounded_but_counted() {
    let mut csv = b"Div,Date,HomeTeam,AwayTeam\n".to_vec();
    for _ in 0..(MAX_REPORTED_ERRORS + 5) {
        csv.extend_from_slice(b"E0,bad,A,B\n");
    }
    let parsed = parse(&csv);
    assert_eq!(parsed.errors.len(), MAX_REPORTED_ERRORS);
    assert_eq!(parsed.error_count, MAX_REPORTED_ERRORS + 5);
    assert_eq!(
        parsed.errors[MAX_REPORTED_ERRORS - 1].line,
        MAX_REPORTED_ERRORS as u64 + 1
    );
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    // A deterministic sweep of byte soup built from the characters that matter to the parser.
    let alphabet = b",\"\r\n0123456789./:HDA \xEF\xBB\xBF\xFF";
    let header = b"Div,Date,Time,HomeTeam,AwayTeam,FTHG,FTAG,FTR,HTHG,HTAG,HTR,B365H,B365D,B365A\n";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2000 {
        let mut bytes = header.to_vec();
        for _ in 0..(state % 200) {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            bytes.push(alphabet[(state >> 33) as usize % alphabet.len()]);
        }
        let parsed = parse(&bytes);
        assert_eq!(
            parsed.data_rows,
            parsed.matches.len() + {
                let mut lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
                lines.dedup();
                lines.len()
            }
        );
    }
}

#[test]
fn team_names_normalise() {
    assert_eq!(normalise_team_name("  Man   United "), "man united");
    assert_eq!(normalise_team_name("Nott'm Forest"), "nott'm forest");
}

#[test]
fn a_zero_price_means_no_quote() {
    let csv = b"Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR,B365C>2.5,B365C<2.5,PSH,PSD,PSA\nE0,01/01/22,Leeds,Derby,0,1,A,0,0,2.1,3.4,3.5\n";
    let parsed = parse(csv);
    assert!(parsed.is_ok() && parsed.warnings.is_empty());
    assert!(parsed.matches[0].over_under_25.is_empty());
    assert_eq!(parsed.matches[0].odds_1x2.len(), 1);
}
