//! Watermarks of change-proportional plans (a table's `changed` column):
//! the high-water mark of each side's `changed` values at a sync, as a
//! [`Mark`], and the lower bound a later plan reads from. No I/O.
//!
//! A mark is a point in time (microseconds since the Unix epoch, for
//! timestamp columns and ISO 8601 text) or a plain number (integer
//! columns, read as Unix seconds for the margin). The bound is written back
//! in the kind of value the column holds, so the store compares it with the
//! column as it is (and an index on it serves the read).

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::value::Value;

/// The high-water mark of one side's `changed` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// A time, in microseconds since the Unix epoch (UTC).
    Micros(i64),
    /// A number (an integer column), read as seconds for the margin.
    Int(i64),
}

/// The marks of both sides of a pair for one table at a sync (`None`: that
/// side's table was empty), and when they were read (RFC 3339, UTC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watermark {
    pub source: Option<Mark>,
    pub target: Option<Mark>,
    pub taken_at: String,
}

/// Text timestamps Ferry reads as marks: ISO 8601 without an offset (or
/// with `Z`), a space or a `T` between date and time.
const TEXT_FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

impl Mark {
    /// The mark of a `changed` value; `None` when it is of a kind Ferry
    /// cannot order in time (say why with [`unsupported`]).
    pub fn of(v: &Value) -> Option<Mark> {
        match v {
            Value::Timestamp(t) => Some(Mark::Micros(t.and_utc().timestamp_micros())),
            Value::TimestampTz(t) => Some(Mark::Micros(t.timestamp_micros())),
            Value::Int(n) => Some(Mark::Int(*n)),
            Value::Text(s) => {
                let s = s.strip_suffix('Z').unwrap_or(s);
                TEXT_FORMATS
                    .iter()
                    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                    .map(|t| Mark::Micros(t.and_utc().timestamp_micros()))
            }
            _ => None,
        }
    }

    /// The mark moved back by `secs` seconds.
    pub fn minus(self, secs: i64) -> Mark {
        match self {
            Mark::Micros(m) => Mark::Micros(m.saturating_sub(secs.saturating_mul(1_000_000))),
            Mark::Int(n) => Mark::Int(n.saturating_sub(secs)),
        }
    }

    /// Whether two marks can be compared (both times, or both numbers).
    pub fn same_kind(self, other: Mark) -> bool {
        matches!(
            (self, other),
            (Mark::Micros(_), Mark::Micros(_)) | (Mark::Int(_), Mark::Int(_))
        )
    }

    /// The lower bound `changed >= bound` in the kind of `like` (a value
    /// the column holds): a timestamp, an integer, or text that sorts at or
    /// before every ISO 8601 text of a time at or after the mark (a space
    /// between date and time, which sorts before `T`). `None` when the
    /// kinds differ.
    pub fn bound(self, like: &Value) -> Option<Value> {
        match (self, like) {
            (Mark::Int(n), Value::Int(_)) => Some(Value::Int(n)),
            (Mark::Micros(m), Value::Timestamp(_)) => Some(Value::Timestamp(time(m)?.naive_utc())),
            (Mark::Micros(m), Value::TimestampTz(_)) => Some(Value::TimestampTz(time(m)?)),
            // One microsecond before, with six digits: every ISO 8601 text
            // of a time at or after the mark sorts after it, however many
            // digits its fraction has (or none).
            (Mark::Micros(m), Value::Text(_)) => Some(Value::Text(
                time(m.saturating_sub(1))?.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            )),
            _ => None,
        }
    }

    /// The text kept in `_ferry_watermarks` (`t:MICROS` or `i:NUMBER`).
    pub fn to_text(self) -> String {
        match self {
            Mark::Micros(m) => format!("t:{m}"),
            Mark::Int(n) => format!("i:{n}"),
        }
    }

    /// Reads [`Mark::to_text`] back; `None` when it does not hold one.
    pub fn from_text(text: &str) -> Option<Mark> {
        let (kind, n) = text.split_once(':')?;
        let n: i64 = n.parse().ok()?;
        match kind {
            "t" => Some(Mark::Micros(n)),
            "i" => Some(Mark::Int(n)),
            _ => None,
        }
    }
}

fn time(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

/// Why a `changed` value gives no mark, for the plan's note.
pub fn unsupported(v: &Value) -> String {
    match v {
        Value::Text(s) => {
            format!("its value `{s}` is not ISO 8601 text without an offset (YYYY-MM-DD HH:MM:SS[.ffffff])")
        }
        _ => "it is not a timestamp, ISO 8601 text or an integer column".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_marks_read_both_separators_and_bounds_sort_before_them() {
        let a = Mark::of(&Value::Text("2026-01-02 03:04:05.250000".into())).unwrap();
        let b = Mark::of(&Value::Text("2026-01-02T03:04:05.25Z".into())).unwrap();
        assert_eq!(a, b);
        let bound = a.minus(300).bound(&Value::Text(String::new())).unwrap();
        assert_eq!(bound, Value::Text("2026-01-02 02:59:05.249999".into()));
        let Value::Text(b) = &bound else { unreachable!() };
        for later in [
            "2026-01-02 02:59:05.25",
            "2026-01-02T02:59:05.25",
            "2026-01-02 02:59:05.250001",
            "2026-01-02 02:59:06",
            "2026-01-02 03:00",
        ] {
            assert!(later > b.as_str(), "{later} sorts before the bound {b}");
        }
        for earlier in ["2026-01-02 02:59:05.2", "2026-01-02 02:59:05", "2026-01-01T23:59:59.9"] {
            assert!(earlier < b.as_str(), "{earlier} sorts after the bound {b}");
        }
        assert_eq!(Mark::of(&Value::Text("yesterday".into())), None);
    }

    #[test]
    fn marks_round_trip_as_text_and_keep_their_kind() {
        for m in [Mark::Micros(-5), Mark::Micros(1_767_000_000_000_000), Mark::Int(42)] {
            assert_eq!(Mark::from_text(&m.to_text()), Some(m));
        }
        assert_eq!(Mark::from_text("x:1"), None);
        assert!(!Mark::Int(1).same_kind(Mark::Micros(1)));
        assert_eq!(Mark::Int(10).minus(3), Mark::Int(7));
        assert_eq!(Mark::Int(10).bound(&Value::Text(String::new())), None);
    }
}
