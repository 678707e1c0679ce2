//! The three-way planner: status + listing of A + listing of B → actions.
//!
//! [`plan`] is a pure function: no I/O, no database, no clock. Everything it needs was listed and
//! fetched before, so the same inputs always give the same plan, and `--dry-run` prints exactly
//! what a real run would do.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fmt;

use thiserror::Error;

use crate::model::{Ident, ItemVersion, ListedItem, Listing, Side, StatusItem};

/// Options that change what the planner may decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Allow propagating deletions from a side that lists no items at all (and forgetting
    /// the items when both sides list none).
    pub force_delete: bool,
}

/// Why an ident is left alone in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Several items on one side share the UID; nothing is written or deleted for it.
    DuplicateUid {
        /// The side holding the duplicates.
        side: Side,
        /// Every href carrying the UID.
        hrefs: Vec<String>,
    },
    /// The item the status knows on this side could not be read in this run.
    Unreadable {
        /// The side of the unreadable item.
        side: Side,
        /// Its href.
        href: String,
    },
}

/// One decision of the planner. Every variant that writes names the version it expects to find,
/// so the executor can make the write conditional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The item is new on `from`: create it on the other side.
    Create {
        /// The item's identity.
        ident: Ident,
        /// The side it appeared on.
        from: Side,
        /// Its version there.
        source: ItemVersion,
    },
    /// The item changed on `from` only: overwrite the other side's unchanged version.
    Update {
        /// The item's identity.
        ident: Ident,
        /// The side it changed on.
        from: Side,
        /// The changed version.
        source: ItemVersion,
        /// The other side's version as listed in this run (its ETag guards the write).
        target: ItemVersion,
        /// The status row this replaces.
        status: StatusItem,
    },
    /// The item was deleted on one side but changed on `from`: modification wins, so it is
    /// created again on the side that deleted it.
    Restore {
        /// The item's identity.
        ident: Ident,
        /// The side that changed it.
        from: Side,
        /// The changed version.
        source: ItemVersion,
        /// The status row this replaces.
        status: StatusItem,
    },
    /// The item was deleted on one side and is unchanged on `on`: delete it there too.
    Delete {
        /// The item's identity.
        ident: Ident,
        /// The side to delete it on.
        on: Side,
        /// The version to delete, as listed in this run.
        target: ItemVersion,
        /// The status row this removes.
        status: StatusItem,
    },
    /// Both sides hold the same content but the status does not say so (both created or
    /// changed it alike, an earlier run was interrupted, or an item only moved or was
    /// touched): update the status, write nothing.
    Record {
        /// The item's identity.
        ident: Ident,
        /// Version on A.
        a: ItemVersion,
        /// Version on B.
        b: ItemVersion,
        /// The status row this replaces, if any.
        status: Option<StatusItem>,
    },
    /// The item is gone from both sides: drop its status row.
    Forget {
        /// The status row to drop.
        status: StatusItem,
    },
    /// Both sides changed the item differently (or created it differently).
    Conflict {
        /// The item's identity.
        ident: Ident,
        /// Version on A.
        a: ItemVersion,
        /// Version on B.
        b: ItemVersion,
        /// The last synced state, if any.
        status: Option<StatusItem>,
    },
    /// The ident is left alone in this run.
    Skip {
        /// The item's identity.
        ident: Ident,
        /// Why.
        reason: SkipReason,
    },
}

impl Action {
    /// The ident the action is about.
    pub fn ident(&self) -> &str {
        match self {
            Action::Create { ident, .. }
            | Action::Update { ident, .. }
            | Action::Restore { ident, .. }
            | Action::Delete { ident, .. }
            | Action::Record { ident, .. }
            | Action::Conflict { ident, .. }
            | Action::Skip { ident, .. } => ident,
            Action::Forget { status } => &status.ident,
        }
    }

    /// True for actions that only touch the status database, never a storage.
    pub fn is_status_only(&self) -> bool {
        matches!(self, Action::Record { .. } | Action::Forget { .. })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create {
                ident,
                from,
                source,
            } => write!(
                f,
                "create {ident}: {from} → {} (new on {from} as {})",
                from.other(),
                source.href
            ),
            Action::Update { ident, from, .. } => write!(
                f,
                "update {ident}: {from} → {} (changed on {from})",
                from.other()
            ),
            Action::Restore { ident, from, .. } => write!(
                f,
                "restore {ident}: {from} → {} (deleted on {}, changed on {from})",
                from.other(),
                from.other()
            ),
            Action::Delete { ident, on, .. } => {
                write!(f, "delete {ident}: on {on} (deleted on {})", on.other())
            }
            Action::Record { ident, .. } => write!(f, "record {ident}: same on both sides"),
            Action::Forget { status } => {
                write!(f, "forget {}: deleted on both sides", status.ident)
            }
            Action::Conflict { ident, status, .. } => match status {
                Some(_) => write!(f, "conflict {ident}: changed on both sides"),
                None => write!(f, "conflict {ident}: created differently on both sides"),
            },
            Action::Skip { ident, reason } => match reason {
                SkipReason::DuplicateUid { side, hrefs } => write!(
                    f,
                    "skip {ident}: UID used by several items on {side}: {}",
                    hrefs.join(", ")
                ),
                SkipReason::Unreadable { side, href } => {
                    write!(f, "skip {ident}: {href} on {side} could not be read")
                }
            },
        }
    }
}

/// The planner refuses a collection instead of planning it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// One side lists nothing while the status knows items: an unmounted disk, a wiped server
    /// or a wrong path would otherwise delete everything on the other side.
    #[error(
        "side {side} lists no items but {known} were synced before; \
         refusing to delete them on side {}; run with --force-delete if the side really was emptied",
        side.other()
    )]
    SideEmptied {
        /// The empty side.
        side: Side,
        /// How many items the status knows.
        known: usize,
    },
    /// Both sides list nothing while the status knows items: two unmounted disks (or two wrong
    /// paths) would otherwise make davsync forget every deletion and edit it knows of.
    #[error(
        "both sides list no items but {known} were synced before; \
         refusing to forget them; run with --force-delete if both sides really were emptied"
    )]
    BothEmptied {
        /// How many items the status knows.
        known: usize,
    },
}

/// How one ident stands on one side in this run.
#[derive(Debug, Clone, Copy)]
enum Presence<'a> {
    Absent,
    Present(&'a ListedItem<'a>),
}

/// Plans one collection. Actions come out ordered by ident.
pub fn plan(
    a: &Listing,
    b: &Listing,
    status: &[StatusItem],
    options: PlanOptions,
) -> Result<Vec<Action>, Refusal> {
    if !options.force_delete && !status.is_empty() {
        if a.is_empty() && b.is_empty() {
            return Err(Refusal::BothEmptied {
                known: status.len(),
            });
        }
        for (side, empty, other) in [(Side::A, a, b), (Side::B, b, a)] {
            if empty.is_empty() && !other.is_empty() {
                return Err(Refusal::SideEmptied {
                    side,
                    known: status.len(),
                });
            }
        }
    }

    let a_by_ident = group_by_ident(a);
    let b_by_ident = group_by_ident(b);
    let a_unreadable: HashSet<&str> = a.unreadable.iter().map(|u| u.href.as_str()).collect();
    let b_unreadable: HashSet<&str> = b.unreadable.iter().map(|u| u.href.as_str()).collect();
    let status_by_ident: HashMap<&str, &StatusItem> =
        status.iter().map(|s| (s.ident.as_str(), s)).collect();

    // Every ident once: the status's, then A's new ones, then B's new ones. Hash maps, and only
    // the (usually few) actions sorted at the end: with 10,000 items per side, ordered maps
    // and sorting every ident took most of a no-op sync's planning time.
    let new_on_a = a_by_ident
        .keys()
        .filter(|ident| !status_by_ident.contains_key(*ident));
    let new_on_b = b_by_ident
        .keys()
        .filter(|ident| !status_by_ident.contains_key(*ident) && !a_by_ident.contains_key(*ident));
    let idents = status_by_ident
        .keys()
        .chain(new_on_a)
        .chain(new_on_b)
        .copied();

    let mut actions = Vec::new();
    for ident in idents {
        let known = status_by_ident.get(ident).copied();
        let a_items = a_by_ident.get(ident).map(Vec::as_slice).unwrap_or(&[]);
        let b_items = b_by_ident.get(ident).map(Vec::as_slice).unwrap_or(&[]);

        if let Some(skip) = skip_reason(Side::A, a_items, known, &a_unreadable)
            .or_else(|| skip_reason(Side::B, b_items, known, &b_unreadable))
        {
            actions.push(Action::Skip {
                ident: ident.to_owned(),
                reason: skip,
            });
            continue;
        }
        if let Some(action) = decide(ident, known, presence(a_items), presence(b_items)) {
            actions.push(action);
        }
    }
    actions.sort_unstable_by(|x, y| x.ident().cmp(y.ident()));
    Ok(actions)
}

fn presence<'a>(items: &[&'a ListedItem]) -> Presence<'a> {
    match items.first() {
        Some(item) => Presence::Present(item),
        None => Presence::Absent,
    }
}

fn group_by_ident<'a>(listing: &'a Listing<'_>) -> HashMap<&'a str, Vec<&'a ListedItem<'a>>> {
    let mut map: HashMap<&str, Vec<&ListedItem<'_>>> =
        HashMap::with_capacity_and_hasher(listing.items.len(), Default::default());
    for item in &listing.items {
        map.entry(&*item.ident).or_default().push(item);
    }
    map
}

/// An ident is skipped when one side holds it twice, or when the item the status knows on a
/// side could not be read and the ident was not found elsewhere on that side: then nobody
/// knows whether it changed or vanished, and guessing would risk a deletion.
fn skip_reason(
    side: Side,
    items: &[&ListedItem],
    known: Option<&StatusItem>,
    unreadable: &HashSet<&str>,
) -> Option<SkipReason> {
    if items.len() > 1 {
        let mut hrefs: Vec<String> = items.iter().map(|i| i.version.href.clone()).collect();
        hrefs.sort();
        return Some(SkipReason::DuplicateUid { side, hrefs });
    }
    let known_href = &known?.side(side).href;
    if items.is_empty() && unreadable.contains(known_href.as_str()) {
        return Some(SkipReason::Unreadable {
            side,
            href: known_href.clone(),
        });
    }
    None
}

/// The three-way decision for one ident.
fn decide(
    ident: &str,
    status: Option<&StatusItem>,
    a: Presence<'_>,
    b: Presence<'_>,
) -> Option<Action> {
    use Presence::{Absent, Present};
    let ident = ident.to_owned();
    let unchanged = |item: &ListedItem, known: &ItemVersion| item.version.hash == known.hash;
    let action = match (status, a, b) {
        // New on A only: copy it to B.
        (None, Present(a), Absent) => Action::Create {
            ident,
            from: Side::A,
            source: a.version.clone().into_owned(),
        },
        // New on B only: copy it to A.
        (None, Absent, Present(b)) => Action::Create {
            ident,
            from: Side::B,
            source: b.version.clone().into_owned(),
        },
        // New on both sides with the same content (created alike, or copied by a run that was
        // killed before it could record): remember, write nothing.
        (None, Present(a), Present(b)) if a.version.hash == b.version.hash => Action::Record {
            ident,
            a: a.version.clone().into_owned(),
            b: b.version.clone().into_owned(),
            status: None,
        },
        // New on both sides with different content.
        (None, Present(a), Present(b)) => Action::Conflict {
            ident,
            a: a.version.clone().into_owned(),
            b: b.version.clone().into_owned(),
            status: None,
        },
        // Nothing anywhere: an ident only comes from a listing or the status, so this does
        // not happen; there is nothing to do either way.
        (None, Absent, Absent) => return None,
        // Unchanged on both sides. A new href or ETag with the same content (a move, a touch,
        // a server re-serializing) only refreshes the status.
        (Some(s), Present(a), Present(b)) if unchanged(a, &s.a) && unchanged(b, &s.b) => {
            if *a.version == s.a && *b.version == s.b {
                return None;
            }
            Action::Record {
                ident,
                a: a.version.clone().into_owned(),
                b: b.version.clone().into_owned(),
                status: Some(s.clone()),
            }
        }
        // Changed on A only: update B against the ETag listed on B in this run.
        (Some(s), Present(a), Present(b)) if unchanged(b, &s.b) => Action::Update {
            ident,
            from: Side::A,
            source: a.version.clone().into_owned(),
            target: b.version.clone().into_owned(),
            status: s.clone(),
        },
        // Changed on B only: update A.
        (Some(s), Present(a), Present(b)) if unchanged(a, &s.a) => Action::Update {
            ident,
            from: Side::B,
            source: b.version.clone().into_owned(),
            target: a.version.clone().into_owned(),
            status: s.clone(),
        },
        // Changed on both sides to the same content: remember, write nothing.
        (Some(s), Present(a), Present(b)) if a.version.hash == b.version.hash => Action::Record {
            ident,
            a: a.version.clone().into_owned(),
            b: b.version.clone().into_owned(),
            status: Some(s.clone()),
        },
        // Changed on both sides differently.
        (Some(s), Present(a), Present(b)) => Action::Conflict {
            ident,
            a: a.version.clone().into_owned(),
            b: b.version.clone().into_owned(),
            status: Some(s.clone()),
        },
        // Deleted on A, unchanged on B: delete on B.
        (Some(s), Absent, Present(b)) if unchanged(b, &s.b) => Action::Delete {
            ident,
            on: Side::B,
            target: b.version.clone().into_owned(),
            status: s.clone(),
        },
        // Deleted on A, changed on B: the modification wins, restore it to A.
        (Some(s), Absent, Present(b)) => Action::Restore {
            ident,
            from: Side::B,
            source: b.version.clone().into_owned(),
            status: s.clone(),
        },
        // Deleted on B, unchanged on A: delete on A.
        (Some(s), Present(a), Absent) if unchanged(a, &s.a) => Action::Delete {
            ident,
            on: Side::A,
            target: a.version.clone().into_owned(),
            status: s.clone(),
        },
        // Deleted on B, changed on A: restore it to B.
        (Some(s), Present(a), Absent) => Action::Restore {
            ident,
            from: Side::A,
            source: a.version.clone().into_owned(),
            status: s.clone(),
        },
        // Deleted on both sides: forget it.
        (Some(s), Absent, Absent) => Action::Forget { status: s.clone() },
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UnreadableItem;

    fn v(href: &str, etag: &str, hash: &str) -> ItemVersion {
        ItemVersion {
            href: href.into(),
            etag: etag.into(),
            hash: hash.into(),
        }
    }

    fn listing(items: &[(&str, ItemVersion)]) -> Listing<'static> {
        Listing {
            items: items
                .iter()
                .map(|(ident, version)| ListedItem {
                    ident: (*ident).to_owned().into(),
                    version: std::borrow::Cow::Owned(version.clone()),
                })
                .collect(),
            unreadable: Vec::new(),
        }
    }

    fn st(ident: &str, a: ItemVersion, b: ItemVersion) -> StatusItem {
        StatusItem {
            ident: ident.into(),
            a,
            b,
        }
    }

    /// Plans with an extra unrelated item on both sides and in the status, so that no case
    /// trips the emptied-side refusal, and returns the actions for ident `x` only.
    fn plan_x(
        a: Option<ItemVersion>,
        b: Option<ItemVersion>,
        s: Option<StatusItem>,
    ) -> Vec<String> {
        let keep = v("keep", "k", "hk");
        let mut la = vec![("keep", keep.clone())];
        let mut lb = vec![("keep", keep.clone())];
        la.extend(a.map(|v| ("x", v)));
        lb.extend(b.map(|v| ("x", v)));
        let mut status = vec![st("keep", keep.clone(), keep)];
        status.extend(s);
        plan(
            &listing(&la),
            &listing(&lb),
            &status,
            PlanOptions::default(),
        )
        .expect("no refusal")
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn every_arm_of_the_three_way_table() {
        let a1 = v("a.ics", "ea1", "h1");
        let b1 = v("b.ics", "eb1", "h1");
        let s1 = st("x", a1.clone(), b1.clone());
        let a2 = v("a.ics", "ea2", "h2");
        let b2 = v("b.ics", "eb2", "h2");
        let b3 = v("b.ics", "eb3", "h3");
        let a_moved = v("moved.ics", "ea9", "h1");
        let b_touched = v("b.ics", "eb9", "h1");
        #[rustfmt::skip]
        type Case<'a> = (&'a str, Option<ItemVersion>, Option<ItemVersion>, Option<StatusItem>, Vec<&'a str>);
        let table: Vec<Case> = vec![
            (
                "new on a",
                Some(a1.clone()),
                None,
                None,
                vec!["create x: a → b (new on a as a.ics)"],
            ),
            (
                "new on b",
                None,
                Some(b1.clone()),
                None,
                vec!["create x: b → a (new on b as b.ics)"],
            ),
            (
                "new both same",
                Some(a1.clone()),
                Some(b1.clone()),
                None,
                vec!["record x: same on both sides"],
            ),
            (
                "new both different",
                Some(a1.clone()),
                Some(b2.clone()),
                None,
                vec!["conflict x: created differently on both sides"],
            ),
            (
                "unchanged",
                Some(a1.clone()),
                Some(b1.clone()),
                Some(s1.clone()),
                vec![],
            ),
            (
                "moved on a",
                Some(a_moved.clone()),
                Some(b1.clone()),
                Some(s1.clone()),
                vec!["record x: same on both sides"],
            ),
            (
                "touched on b",
                Some(a1.clone()),
                Some(b_touched.clone()),
                Some(s1.clone()),
                vec!["record x: same on both sides"],
            ),
            (
                "changed on a",
                Some(a2.clone()),
                Some(b1.clone()),
                Some(s1.clone()),
                vec!["update x: a → b (changed on a)"],
            ),
            (
                "changed on b",
                Some(a1.clone()),
                Some(b2.clone()),
                Some(s1.clone()),
                vec!["update x: b → a (changed on b)"],
            ),
            (
                "changed both same",
                Some(a2.clone()),
                Some(b2.clone()),
                Some(s1.clone()),
                vec!["record x: same on both sides"],
            ),
            (
                "changed both different",
                Some(a2.clone()),
                Some(b3.clone()),
                Some(s1.clone()),
                vec!["conflict x: changed on both sides"],
            ),
            (
                "deleted a, unchanged b",
                None,
                Some(b1.clone()),
                Some(s1.clone()),
                vec!["delete x: on b (deleted on a)"],
            ),
            (
                "deleted a, changed b",
                None,
                Some(b2.clone()),
                Some(s1.clone()),
                vec!["restore x: b → a (deleted on a, changed on b)"],
            ),
            (
                "deleted b, unchanged a",
                Some(a1.clone()),
                None,
                Some(s1.clone()),
                vec!["delete x: on a (deleted on b)"],
            ),
            (
                "deleted b, changed a",
                Some(a2.clone()),
                None,
                Some(s1.clone()),
                vec!["restore x: a → b (deleted on b, changed on a)"],
            ),
            (
                "deleted both",
                None,
                None,
                Some(s1.clone()),
                vec!["forget x: deleted on both sides"],
            ),
        ];
        for (case, a, b, s, expected) in table {
            assert_eq!(plan_x(a, b, s), expected, "case: {case}");
        }
    }

    #[test]
    fn update_is_guarded_by_the_etag_listed_in_this_run() {
        let s = st("x", v("a", "ea1", "h1"), v("b", "OLD", "h1"));
        let a = listing(&[("x", v("a", "ea2", "h2"))]);
        let b = listing(&[("x", v("b", "NEW", "h1"))]);
        let actions = plan(&a, &b, &[s], PlanOptions::default()).unwrap();
        match &actions[..] {
            [Action::Update { target, .. }] => assert_eq!(target.etag, "NEW"),
            other => panic!("unexpected plan {other:?}"),
        }
    }

    #[test]
    fn duplicate_uid_skips_the_ident_and_syncs_the_rest() {
        let a = listing(&[
            ("dup", v("one.ics", "e", "h1")),
            ("dup", v("two.ics", "e", "h2")),
            ("solo", v("solo.ics", "e", "h3")),
        ]);
        let actions = plan(&a, &Listing::default(), &[], PlanOptions::default()).unwrap();
        let shown: Vec<String> = actions.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "skip dup: UID used by several items on a: one.ics, two.ics",
                "create solo: a → b (new on a as solo.ics)"
            ]
        );
    }

    #[test]
    fn unreadable_item_is_never_taken_for_a_deletion() {
        let s = st("x", v("x.ics", "e", "h"), v("x.ics", "e", "h"));
        let keep = st("k", v("k.ics", "e", "hk"), v("k.ics", "e", "hk"));
        let mut a = listing(&[("k", v("k.ics", "e", "hk"))]);
        a.unreadable.push(UnreadableItem {
            href: "x.ics".into(),
            reason: "broken".into(),
        });
        let b = listing(&[("k", v("k.ics", "e", "hk")), ("x", v("x.ics", "e", "h"))]);
        let actions = plan(&a, &b, &[s, keep], PlanOptions::default()).unwrap();
        let shown: Vec<String> = actions.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["skip x: x.ics on a could not be read"]);
    }

    #[test]
    fn uid_change_is_a_delete_plus_a_create() {
        let s = st("old", v("f.ics", "e1", "h1"), v("old.ics", "e1", "h1"));
        let a = listing(&[("new", v("f.ics", "e2", "h2"))]);
        let b = listing(&[("old", v("old.ics", "e1", "h1"))]);
        let shown: Vec<String> = plan(&a, &b, &[s], PlanOptions::default())
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "create new: a → b (new on a as f.ics)",
                "delete old: on b (deleted on a)"
            ]
        );
    }

    #[test]
    fn emptied_side_is_refused_unless_forced() {
        let s = st("x", v("x", "e", "h"), v("x", "e", "h"));
        let b = listing(&[("x", v("x", "e", "h"))]);
        let refused = plan(
            &Listing::default(),
            &b,
            std::slice::from_ref(&s),
            PlanOptions::default(),
        );
        assert_eq!(
            refused,
            Err(Refusal::SideEmptied {
                side: Side::A,
                known: 1
            })
        );
        let forced = plan(
            &Listing::default(),
            &b,
            &[s],
            PlanOptions { force_delete: true },
        )
        .unwrap();
        assert_eq!(forced.len(), 1);
        assert!(matches!(forced[0], Action::Delete { on: Side::B, .. }));
    }

    #[test]
    fn both_sides_empty_is_refused_unless_forced() {
        let s = st("x", v("x", "e", "h"), v("x", "e", "h"));
        let empty = Listing::default();
        let refused = plan(
            &empty,
            &empty,
            std::slice::from_ref(&s),
            PlanOptions::default(),
        );
        assert_eq!(refused, Err(Refusal::BothEmptied { known: 1 }));
        let actions = plan(&empty, &empty, &[s], PlanOptions { force_delete: true }).unwrap();
        assert!(matches!(actions[..], [Action::Forget { .. }]));
    }
}
