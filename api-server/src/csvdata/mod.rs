//! Parser for football-data.co.uk CSV files: bytes in, typed match records and row errors out.
//!
//! Pure: no database and no IO beyond the byte slice. It survives every quirk of the real files
//! (see `../shared/football-data/README.md`): a UTF-8 byte-order mark, CRLF and LF line endings
//! mixed, two date formats (`dd/mm/yy`, `dd/mm/yyyy`), pandas-resaved files with renamed
//! over/under headers and integers written as `8.0`, trailing empty columns, rows of only
//! commas, quoted fields with commas, and U+FFFD in referee names. Columns are read by header
//! name, so the changing column sets of the different eras need no configuration.
//!
//! Errors never stop the parse: every bad row is reported with its 1-based physical line number
//! (the header is line 1) and a reason, and the rest of the file is still read, so an importer
//! can reject the file with the complete list. Rows without a result are fixtures (scheduled
//! matches) and are not errors.
//!
//! ```
//! let csv = b"Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR\nE0,14/08/93,Arsenal,Coventry,0,3,A\n";
//! let parsed = fp_api_server::csvdata::parse(csv);
//! assert!(parsed.is_ok());
//! assert_eq!(parsed.matches[0].full_time.unwrap().away_goals, 3);
//! ```

mod bookmaker;
mod error;
mod fields;
mod header;
mod row;
mod types;

use std::collections::HashMap;

use csv::ByteRecord;
use serde::Serialize;

pub use bookmaker::Bookmaker;
pub use error::{Problem, RowError};
pub use fields::{parse_count, parse_date, parse_odds, parse_time};
pub use header::normalise_header;
pub use types::{MatchOutcome, MatchRecord, MatchStats, Odds1x2, OddsKind, OverUnder25, ScoreLine};

/// At most this many errors are kept (the count goes on); enough to fix a file, bounded memory.
pub const MAX_REPORTED_ERRORS: usize = 1000;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Everything read from one file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ParsedCsv {
    /// Rows that parsed completely, in file order.
    pub matches: Vec<MatchRecord>,
    /// The first [`MAX_REPORTED_ERRORS`] errors in line order.
    pub errors: Vec<RowError>,
    /// All errors, including those not kept in `errors`.
    pub error_count: usize,
    /// Problems that dropped one odds quote but kept the match (a price of `0.42`, a quote with
    /// one price missing): the first [`MAX_REPORTED_ERRORS`], in line order. Not a reason to
    /// reject the file; real files have a few.
    pub warnings: Vec<RowError>,
    pub warning_count: usize,
    /// Non-blank rows after the header (each is either a match or has at least one error).
    pub data_rows: usize,
    /// Rows whose cells are all empty (skipped).
    pub blank_rows: usize,
}

impl ParsedCsv {
    /// True when the file had no errors: import it. Otherwise reject it whole.
    pub fn is_ok(&self) -> bool {
        self.error_count == 0
    }

    fn push_warning(&mut self, warning: RowError) {
        self.warning_count += 1;
        if self.warnings.len() < MAX_REPORTED_ERRORS {
            self.warnings.push(warning);
        }
    }

    fn push_error(&mut self, error: RowError) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        }
    }
}

/// Normalised form of a team name, the key to match teams on: trimmed, inner whitespace
/// collapsed to one space, lower case.
pub fn normalise_team_name(name: &str) -> String {
    collapse_whitespace(name).to_lowercase()
}

/// The name as displayed: trimmed with inner whitespace collapsed to one space.
pub(crate) fn collapse_whitespace(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a whole file. Never panics; see the module docs.
pub fn parse(bytes: &[u8]) -> ParsedCsv {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let mut out = ParsedCsv::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = ByteRecord::new();
    let mut lines = LineLocator::new(bytes);

    let columns = match reader.read_byte_record(&mut record) {
        Ok(true) => {
            let line = lines.line_of(&record);
            let names: Vec<String> = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            match header::Columns::locate(names.iter().map(String::as_str)) {
                Ok(columns) => columns,
                Err(problems) => {
                    for problem in problems {
                        out.push_error(RowError::new(line, None, problem));
                    }
                    return out;
                }
            }
        }
        Ok(false) => {
            out.push_error(RowError::new(1, None, Problem::EmptyFile));
            return out;
        }
        Err(e) => {
            out.push_error(RowError::new(1, None, Problem::Csv(e.to_string())));
            return out;
        }
    };

    // (home key, away key) -> line of the first row with that pairing.
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // Reading from a slice only fails on malformed input the reader cannot resync
                // from; report where it stopped.
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                out.push_error(RowError::new(line, None, Problem::Csv(e.to_string())));
                break;
            }
        }
        if record.iter().all(|f| f.trim_ascii().is_empty()) {
            out.blank_rows += 1;
            continue;
        }
        out.data_rows += 1;
        let line = lines.line_of(&record);
        let parsed_row = row::parse_row(&record, line, &columns);
        parsed_row
            .warnings
            .into_iter()
            .for_each(|w| out.push_warning(w));
        match parsed_row.record {
            Ok(parsed) => {
                let key = (parsed.home_key.clone(), parsed.away_key.clone());
                if let Some(&first_line) = seen.get(&key) {
                    out.push_error(RowError::new(
                        line,
                        None,
                        Problem::DuplicateMatch {
                            home: parsed.home_team,
                            away: parsed.away_team,
                            first_line,
                        },
                    ));
                } else {
                    seen.insert(key, line);
                    out.matches.push(parsed);
                }
            }
            Err(errors) => errors.into_iter().for_each(|e| out.push_error(e)),
        }
    }
    out
}

/// Finds the physical line a record starts on. The csv reader's own line count skips empty lines
/// and its byte offset points just past the previous record's first terminator byte, so the
/// real start is found by skipping line-break bytes, and lines are counted here: `\n`, `\r\n`
/// and a lone `\r` each end one line.
struct LineLocator<'b> {
    bytes: &'b [u8],
    /// Bytes before `offset` contain `breaks` line breaks.
    offset: usize,
    breaks: u64,
}

impl<'b> LineLocator<'b> {
    fn new(bytes: &'b [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            breaks: 0,
        }
    }

    fn line_of(&mut self, record: &ByteRecord) -> u64 {
        let reported = record
            .position()
            .map_or(self.offset as u64, csv::Position::byte);
        self.line_at(reported)
    }

    /// The 1-based line of the first byte at or after `byte` that is not a line break.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while matches!(self.bytes.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        // Offsets only grow, so count forward from where the last call stopped.
        if start >= self.offset {
            for i in self.offset..start {
                let is_break = match self.bytes[i] {
                    b'\n' => true,
                    b'\r' => self.bytes.get(i + 1) != Some(&b'\n'),
                    _ => false,
                };
                self.breaks += u64::from(is_break);
            }
            self.offset = start;
        }
        self.breaks + 1
    }
}

#[cfg(test)]
mod tests;
