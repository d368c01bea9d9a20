//! Parses the instant of a temporal query (`gavel audit as-of`): epoch millis,
//! or RFC 3339 such as `2026-11-23T12:00:00.250Z` / `...+01:00`. Hand-rolled
//! because it is the only date parsing the project needs.

use gavel_domain::Timestamp;

pub fn parse_instant(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(Timestamp::from_millis(millis));
    }
    rfc3339(text).ok_or_else(|| {
        format!("{text:?} is neither epoch millis nor RFC 3339 (2026-11-23T12:00:00.250Z)")
    })
}

fn rfc3339(text: &str) -> Option<Timestamp> {
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid || hour < 0 || minute < 0 || second < 0 {
        return None;
    }
    // Milliseconds: the first three fraction digits, right-padded.
    let millis = format!("{fraction:0<3}")[..3].parse::<i64>().ok()?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(Timestamp::from_millis(
        (seconds - offset_seconds(zone)?) * 1_000 + millis,
    ))
}

fn offset_seconds(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let (hours, minutes) = zone.get(1..)?.split_once(':')?;
    Some(sign * (hours.parse::<i64>().ok()? * 3_600 + minutes.parse::<i64>().ok()? * 60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_instant(text).unwrap().millis()
    }

    #[test]
    fn epoch_millis_and_rfc3339_agree() {
        assert_eq!(ms("1700000000123"), 1_700_000_000_123);
        assert_eq!(ms("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ms("2023-11-14T22:13:20.123Z"), 1_700_000_000_123);
        assert_eq!(ms("2023-11-14T23:13:20.1+01:00"), 1_700_000_000_100);
        assert_eq!(ms("2000-02-29T00:00:00Z"), 951_782_400_000);
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        for bad in [
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20",
            "",
        ] {
            let error = parse_instant(bad).unwrap_err();
            assert!(error.contains("RFC 3339"), "{error}");
        }
    }
}
