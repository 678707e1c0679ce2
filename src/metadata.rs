//! The three-way decision for collection properties (display name, colour, description,
//! order): the same rules as for items, on values instead of items.
//!
//! [`plan_property`] is pure. `None` means the property is absent on that side; the status
//! remembers the value both sides agreed on last time (`Some(None)`: agreed it is absent), or
//! nothing when the property was never synced.

use std::fmt;

use crate::config::{ConflictResolution, MetadataKey};
use crate::model::Side;

/// What to do with one property of one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyAction {
    /// Both sides and the status agree.
    Nothing,
    /// Both sides agree but the status does not know it yet: remember the value.
    Record(Option<String>),
    /// Write `value` on side `on` (absent: remove the property there).
    Set {
        /// The side to write.
        on: Side,
        /// The value to write.
        value: Option<String>,
    },
    /// Both sides changed the property differently.
    Conflict {
        /// Value on A.
        a: Option<String>,
        /// Value on B.
        b: Option<String>,
    },
}

/// Decides one property. With `a wins`/`b wins` a conflict becomes a `Set`.
pub fn plan_property(
    a: Option<&str>,
    b: Option<&str>,
    synced: Option<Option<&str>>,
    resolution: &ConflictResolution,
) -> PropertyAction {
    let owned = |v: Option<&str>| v.map(str::to_owned);
    match (a, b, synced) {
        // Same on both sides: remember it if the status does not already.
        (a, b, synced) if a == b => match synced {
            Some(s) if s == a => PropertyAction::Nothing,
            _ => PropertyAction::Record(owned(a)),
        },
        // Unchanged on A since the last sync: B's change goes to A.
        (a, b, Some(s)) if s == a => PropertyAction::Set {
            on: Side::A,
            value: owned(b),
        },
        // Unchanged on B: A's change goes to B.
        (a, b, Some(s)) if s == b => PropertyAction::Set {
            on: Side::B,
            value: owned(a),
        },
        // Removed (or never set) on A, set on B: a value beats an absence.
        (None, Some(b), _) => PropertyAction::Set {
            on: Side::A,
            value: Some(b.to_owned()),
        },
        // Removed (or never set) on B, set on A.
        (Some(a), None, _) => PropertyAction::Set {
            on: Side::B,
            value: Some(a.to_owned()),
        },
        // Changed differently on both sides (or set differently before any sync).
        (a, b, _) => match resolution {
            ConflictResolution::AWins => PropertyAction::Set {
                on: Side::B,
                value: owned(a),
            },
            ConflictResolution::BWins => PropertyAction::Set {
                on: Side::A,
                value: owned(b),
            },
            // A merge command merges items, not single values: the conflict stays open.
            ConflictResolution::Report | ConflictResolution::Command(_) => {
                PropertyAction::Conflict {
                    a: owned(a),
                    b: owned(b),
                }
            }
        },
    }
}

/// Decides one property in a one-way pair whose side `target` mirrors the other: the source's
/// value is copied whenever the two differ (no conflicts), and the source is never written.
pub fn plan_mirrored_property(
    a: Option<&str>,
    b: Option<&str>,
    synced: Option<Option<&str>>,
    target: Side,
) -> PropertyAction {
    if a == b {
        return match synced {
            Some(s) if s == a => PropertyAction::Nothing,
            _ => PropertyAction::Record(a.map(str::to_owned)),
        };
    }
    let source = match target {
        Side::A => b,
        Side::B => a,
    };
    PropertyAction::Set {
        on: target,
        value: source.map(str::to_owned),
    }
}

/// A property action with the property it concerns, for `--dry-run` and `-v`.
pub struct Described<'a>(pub MetadataKey, pub &'a PropertyAction);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.0.file_name();
        let show = |v: &Option<String>| match v {
            Some(v) => format!("{v:?}"),
            None => "(none)".to_owned(),
        };
        match self.1 {
            PropertyAction::Nothing => write!(f, "{key}: unchanged"),
            PropertyAction::Record(v) => {
                write!(f, "{key}: record {} (same on both sides)", show(v))
            }
            PropertyAction::Set { on, value } => {
                write!(
                    f,
                    "{key}: set {} on {on} (from {})",
                    show(value),
                    on.other()
                )
            }
            PropertyAction::Conflict { a, b } => {
                write!(f, "{key}: conflict: {} on a, {} on b", show(a), show(b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arm() {
        let report = ConflictResolution::Report;
        let set = |on, v: Option<&str>| PropertyAction::Set {
            on,
            value: v.map(str::to_owned),
        };
        #[rustfmt::skip]
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<Option<&'a str>>, PropertyAction);
        let table: Vec<Case> = vec![
            (
                "agreed, known",
                Some("Work"),
                Some("Work"),
                Some(Some("Work")),
                PropertyAction::Nothing,
            ),
            (
                "agreed, new",
                Some("Work"),
                Some("Work"),
                None,
                PropertyAction::Record(Some("Work".into())),
            ),
            (
                "both absent, new",
                None,
                None,
                None,
                PropertyAction::Record(None),
            ),
            (
                "changed on b",
                Some("Old"),
                Some("New"),
                Some(Some("Old")),
                set(Side::A, Some("New")),
            ),
            (
                "changed on a",
                Some("New"),
                Some("Old"),
                Some(Some("Old")),
                set(Side::B, Some("New")),
            ),
            (
                "removed on a",
                None,
                Some("Old"),
                Some(Some("Old")),
                set(Side::B, None),
            ),
            (
                "set on a, absent before",
                Some("Red"),
                None,
                Some(None),
                set(Side::B, Some("Red")),
            ),
            (
                "renamed on a, cleared on b",
                Some("New"),
                None,
                Some(Some("Old")),
                set(Side::B, Some("New")),
            ),
            (
                "cleared on a, renamed on b",
                None,
                Some("New"),
                Some(Some("Old")),
                set(Side::A, Some("New")),
            ),
            (
                "only on b before any sync",
                None,
                Some("B"),
                None,
                set(Side::A, Some("B")),
            ),
            (
                "changed differently",
                Some("X"),
                Some("Y"),
                Some(Some("Old")),
                PropertyAction::Conflict {
                    a: Some("X".into()),
                    b: Some("Y".into()),
                },
            ),
        ];
        for (case, a, b, synced, expected) in table {
            assert_eq!(plan_property(a, b, synced, &report), expected, "{case}");
        }
    }

    #[test]
    fn a_wins_and_b_wins_resolve() {
        let conflict = (Some("X"), Some("Y"), Some(Some("Old")));
        let a_wins = plan_property(
            conflict.0,
            conflict.1,
            conflict.2,
            &ConflictResolution::AWins,
        );
        assert_eq!(
            a_wins,
            PropertyAction::Set {
                on: Side::B,
                value: Some("X".into())
            }
        );
        let b_wins = plan_property(
            conflict.0,
            conflict.1,
            conflict.2,
            &ConflictResolution::BWins,
        );
        assert_eq!(
            b_wins,
            PropertyAction::Set {
                on: Side::A,
                value: Some("Y".into())
            }
        );
    }

    #[test]
    fn a_mirror_copies_from_its_source_only() {
        let set = |value: Option<&str>| PropertyAction::Set {
            on: Side::B,
            value: value.map(str::to_owned),
        };
        let synced = Some(Some("Old"));
        let table = [
            (
                "changed on the source",
                Some("New"),
                Some("Old"),
                set(Some("New")),
            ),
            (
                "changed on the target",
                Some("Old"),
                Some("Mine"),
                set(Some("Old")),
            ),
            (
                "changed on both",
                Some("New"),
                Some("Mine"),
                set(Some("New")),
            ),
            ("removed on the source", None, Some("Old"), set(None)),
            ("removed on the target", Some("Old"), None, set(Some("Old"))),
            (
                "unchanged",
                Some("Old"),
                Some("Old"),
                PropertyAction::Nothing,
            ),
        ];
        for (case, a, b, expected) in table {
            assert_eq!(
                plan_mirrored_property(a, b, synced, Side::B),
                expected,
                "{case}"
            );
        }
        // b-to-a: a mirrors b.
        assert_eq!(
            plan_mirrored_property(Some("Mine"), Some("Old"), synced, Side::A),
            PropertyAction::Set {
                on: Side::A,
                value: Some("Old".into())
            }
        );
        assert_eq!(
            plan_mirrored_property(Some("X"), Some("X"), None, Side::A),
            PropertyAction::Record(Some("X".into()))
        );
    }

    #[test]
    fn display_for_dry_run() {
        let action = PropertyAction::Set {
            on: Side::B,
            value: Some("Work".into()),
        };
        assert_eq!(
            Described(MetadataKey::DisplayName, &action).to_string(),
            r#"displayname: set "Work" on b (from a)"#
        );
    }
}
