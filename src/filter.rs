//! What a storage's filters let into a sync: component types (`item_types`) and a date window
//! (`start_date`, `end_date`).
//!
//! An item a filter leaves out is *out of scope*: it is neither copied nor deleted on either
//! side. Nothing here reads the clock: a relative bound is resolved against the `today` the
//! caller passes in.

use std::fmt;
use std::str::FromStr;

use crate::vobject::{self, Component};

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
    /// The storage's own limit, already applied to `item_types`: kept to say why items of
    /// other types are left alone.
    pub limit: Option<ComponentLimit>,
}

/// The component types a storage can hold at all, whatever its `item_types` say, and who says
/// so: a Google calendar holds events only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentLimit {
    /// The types it holds (upper case).
    pub types: &'static [&'static str],
    /// Who sets the limit, for messages: "Google Calendar".
    pub holder: &'static str,
}

impl ItemFilter {
    /// Whether the filter lets every item through.
    pub fn is_empty(&self) -> bool {
        self.item_types.is_empty() && self.start.is_none() && self.end.is_none()
    }

    /// The filter of a storage that holds only `limit`'s types: its `item_types` become those
    /// of its own that the storage holds (all the storage holds, if it named none). `Err` with
    /// the types named when none is left, since an empty list would let everything through.
    pub fn limited(mut self, limit: ComponentLimit) -> Result<ItemFilter, String> {
        let holds = |t: &String| limit.types.iter().any(|l| l.eq_ignore_ascii_case(t));
        let kept: Vec<String> = match self.item_types.is_empty() {
            true => limit.types.iter().map(|t| (*t).to_owned()).collect(),
            false => self
                .item_types
                .iter()
                .filter(|t| holds(t))
                .cloned()
                .collect(),
        };
        if kept.is_empty() {
            return Err(format!(
                "{} holds only {}, none of [{}]",
                limit.holder,
                limit.types.join(", "),
                self.item_types.join(", ")
            ));
        }
        self.item_types = kept;
        self.limit = Some(limit);
        Ok(self)
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

impl ItemFilter {
    /// The date window this filter sets when the run happens on `today`.
    pub fn window(&self, today: CivilDate) -> Window {
        Window {
            start: self.start.map(|b| b.resolve(today).days_since_epoch()),
            end: self.end.map(|b| b.resolve(today).days_since_epoch()),
        }
    }
}

/// A resolved date window: the first and the last day in scope (days since 1970-01-01,
/// inclusive), `None` for no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// First day in scope.
    pub start: Option<i64>,
    /// Last day in scope.
    pub end: Option<i64>,
}

impl Window {
    /// Whether the window lets every item through.
    pub fn is_open(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// The days both windows let through: what both storages of a pair accept.
    pub fn intersect(self, other: Window) -> Window {
        let pick = |x: Option<i64>, y: Option<i64>, f: fn(i64, i64) -> i64| match (x, y) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        Window {
            start: pick(self.start, other.start, i64::max),
            end: pick(self.end, other.end, i64::min),
        }
    }

    /// Whether an item whose instances lie within `span` is in scope: some day of the span is
    /// a day of the window.
    pub fn admits(&self, span: Span) -> bool {
        let before = matches!((span.last, self.start), (Some(last), Some(start)) if last < start);
        let after = matches!((span.first, self.end), (Some(first), Some(end)) if first > end);
        !before && !after
    }

    /// How the status database remembers the window, to notice when it changed:
    /// `start..end`, a missing bound left empty.
    pub fn key(&self) -> String {
        let day = |d: Option<i64>| d.map(|d| CivilDate::from_days_since_epoch(d).to_string());
        format!(
            "{}..{}",
            day(self.start).unwrap_or_default(),
            day(self.end).unwrap_or_default()
        )
    }
}

/// The days an item's instances may touch (days since 1970-01-01, inclusive); `None` for no
/// bound. A superset: it may include days without an instance, never leave one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first day, `None` when unbounded (or unknown).
    pub first: Option<i64>,
    /// The last day, `None` when unbounded (or unknown).
    pub last: Option<i64>,
}

impl Span {
    /// Every day: an item without dates, or one whose dates cannot be read.
    pub const ALL: Span = Span {
        first: None,
        last: None,
    };

    fn union(self, other: Span) -> Span {
        let both = |x: Option<i64>, y: Option<i64>, f: fn(i64, i64) -> i64| Some(f(x?, y?));
        Span {
            first: both(self.first, other.first, i64::min),
            last: both(self.last, other.last, i64::max),
        }
    }
}

const DAY: i64 = 86_400;

/// A DATE or DATE-TIME value. A local time (with `TZID` or floating) is read as if it were UTC:
/// the day it falls on is then off by at most one, which [`Moment::days`] covers with a day's
/// margin on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Moment {
    /// Seconds since 1970-01-01T00:00:00 of the written wall-clock time.
    secs: i64,
    /// A DATE (a whole day) rather than a DATE-TIME.
    date: bool,
}

impl Moment {
    /// Parses `YYYYMMDD` or `YYYYMMDDTHHMMSS[Z]`.
    fn parse(text: &str) -> Option<Moment> {
        let text = text.trim();
        let digits = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = text.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let date = CivilDate::new(
            i32::try_from(digits(0..4)?).ok()?,
            u8::try_from(digits(4..6)?).ok()?,
            u8::try_from(digits(6..8)?).ok()?,
        )?;
        let day_secs = date.days_since_epoch() * DAY;
        if text.len() == 8 {
            return Some(Moment {
                secs: day_secs,
                date: true,
            });
        }
        let time = text.get(8..)?.strip_prefix(['T', 't'])?;
        let time = time.strip_suffix(['Z', 'z']).unwrap_or(time);
        if time.len() != 6 {
            return None;
        }
        let (h, m, s) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
        (h < 24 && m < 60 && s <= 60).then_some(Moment {
            secs: day_secs + h * 3600 + m * 60 + s,
            date: false,
        })
    }

    fn day(self) -> i64 {
        self.secs.div_euclid(DAY)
    }

    /// The days this moment may fall on wherever it is read: its day, and for a time of day
    /// the days before and after.
    fn days(self) -> (i64, i64) {
        let margin = i64::from(!self.date);
        (self.day() - margin, self.day() + margin)
    }
}

/// Seconds of an RFC 5545 DURATION (`P1D`, `PT1H30M`, `P2W`, `-PT15M`); `None` when unreadable.
fn duration_secs(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let (mut total, mut number, mut in_time, mut any) = (0i64, None::<i64>, false, false);
    for c in rest.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(i64::from(d))?,
            );
            continue;
        }
        let unit = match (c.to_ascii_uppercase(), in_time) {
            ('T', false) if number.is_none() => {
                in_time = true;
                continue;
            }
            ('W', false) => 7 * DAY,
            ('D', false) => DAY,
            ('H', true) => 3600,
            ('M', true) => 60,
            ('S', true) => 1,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
        any = true;
    }
    (any && number.is_none()).then_some(if negative { -total } else { total })
}

/// A DATE/DATE-TIME property's value, `None` when absent or unreadable.
fn moment(component: &Component, name: &str) -> Option<Moment> {
    component
        .property(name)
        .and_then(|p| Moment::parse(&p.value))
}

/// One occurrence: its start and, separately, how many days its end lies after its start's
/// last possible day.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    start: Moment,
    /// The last day it may touch, counted from `start.days().1`; `None` when unknown.
    extra_days: Option<i64>,
}

impl Occurrence {
    /// The occurrence `component` describes (its DTSTART, with its end from DTEND, DUE or
    /// DURATION); `None` without a readable start.
    fn of(component: &Component) -> Option<Occurrence> {
        let start = moment(component, "DTSTART").or(match component.name.as_str() {
            // A todo with a due date but no start is on its due date.
            "VTODO" => moment(component, "DUE"),
            _ => None,
        })?;
        let end = match component.name.as_str() {
            "VEVENT" => moment(component, "DTEND").map(End::Exclusive),
            "VTODO" => moment(component, "DUE").map(End::Inclusive),
            _ => None,
        };
        let end = end.or_else(|| {
            let duration = component.property("DURATION")?;
            let secs = duration_secs(&duration.value).map(|d| d.max(0));
            Some(match secs {
                Some(secs) => End::Exclusive(Moment {
                    secs: start.secs.saturating_add(secs),
                    date: start.date,
                }),
                None => End::Unknown,
            })
        });
        let start_last = start.days().1;
        let last = match end {
            // An all-day item without an end lasts its day, a timed one an instant.
            None => Some(start_last),
            Some(End::Exclusive(end)) if end.date => Some((end.day() - 1).max(start_last)),
            Some(End::Exclusive(end) | End::Inclusive(end)) => Some(end.days().1.max(start_last)),
            Some(End::Unknown) => None,
        };
        Some(Occurrence {
            start,
            extra_days: last.map(|last| last - start_last),
        })
    }

    /// The same occurrence moved to start at `start`.
    fn at(self, start: Moment) -> Occurrence {
        Occurrence { start, ..self }
    }

    fn span(self) -> Span {
        let (first, last) = self.start.days();
        Span {
            first: Some(first),
            last: self.extra_days.and_then(|extra| last.checked_add(extra)),
        }
    }
}

/// Where an occurrence ends.
enum End {
    /// DTEND or DTSTART + DURATION: the first moment after it (for a DATE, the day after).
    Exclusive(Moment),
    /// DUE of a todo: the day it is due is in.
    Inclusive(Moment),
    /// A DURATION that cannot be read.
    Unknown,
}

/// The start of the last occurrence an RRULE can make from `start`, or `None` when it
/// repeats forever or its end cannot be bounded cheaply (which is safe: the span then has no
/// end).
fn last_rule_start(rule: &str, start: Moment) -> Option<Moment> {
    let mut freq = None;
    let (mut interval, mut count, mut until, mut by_parts) = (1i64, None, None, false);
    for part in rule.split(';') {
        let (key, value) = part.split_once('=')?;
        match key.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(value.trim().to_ascii_uppercase()),
            "INTERVAL" => interval = value.trim().parse().ok().filter(|n| *n >= 1)?,
            "COUNT" => count = Some(value.trim().parse::<i64>().ok().filter(|n| *n >= 1)?),
            "UNTIL" => until = Some(Moment::parse(value)?),
            key if key.starts_with("BY") => by_parts = true,
            _ => {}
        }
    }
    if let Some(until) = until {
        // No occurrence starts after UNTIL, whatever the BY parts do.
        return Some(until);
    }
    // COUNT occurrences, one per period, unless BY parts make several (or none) per period:
    // then the last one cannot be placed without expanding the rule.
    let steps = count?.checked_sub(1)?.checked_mul(interval)?;
    if by_parts {
        return None;
    }
    let fixed = |unit: i64| {
        Some(Moment {
            secs: start.secs.checked_add(steps.checked_mul(unit)?)?,
            date: start.date,
        })
    };
    let months = |per_step: i64| {
        let day = CivilDate::from_days_since_epoch(start.day());
        // A month without the start's day (the 31st, February 29) is skipped, not clamped:
        // counting those is expansion again.
        if day.day > 28 {
            return None;
        }
        let moved = day.add_months(steps.checked_mul(per_step)?);
        Some(Moment {
            secs: (moved.days_since_epoch() - start.day())
                .checked_mul(DAY)?
                .checked_add(start.secs)?,
            date: start.date,
        })
    };
    match freq?.as_str() {
        "SECONDLY" => fixed(1),
        "MINUTELY" => fixed(60),
        "HOURLY" => fixed(3600),
        "DAILY" => fixed(DAY),
        "WEEKLY" => fixed(7 * DAY),
        "MONTHLY" => months(1),
        "YEARLY" => months(12),
        _ => None,
    }
}

/// The days an iCalendar object's occurrences may touch: each VEVENT, VTODO and VJOURNAL from
/// its start to its end (DTEND, DUE or DURATION), a recurring one from its first to its last
/// possible occurrence (RRULE with UNTIL or COUNT, RDATE, overrides; an endless rule has no
/// last day). An item without dates (a todo without DTSTART and DUE, a vCard) is [`Span::ALL`],
/// and so is one whose dates cannot be read: a filter never leaves out what it cannot place.
pub fn item_span(bytes: &[u8]) -> Span {
    /// What [`Occurrence::of`] and the loop below read.
    const DATE_PROPERTIES: &[&str] = &["DTSTART", "DTEND", "DUE", "DURATION", "RRULE", "RDATE"];
    let mut span: Option<Span> = None;
    for component in vobject::calendar_components(bytes, DATE_PROPERTIES) {
        if !matches!(component.name.as_str(), "VEVENT" | "VTODO" | "VJOURNAL") {
            continue;
        }
        let Some(occurrence) = Occurrence::of(&component) else {
            return Span::ALL;
        };
        let mut this = occurrence.span();
        for property in &component.properties {
            match property.name.as_str() {
                "RRULE" => {
                    let last = last_rule_start(&property.value, occurrence.start);
                    this = this.union(match last {
                        Some(last) => occurrence.at(last).span(),
                        None => Span {
                            first: this.first,
                            last: None,
                        },
                    });
                }
                "RDATE" => {
                    let period = property.param("VALUE") == Some("PERIOD");
                    for value in property.value.split(',') {
                        let (start, end) = match value.split_once('/') {
                            Some((start, end)) => (start, Some(end)),
                            None => (value, None),
                        };
                        let Some(start) = Moment::parse(start) else {
                            return Span::ALL;
                        };
                        let mut extra = occurrence.at(start);
                        if let (true, Some(end)) = (period, end) {
                            let end = Moment::parse(end).or_else(|| {
                                Some(Moment {
                                    secs: start.secs.checked_add(duration_secs(end)?)?,
                                    date: false,
                                })
                            });
                            extra.extra_days =
                                end.map(|end| (end.days().1 - start.days().1).max(0));
                        }
                        this = this.union(extra.span());
                    }
                }
                _ => {}
            }
        }
        span = Some(span.map_or(this, |s| s.union(this)));
    }
    span.unwrap_or(Span::ALL)
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

    /// A VCALENDAR holding `components`, each given as its content lines.
    fn calendar(components: &[(&str, &[&str])]) -> Vec<u8> {
        let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
        text.push_str(
            "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n\
             DTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n\
             END:STANDARD\r\nEND:VTIMEZONE\r\n",
        );
        for (name, lines) in components {
            text.push_str(&format!("BEGIN:{name}\r\nUID:u\r\n"));
            for line in *lines {
                text.push_str(line);
                text.push_str("\r\n");
            }
            text.push_str(&format!("END:{name}\r\n"));
        }
        text.push_str("END:VCALENDAR\r\n");
        text.into_bytes()
    }

    fn day(y: i32, m: u8, d: u8) -> Option<i64> {
        Some(date(y, m, d).days_since_epoch())
    }

    fn span(first: Option<i64>, last: Option<i64>) -> Span {
        Span { first, last }
    }

    #[test]
    fn spans_of_single_items() {
        let cases: Vec<(&str, Vec<u8>, Span)> = vec![
            (
                "all-day event, DTEND exclusive",
                calendar(&[(
                    "VEVENT",
                    &["DTSTART;VALUE=DATE:20260105", "DTEND;VALUE=DATE:20260107"],
                )]),
                span(day(2026, 1, 5), day(2026, 1, 6)),
            ),
            (
                "all-day event without end lasts its day",
                calendar(&[("VEVENT", &["DTSTART;VALUE=DATE:20260105"])]),
                span(day(2026, 1, 5), day(2026, 1, 5)),
            ),
            (
                "UTC times get a day's margin",
                calendar(&[(
                    "VEVENT",
                    &["DTSTART:20260105T100000Z", "DTEND:20260105T110000Z"],
                )]),
                span(day(2026, 1, 4), day(2026, 1, 6)),
            ),
            (
                "TZID local times are read as UTC with the margin",
                calendar(&[(
                    "VEVENT",
                    &[
                        "DTSTART;TZID=Europe/Berlin:20260105T233000",
                        "DURATION:PT2H",
                    ],
                )]),
                span(day(2026, 1, 4), day(2026, 1, 7)),
            ),
            (
                "all-day DURATION",
                calendar(&[("VEVENT", &["DTSTART;VALUE=DATE:20260105", "DURATION:P1W"])]),
                span(day(2026, 1, 5), day(2026, 1, 11)),
            ),
            (
                "an alarm's trigger does not count",
                calendar(&[(
                    "VEVENT",
                    &[
                        "DTSTART;VALUE=DATE:20260105",
                        "BEGIN:VALARM",
                        "TRIGGER;VALUE=DATE-TIME:20300101T000000Z",
                        "ACTION:DISPLAY",
                        "END:VALARM",
                    ],
                )]),
                span(day(2026, 1, 5), day(2026, 1, 5)),
            ),
            (
                "todo from DTSTART to DUE",
                calendar(&[(
                    "VTODO",
                    &["DTSTART;VALUE=DATE:20260105", "DUE;VALUE=DATE:20260110"],
                )]),
                span(day(2026, 1, 5), day(2026, 1, 10)),
            ),
            (
                "todo with DUE only",
                calendar(&[("VTODO", &["DUE;VALUE=DATE:20260110"])]),
                span(day(2026, 1, 10), day(2026, 1, 10)),
            ),
            (
                "todo without dates is everywhere",
                calendar(&[("VTODO", &["SUMMARY:buy milk"])]),
                Span::ALL,
            ),
            (
                "journal on its DTSTART",
                calendar(&[("VJOURNAL", &["DTSTART;VALUE=DATE:20260105"])]),
                span(day(2026, 1, 5), day(2026, 1, 5)),
            ),
            (
                "unreadable DTSTART is everywhere",
                calendar(&[("VEVENT", &["DTSTART:2026-01-05"])]),
                Span::ALL,
            ),
            (
                "unreadable DURATION has no end",
                calendar(&[("VEVENT", &["DTSTART;VALUE=DATE:20260105", "DURATION:soon"])]),
                span(day(2026, 1, 5), None),
            ),
            (
                "a vCard has no dates",
                b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nBDAY:19800101\r\nEND:VCARD\r\n".to_vec(),
                Span::ALL,
            ),
        ];
        for (what, bytes, expected) in cases {
            assert_eq!(item_span(&bytes), expected, "{what}");
        }
    }

    #[test]
    fn spans_of_recurring_items() {
        let start = "DTSTART;VALUE=DATE:20260105";
        let cases: Vec<(&str, Vec<u8>, Span)> = vec![
            (
                "endless rule",
                calendar(&[("VEVENT", &[start, "RRULE:FREQ=WEEKLY"])]),
                span(day(2026, 1, 5), None),
            ),
            (
                "UNTIL bounds the last start",
                calendar(&[(
                    "VEVENT",
                    &[start, "DURATION:P2D", "RRULE:FREQ=DAILY;UNTIL=20260301"],
                )]),
                span(day(2026, 1, 5), day(2026, 3, 2)),
            ),
            (
                "UNTIL holds whatever the BY parts",
                calendar(&[(
                    "VEVENT",
                    &[
                        start,
                        "RRULE:FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20261231T235959Z",
                    ],
                )]),
                span(day(2026, 1, 5), day(2027, 1, 1)),
            ),
            (
                "COUNT and INTERVAL, weekly",
                calendar(&[("VEVENT", &[start, "RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=3"])]),
                span(day(2026, 1, 5), day(2026, 2, 2)),
            ),
            (
                "COUNT, monthly on a day every month has",
                calendar(&[("VEVENT", &[start, "RRULE:FREQ=MONTHLY;COUNT=13"])]),
                span(day(2026, 1, 5), day(2027, 1, 5)),
            ),
            (
                "COUNT, yearly",
                calendar(&[("VEVENT", &[start, "RRULE:FREQ=YEARLY;COUNT=3"])]),
                span(day(2026, 1, 5), day(2028, 1, 5)),
            ),
            (
                "COUNT, monthly on the 31st skips months: no end",
                calendar(&[(
                    "VEVENT",
                    &["DTSTART;VALUE=DATE:20260131", "RRULE:FREQ=MONTHLY;COUNT=3"],
                )]),
                span(day(2026, 1, 31), None),
            ),
            (
                "COUNT with BY parts: no end",
                calendar(&[(
                    "VEVENT",
                    &[start, "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=2"],
                )]),
                span(day(2026, 1, 5), None),
            ),
            (
                "unreadable rule: no end",
                calendar(&[("VEVENT", &[start, "RRULE:FREQ=DAILY;COUNT=many"])]),
                span(day(2026, 1, 5), None),
            ),
            (
                "RDATE before and after",
                calendar(&[("VEVENT", &[start, "RDATE;VALUE=DATE:20251201,20260601"])]),
                span(day(2025, 12, 1), day(2026, 6, 1)),
            ),
            (
                "RDATE periods",
                calendar(&[(
                    "VEVENT",
                    &[
                        "DTSTART:20260105T100000Z",
                        "RDATE;VALUE=PERIOD:20260601T100000Z/P3D",
                    ],
                )]),
                span(day(2026, 1, 4), day(2026, 6, 5)),
            ),
            (
                "an override moved far away counts",
                calendar(&[
                    ("VEVENT", &[start, "RRULE:FREQ=DAILY;COUNT=2"]),
                    (
                        "VEVENT",
                        &[
                            "RECURRENCE-ID;VALUE=DATE:20260106",
                            "DTSTART;VALUE=DATE:20260901",
                        ],
                    ),
                ]),
                span(day(2026, 1, 5), day(2026, 9, 1)),
            ),
        ];
        for (what, bytes, expected) in cases {
            assert_eq!(item_span(&bytes), expected, "{what}");
        }
    }

    #[test]
    fn windows_admit_overlapping_spans() {
        let window = Window {
            start: day(2026, 1, 10),
            end: day(2026, 1, 20),
        };
        let cases = [
            (span(day(2026, 1, 1), day(2026, 1, 9)), false),
            (span(day(2026, 1, 1), day(2026, 1, 10)), true),
            (span(day(2026, 1, 20), day(2026, 1, 25)), true),
            (span(day(2026, 1, 21), day(2026, 1, 25)), false),
            (span(day(2020, 1, 1), None), true),
            (span(day(2027, 1, 1), None), false),
            (Span::ALL, true),
        ];
        for (span, admitted) in cases {
            assert_eq!(window.admits(span), admitted, "{span:?}");
        }
        assert!(Window::default().admits(span(day(1900, 1, 1), day(1900, 1, 1))));
        let narrower = Window {
            start: day(2026, 1, 15),
            end: None,
        };
        assert_eq!(
            window.intersect(narrower),
            Window {
                start: day(2026, 1, 15),
                end: day(2026, 1, 20)
            }
        );
        assert_eq!(window.key(), "2026-01-10..2026-01-20");
        assert_eq!(narrower.key(), "2026-01-15..");
    }

    #[test]
    fn a_limited_storage_keeps_only_the_types_it_holds() {
        let google = ComponentLimit {
            types: &["VEVENT"],
            holder: "Google Calendar",
        };
        let types = |names: &[&str]| ItemFilter {
            item_types: names.iter().map(|n| (*n).to_owned()).collect(),
            ..ItemFilter::default()
        };
        let all = types(&[]).limited(google).expect("limited");
        assert_eq!(all.item_types, ["VEVENT"]);
        assert_eq!(all.limit, Some(google));
        let both = types(&["VTODO", "vevent"])
            .limited(google)
            .expect("limited");
        assert_eq!(both.item_types, ["vevent"]);
        let error = types(&["VTODO"]).limited(google).expect_err("nothing left");
        assert_eq!(error, "Google Calendar holds only VEVENT, none of [VTODO]");
    }

    #[test]
    fn a_recurring_series_from_before_the_window_is_in_it() {
        let filter = ItemFilter {
            item_types: Vec::new(),
            start: Some("-30d".parse().expect("bound")),
            end: Some("+1y".parse().expect("bound")),
            limit: None,
        };
        let window = filter.window(date(2026, 12, 5));
        let weekly = calendar(&[(
            "VEVENT",
            &["DTSTART:20200106T090000", "RRULE:FREQ=WEEKLY;BYDAY=MO"],
        )]);
        let ended = calendar(&[(
            "VEVENT",
            &[
                "DTSTART:20200106T090000",
                "RRULE:FREQ=WEEKLY;UNTIL=20201231T000000Z",
            ],
        )]);
        assert!(window.admits(item_span(&weekly)));
        assert!(!window.admits(item_span(&ended)));
    }

    #[test]
    fn durations() {
        let cases = [
            ("PT1H30M", Some(5400)),
            ("P1W", Some(7 * DAY)),
            ("P1DT1S", Some(DAY + 1)),
            ("-PT15M", Some(-900)),
            ("P", None),
            ("PT", None),
            ("P1H", None),
            ("1D", None),
            ("P1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(duration_secs(text), expected, "{text}");
        }
    }
}
