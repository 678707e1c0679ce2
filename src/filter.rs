//! What a storage's filters let into a sync: component types (`item_types`) and a date window
//! (`start_date`, `end_date`).
//!
//! An item a filter leaves out is *out of scope*: it is neither copied nor deleted on either
//! side. Nothing here reads the clock: a relative bound is resolved against the `today` the
//! caller passes in.

use std::fmt;
use std::str::FromStr;

/// The filters of one storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFilter {
    /// Component types (`VEVENT`, `VTODO`, `VJOURNAL`) the storage is restricted to; empty for
    /// all.
    pub item_types: Vec<String>,
    /// Items entirely before this day are out of scope.
    pub start: Option<DateBound>,
    /// Items starting after this day are out of scope.
    pub end: Option<DateBound>,
}

impl ItemFilter {
    /// Whether the filter lets every item through.
    pub fn is_empty(&self) -> bool {
        self.item_types.is_empty() && self.start.is_none() && self.end.is_none()
    }
}

/// A day in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate {
    /// The year, such as 2026.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u8,
    /// The day of the month, 1 to 31 (valid for the month).
    pub day: u8,
}

impl CivilDate {
    /// The date if `year`, `month` and `day` name a real day.
    pub fn new(year: i32, month: u8, day: u8) -> Option<CivilDate> {
        let valid = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        valid.then_some(CivilDate { year, month, day })
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let year = i64::from(self.year) - i64::from(self.month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month = i64::from(self.month);
        let day_of_year =
            (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> CivilDate {
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        CivilDate {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        }
    }

    /// This date moved by `months` calendar months, the day clamped to the new month's length
    /// (January 31 + 1 month = February 28 or 29).
    pub fn add_months(self, months: i64) -> CivilDate {
        let index = i64::from(self.year) * 12 + i64::from(self.month) - 1 + months;
        let year = i32::try_from(index.div_euclid(12)).unwrap_or(i32::MAX);
        let month = u8::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
        let day = self.day.min(days_in_month(year, month));
        CivilDate { year, month, day }
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// The unit of a relative [`DateBound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateUnit {
    /// `d`
    Days,
    /// `w`
    Weeks,
    /// `m`: calendar months.
    Months,
    /// `y`: calendar years.
    Years,
}

/// One end of a date window as configured: a fixed day (`"2026-01-01"`) or a day relative to
/// the day of the run (`"-30d"`, `"+1y"`; units `d`, `w`, `m`, `y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateBound {
    /// A fixed day.
    Absolute(CivilDate),
    /// `amount` units from the day of the run (negative: in the past).
    Relative {
        /// How many units, with sign.
        amount: i64,
        /// Which unit.
        unit: DateUnit,
    },
}

impl DateBound {
    /// The day this bound stands for when the run happens on `today`.
    pub fn resolve(self, today: CivilDate) -> CivilDate {
        match self {
            DateBound::Absolute(date) => date,
            DateBound::Relative { amount, unit } => match unit {
                DateUnit::Days => {
                    CivilDate::from_days_since_epoch(today.days_since_epoch() + amount)
                }
                DateUnit::Weeks => {
                    CivilDate::from_days_since_epoch(today.days_since_epoch() + 7 * amount)
                }
                DateUnit::Months => today.add_months(amount),
                DateUnit::Years => today.add_months(12 * amount),
            },
        }
    }
}

/// Longest relative amount accepted, in any unit (about 27 centuries of days).
const MAX_RELATIVE_AMOUNT: i64 = 1_000_000;

impl FromStr for DateBound {
    type Err = String;

    /// Parses `YYYY-MM-DD` or a signed relative amount such as `-30d`, `+2w`, `-6m`, `+1y`.
    fn from_str(text: &str) -> Result<DateBound, String> {
        let expected = "expected a date such as \"2026-01-31\" or a relative one such as \
                        \"-30d\", \"+2w\", \"-6m\" or \"+1y\"";
        if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-') {
            let body = &text[1..];
            let (digits, unit) = body.split_at(body.len().saturating_sub(1));
            let unit = match unit {
                "d" => DateUnit::Days,
                "w" => DateUnit::Weeks,
                "m" => DateUnit::Months,
                "y" => DateUnit::Years,
                _ => return Err(format!("invalid date {text:?}: {expected}")),
            };
            let amount: i64 = digits
                .parse()
                .ok()
                .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
                .filter(|n| *n <= MAX_RELATIVE_AMOUNT)
                .ok_or_else(|| format!("invalid date {text:?}: {expected}"))?;
            let amount = if sign == '-' { -amount } else { amount };
            return Ok(DateBound::Relative { amount, unit });
        }
        let parts: Vec<&str> = text.split('-').collect();
        let date = match parts.as_slice() {
            [y, m, d]
                if y.len() == 4
                    && m.len() == 2
                    && d.len() == 2
                    && text.bytes().all(|b| b.is_ascii_digit() || b == b'-') =>
            {
                match (y.parse(), m.parse(), d.parse()) {
                    (Ok(y), Ok(m), Ok(d)) => CivilDate::new(y, m, d),
                    _ => None,
                }
            }
            _ => None,
        };
        date.map(DateBound::Absolute)
            .ok_or_else(|| format!("invalid date {text:?}: {expected}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u8, d: u8) -> CivilDate {
        CivilDate::new(y, m, d).expect("valid date")
    }

    #[test]
    fn days_since_epoch_round_trips() {
        assert_eq!(date(1970, 1, 1).days_since_epoch(), 0);
        assert_eq!(date(2000, 3, 1).days_since_epoch(), 11_017);
        assert_eq!(date(1969, 12, 31).days_since_epoch(), -1);
        for days in [-800_000, -1, 0, 1, 11_017, 20_000, 60_000] {
            let civil = CivilDate::from_days_since_epoch(days);
            assert_eq!(civil.days_since_epoch(), days, "{civil}");
        }
    }

    #[test]
    fn parses_absolute_and_relative_bounds() {
        let cases = [
            ("2026-01-31", Ok(DateBound::Absolute(date(2026, 1, 31)))),
            (
                "-30d",
                Ok(DateBound::Relative {
                    amount: -30,
                    unit: DateUnit::Days,
                }),
            ),
            (
                "+1y",
                Ok(DateBound::Relative {
                    amount: 1,
                    unit: DateUnit::Years,
                }),
            ),
            ("2026-02-30", Err(())),
            ("2026-1-1", Err(())),
            ("30d", Err(())),
            ("-d", Err(())),
            ("+1x", Err(())),
            ("-+1d", Err(())),
            ("", Err(())),
        ];
        for (text, expected) in cases {
            let parsed = text.parse::<DateBound>().map_err(|_| ());
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn resolves_relative_bounds_against_today() {
        let today = date(2026, 3, 31);
        let resolve = |text: &str| text.parse::<DateBound>().map(|b| b.resolve(today));
        assert_eq!(resolve("-30d"), Ok(date(2026, 3, 1)));
        assert_eq!(resolve("+2w"), Ok(date(2026, 4, 14)));
        assert_eq!(resolve("-1m"), Ok(date(2026, 2, 28)));
        assert_eq!(resolve("+1y"), Ok(date(2027, 3, 31)));
        assert_eq!(resolve("2020-01-01"), Ok(date(2020, 1, 1)));
    }
}
