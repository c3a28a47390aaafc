//! Dates as the plugin reads and prints them.
//!
//! Read (`--expires`): a day `2027-06-30` (its start, 00:00:00 UTC, as `examples/` writes
//! expiration dates), an RFC 3339 date-time in the grammar admission takes
//! (`2027-06-30T00:00:00Z`, `2027-06-30T12:00:00+02:00`; see `api::grammar`), or a time from now:
//! `+90d`, `+2w`, `+36h` (days, weeks, hours; whole seconds). Printed: the exact instant in UTC
//! with the time from now beside it, `2027-06-30T00:00:00Z (in 121 days)`.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};

use crate::api::grammar;

/// Reads a date as `--expires` takes it, relative forms counted from `now`.
pub fn parse_date(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let value = value.trim();
    if let Some(relative) = value.strip_prefix('+') {
        return parse_relative(relative)
            .map(|delta| whole_seconds(now + delta))
            .ok_or_else(|| {
                format!("{value:?} is not a time from now of the form +90d, +2w or +36h")
            });
    }
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        && value.len() == 10
    {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    grammar::parse_date_time(value).map_err(|_| {
        format!(
            "{value:?} is not a date: write 2027-06-30, an RFC 3339 date-time such as \
             2027-06-30T00:00:00Z, or a time from now such as +90d"
        )
    })
}

/// `90d`, `2w`, `36h`: a positive whole number and its unit.
fn parse_relative(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let number: i64 = value[..value.len() - unit.len_utf8()].parse().ok()?;
    if number <= 0 || number > 100 * 366 {
        return None;
    }
    match unit {
        'd' => Some(Duration::days(number)),
        'w' => Some(Duration::weeks(number)),
        'h' => Some(Duration::hours(number)),
        _ => None,
    }
}

fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).expect("in range")
}

/// A date that must lie after `now` (an expiration date): refused with the reason otherwise.
pub fn parse_future_date(
    flag: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let at = parse_date(value, now).map_err(|why| format!("{flag}: {why}"))?;
    if at <= now {
        return Err(format!(
            "{flag}: {} lies in the past ({}); an expiration date must lie in the future",
            exact(at),
            relative(at, now)
        ));
    }
    Ok(at)
}

/// The instant in UTC, RFC 3339 with whole seconds (`2027-06-30T00:00:00Z`).
pub fn exact(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The exact instant and its distance from `now`: `2027-06-30T00:00:00Z (in 121 days)`.
pub fn exact_and_relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", exact(at), relative(at, now))
}

/// `in 3 days`, `2 hours ago`, `now`: days and hours under a week, days beyond.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = at - now;
    let span = span(delta.abs());
    if span.is_empty() {
        "now".into()
    } else if delta > Duration::zero() {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// `3 days 4 hours`, `45 minutes`; empty under a minute. Rounded to the unit shown: a trial
/// made a second ago ends "in 14 days", not 13.
fn span(delta: Duration) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let minutes = (delta.num_seconds() + 30) / 60;
    if minutes == 0 {
        return String::new();
    }
    if minutes < 60 {
        return plural(minutes, "minute");
    }
    let hours = (minutes + 30) / 60;
    if hours < 24 {
        return plural(hours, "hour");
    }
    if hours < 7 * 24 {
        let (days, hours) = (hours / 24, hours % 24);
        return match hours {
            0 => plural(days, "day"),
            h => format!("{} {}", plural(days, "day"), plural(h, "hour")),
        };
    }
    plural((hours + 12) / 24, "day")
}

/// Days left until `at`, as the `list` table shows them: started days (`14d` for a trial made a
/// second ago, `1d` on its last day), or `expired`.
pub fn days_left(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at <= now {
        return "expired".into();
    }
    let seconds = (at - now).num_seconds();
    format!("{}d", (seconds + 86_399) / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2027-03-01T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_day_a_date_time_or_a_time_from_now() {
        for (value, expected) in [
            ("2027-06-30", "2027-06-30T00:00:00Z"),
            ("2027-06-30T00:00:00Z", "2027-06-30T00:00:00Z"),
            ("2027-06-30T12:00:00+02:00", "2027-06-30T10:00:00Z"),
            ("+90d", "2027-05-30T09:00:00Z"),
            ("+2w", "2027-03-15T09:00:00Z"),
            ("+36h", "2027-03-02T21:00:00Z"),
            (" 2027-06-30 ", "2027-06-30T00:00:00Z"),
        ] {
            assert_eq!(
                exact(parse_date(value, now()).unwrap()),
                expected,
                "{value}"
            );
        }
        for value in [
            "",
            "2027-6-30",
            "2027-02-30",
            "30/06/2027",
            "2027-06-30T00:00",
            "+90",
            "+d",
            "+0d",
            "+-3d",
            "+3y",
            "tomorrow",
        ] {
            assert!(parse_date(value, now()).is_err(), "{value}");
        }
    }

    #[test]
    fn an_expiration_date_must_lie_ahead() {
        let refused = parse_future_date("--expires", "2020-01-01", now()).unwrap_err();
        assert_eq!(
            refused,
            "--expires: 2020-01-01T00:00:00Z lies in the past (2616 days ago); an expiration \
             date must lie in the future"
        );
        let malformed = parse_future_date("--expires", "soon", now()).unwrap_err();
        assert!(
            malformed.starts_with("--expires: \"soon\" is not a date"),
            "{malformed}"
        );
        assert!(parse_future_date("--expires", "+1d", now()).is_ok());
    }

    #[test]
    fn instants_print_exact_and_relative() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        for (when, expected) in [
            ("2027-03-01T09:00:29Z", "now"),
            ("2027-03-01T09:45:00Z", "in 45 minutes"),
            ("2027-03-01T10:00:00Z", "in 1 hour"),
            ("2027-03-02T09:00:00Z", "in 1 day"),
            ("2027-03-04T13:00:00Z", "in 3 days 4 hours"),
            ("2027-03-15T09:00:00Z", "in 14 days"),
            ("2027-03-15T08:00:00Z", "in 14 days"),
            ("2027-03-14T20:00:00Z", "in 13 days"),
            ("2027-03-01T10:29:00Z", "in 1 hour"),
            ("2027-03-01T10:31:00Z", "in 2 hours"),
            ("2027-03-04T12:59:00Z", "in 3 days 4 hours"),
            ("2027-02-26T09:00:00Z", "3 days ago"),
        ] {
            assert_eq!(relative(at(when), now()), expected, "{when}");
        }
        assert_eq!(
            exact_and_relative(at("2027-06-30T00:00:00Z"), now()),
            "2027-06-30T00:00:00Z (in 121 days)"
        );
        assert_eq!(days_left(at("2027-03-15T09:00:00Z"), now()), "14d");
        assert_eq!(days_left(at("2027-03-15T08:59:59Z"), now()), "14d");
        assert_eq!(days_left(at("2027-03-01T20:00:00Z"), now()), "1d");
        assert_eq!(days_left(at("2027-03-01T09:00:00Z"), now()), "expired");
    }
}
