//! Time fields: `first_seen`/`last_seen` (ISO 8601 with microseconds) and event dates.
//!
//! MISP stores `first_seen`/`last_seen` as int64 microseconds and renders them as
//! `2019-06-13T13:46:35.000000+00:00`; clients send many ISO 8601 variants, or epoch
//! seconds. We keep microseconds since the Unix epoch and always write MISP's form.

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;
use std::fmt;

/// Parses the forms MISP and its clients send for `first_seen`/`last_seen`.
///
/// Only years 0000 to 9999 (UTC): what [`format_seen`] writes back in MISP's
/// four-digit form, so every accepted value survives export and re-import.
pub fn parse_seen(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let utc = jiff::tz::TimeZone::UTC;
    let ts = if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        ts
    } else if let Some(ts) = t
        .parse::<jiff::civil::DateTime>()
        .ok()
        // No offset given: MISP interprets naive times as UTC.
        .and_then(|dt| dt.to_zoned_datetime(utc.clone()).ok())
        .map(|z| z.timestamp())
    {
        ts
    } else if let Ok(secs) = t.parse::<i64>() {
        jiff::Timestamp::from_second(secs).map_err(|_| format!("\"{s}\" is out of range"))?
    } else {
        return Err(format!("\"{s}\" is not an ISO 8601 date-time"));
    };
    if !(0..=9999).contains(&ts.to_zoned_datetime(utc).datetime().year()) {
        return Err(format!("\"{s}\" is out of range (years 0000 to 9999)"));
    }
    Ok(ts.as_microsecond())
}

/// Renders microseconds as MISP does: `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
pub fn format_seen(us: i64) -> String {
    match jiff::Timestamp::from_microsecond(us) {
        Ok(ts) => {
            let dt = ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).datetime();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.subsec_nanosecond() / 1000
            )
        }
        // Out of jiff's range can only come from a value we refused to parse; keep
        // something readable rather than panicking.
        Err(_) => us.to_string(),
    }
}

/// Checks an event `date` (`YYYY-MM-DD`), accepting a full timestamp and cutting it
/// down, as MISP's `Event::beforeValidate` does.
pub fn normalise_date(s: &str) -> Result<String, String> {
    let t = s.trim();
    let head = t.get(..10).unwrap_or(t);
    head.parse::<jiff::civil::Date>()
        .map(|d| d.to_string())
        .map_err(|_| format!("\"{s}\" is not a YYYY-MM-DD date"))
}

/// Today's date in UTC, the default for a new event without a `date`.
pub fn today() -> String {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}

pub(crate) fn de_opt_seen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an ISO 8601 date-time or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.trim().is_empty() {
                return Ok(None);
            }
            parse_seen(v).map(Some).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
    }
    d.deserialize_any(V)
}

pub(crate) fn ser_opt_seen<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(us) => s.serialize_str(&format_seen(*us)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_round_trip() {
        let us = parse_seen("2019-06-13T13:46:35.123456+00:00").unwrap();
        assert_eq!(format_seen(us), "2019-06-13T13:46:35.123456+00:00");
        let us2 = parse_seen("2019-06-13T15:46:35.123456+02:00").unwrap();
        assert_eq!(us, us2);
        assert_eq!(
            format_seen(parse_seen("2019-06-13T13:46:35").unwrap()),
            "2019-06-13T13:46:35.000000+00:00"
        );
        assert_eq!(parse_seen("1560433595").unwrap(), 1_560_433_595_000_000);
        assert!(parse_seen("yesterday").is_err());
    }

    /// Found by the `misp_event` fuzz target: epoch seconds past year 9999 were
    /// taken, then written as bare microseconds, and years before 0000 as
    /// `-9999-…`, neither of which any parser reads back (the event failed its
    /// own export round trip, and every peer refused it).
    #[test]
    fn seen_out_of_range_is_refused() {
        for s in [
            "6827888888882",
            "253402300800",
            "-377705116801",
            "-377705023201",
            "-62167219201",
            "9223372036854775807",
            "-000001-06-01T00:00:00Z",
            "-000001-06-01T00:00:00",
        ] {
            assert!(parse_seen(s).is_err(), "{s}");
        }
        for s in ["253402207200", "-62167219200", "0", "0000-01-01T00:00:00Z"] {
            let us = parse_seen(s).unwrap();
            assert_eq!(parse_seen(&format_seen(us)), Ok(us), "{s}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(normalise_date("2024-05-01").unwrap(), "2024-05-01");
        assert_eq!(normalise_date("2024-05-01 10:00:00").unwrap(), "2024-05-01");
        assert!(normalise_date("2024-13-01").is_err());
        assert!(normalise_date("01/05/2024").is_err());
    }
}
