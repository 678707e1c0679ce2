//! The three-way planner: status + listing of A + listing of B → actions.
//!
//! [`plan`] is a pure function: no I/O, no database, no clock. Everything it needs was listed and
//! fetched before, so the same inputs always give the same plan, and `--dry-run` prints exactly
//! what a real run would do.
//!
//! In a one-way pair ([`SyncMode::AToB`], [`SyncMode::BToA`]) the target mirrors the source in
//! one run: the target's own changes are overwritten, items only on the target are deleted, and
//! there are no conflicts. Actions that undo something the target did are marked `mirror`, so
//! `--dry-run` and the summary can name them.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::Arc;

use thiserror::Error;

use crate::config::SyncMode;
use crate::model::{Ident, ItemVersion, ListedItem, Listing, Side, StatusItem};

/// Options that change what the planner may decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Allow propagating deletions from a side that lists no items at all (and forgetting
    /// the items when both sides list none).
    pub force_delete: bool,
    /// Which way changes flow.
    pub mode: SyncMode,
}

/// The side that mirrors the other in `mode`, or `None` in a two-way pair. That side's own
/// changes are overwritten and the other side (the source) is never written.
pub fn mirroring_side(mode: SyncMode) -> Option<Side> {
    match mode {
        SyncMode::TwoWay => None,
        SyncMode::AToB => Some(Side::B),
        SyncMode::BToA => Some(Side::A),
    }
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
    /// The item is gone from one side (or, in a one-way pair, only on the target) while that
    /// side has items that could not be read and may be this one, so it is not deleted on the
    /// other side: unreadable items the storage cannot identify ([`UnreadableItem::unidentified`]),
    /// or in a one-way pair, for an item only on the target, the source's unreadable items no
    /// status row names.
    MayBeUnreadable {
        /// The side holding the item, where it would be deleted.
        on: Side,
        /// The other side's unreadable hrefs that may be it.
        hrefs: Vec<String>,
    },
}

/// One decision of the planner. Every variant that writes names the version it expects to find,
/// so the executor can make the write conditional. Status rows are boxed: inline, the largest
/// variants made every action of a first sync (one per item) twice as large as a `Create`
/// needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The item is new on `from`: create it on the other side.
    Create {
        /// The item's identity.
        ident: Ident,
        /// The side it appeared on.
        from: Side,
        /// Its version there.
        source: Arc<ItemVersion>,
    },
    /// The item changed on `from` only: overwrite the other side's unchanged version. In a
    /// one-way pair (`mirror`), `from` is the source and the target's own version (changed, or
    /// created differently) is overwritten.
    Update {
        /// The item's identity.
        ident: Ident,
        /// The side it changed on, or the source of a one-way pair.
        from: Side,
        /// The version to copy.
        source: Arc<ItemVersion>,
        /// The other side's version as listed in this run (its ETag guards the write).
        target: Arc<ItemVersion>,
        /// The status row this replaces; `None` for a target's own item a mirror overwrites.
        status: Option<Box<StatusItem>>,
        /// Set when this overwrites the target's own change in a one-way pair.
        mirror: bool,
    },
    /// The item was deleted on one side but changed on `from`: modification wins, so it is
    /// created again on the side that deleted it.
    Restore {
        /// The item's identity.
        ident: Ident,
        /// The side that changed it.
        from: Side,
        /// The changed version.
        source: Arc<ItemVersion>,
        /// The status row this replaces.
        status: Box<StatusItem>,
        /// Set when this undoes the target's deletion in a one-way pair (`from` is the source).
        mirror: bool,
    },
    /// The item was deleted on one side and is unchanged on `on`: delete it there too. In a
    /// one-way pair (`mirror`), `on` is the target and the item is only there or was deleted
    /// on the source while the target changed it.
    Delete {
        /// The item's identity.
        ident: Ident,
        /// The side to delete it on.
        on: Side,
        /// The version to delete, as listed in this run.
        target: Arc<ItemVersion>,
        /// The status row this removes; `None` for an item only ever on the target.
        status: Option<Box<StatusItem>>,
        /// Set when this deletes the target's own item or change in a one-way pair.
        mirror: bool,
    },
    /// Both sides hold the same content but the status does not say so (both created or
    /// changed it alike, an earlier run was interrupted, or an item only moved or was
    /// touched): update the status, write nothing.
    Record {
        /// The item's identity.
        ident: Ident,
        /// Version on A.
        a: Arc<ItemVersion>,
        /// Version on B.
        b: Arc<ItemVersion>,
        /// The status row this replaces, if any.
        status: Option<Box<StatusItem>>,
    },
    /// The item is gone from both sides: drop its status row.
    Forget {
        /// The status row to drop.
        status: Box<StatusItem>,
    },
    /// Both sides changed the item differently (or created it differently).
    Conflict {
        /// The item's identity.
        ident: Ident,
        /// Version on A.
        a: Arc<ItemVersion>,
        /// Version on B.
        b: Arc<ItemVersion>,
        /// The last synced state, if any.
        status: Option<Box<StatusItem>>,
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

    /// True for an action that undoes something the target of a one-way pair did: overwrites
    /// its change, restores what it deleted, or deletes what only it has.
    pub fn is_mirror(&self) -> bool {
        matches!(
            self,
            Action::Update { mirror: true, .. }
                | Action::Restore { mirror: true, .. }
                | Action::Delete { mirror: true, .. }
        )
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
            Action::Update {
                ident,
                from,
                mirror: false,
                ..
            } => write!(
                f,
                "update {ident}: {from} → {} (changed on {from})",
                from.other()
            ),
            Action::Update {
                ident,
                from,
                source,
                status,
                mirror: true,
                ..
            } => {
                let to = from.other();
                let why = match status {
                    None => format!("differs on {to}"),
                    Some(s) if s.side(*from).hash == source.hash => format!("changed on {to}"),
                    Some(_) => "changed on both sides".to_owned(),
                };
                write!(
                    f,
                    "update {ident}: {from} → {to} ({why}; {to} mirrors {from})"
                )
            }
            Action::Restore {
                ident,
                from,
                mirror: false,
                ..
            } => write!(
                f,
                "restore {ident}: {from} → {} (deleted on {}, changed on {from})",
                from.other(),
                from.other()
            ),
            Action::Restore {
                ident,
                from,
                mirror: true,
                ..
            } => {
                let to = from.other();
                write!(
                    f,
                    "restore {ident}: {from} → {to} (deleted on {to}; {to} mirrors {from})"
                )
            }
            Action::Delete {
                ident,
                on,
                mirror: false,
                ..
            } => {
                write!(f, "delete {ident}: on {on} (deleted on {})", on.other())
            }
            Action::Delete {
                ident,
                on,
                status,
                mirror: true,
                ..
            } => {
                let source = on.other();
                let why = match status {
                    None => format!("only on {on}"),
                    Some(_) => format!("deleted on {source}, changed on {on}"),
                };
                write!(f, "delete {ident}: on {on} ({why}; {on} mirrors {source})")
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
                SkipReason::MayBeUnreadable { on, hrefs } => write!(
                    f,
                    "skip {ident}: not deleted on {on}: {} could not be read on {} and may be \
                     it: {}",
                    if hrefs.len() == 1 { "an item" } else { "items" },
                    on.other(),
                    hrefs.join(", ")
                ),
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
    /// In a one-way pair, the source lists nothing while the target holds items: a wrong path
    /// or an unmounted disk on the source would otherwise empty the target, even on a first
    /// sync.
    #[error(
        "side {side} lists no items; side {} mirrors it, so its {held} items would be \
         deleted; run with --force-delete if side {side} really is empty",
        side.other()
    )]
    SourceEmpty {
        /// The source side.
        side: Side,
        /// How many items the target holds.
        held: usize,
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
    let mirroring = mirroring_side(options.mode);
    if !options.force_delete {
        refuse_emptied(a, b, status, mirroring)?;
    }

    let a_by_ident = group_by_ident(a);
    let b_by_ident = group_by_ident(b);
    let a_unreadable: HashSet<&str> = a.unreadable.iter().map(|u| u.href.as_str()).collect();
    let b_unreadable: HashSet<&str> = b.unreadable.iter().map(|u| u.href.as_str()).collect();
    let status_by_ident: HashMap<&str, &StatusItem> =
        status.iter().map(|s| (s.ident.as_str(), s)).collect();
    // In a one-way pair, the source's unreadable items no status row names could be any item
    // only on the target: while there are some, such items are not deleted.
    let source_unreadable: Vec<String> = match mirroring {
        None => Vec::new(),
        Some(target) => {
            let source = target.other();
            let named: HashSet<&str> = status
                .iter()
                .map(|s| s.side(source).href.as_str())
                .collect();
            let listing = match source {
                Side::A => a,
                Side::B => b,
            };
            let mut hrefs: Vec<String> = listing
                .unreadable
                .iter()
                .filter(|u| !named.contains(u.href.as_str()))
                .map(|u| u.href.clone())
                .collect();
            hrefs.sort();
            hrefs
        }
    };

    // Unreadable items a storage cannot identify may be any item gone from their side: while
    // a side has some, nothing is deleted on the other.
    let unidentified = [a, b].map(|listing| {
        let mut hrefs: Vec<String> = listing
            .unreadable
            .iter()
            .filter(|u| u.unidentified)
            .map(|u| u.href.clone())
            .collect();
        hrefs.sort();
        hrefs
    });

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
        let a_items = a_by_ident.get(ident).map(Group::as_slice).unwrap_or(&[]);
        let b_items = b_by_ident.get(ident).map(Group::as_slice).unwrap_or(&[]);

        if let Some(skip) = skip_reason(Side::A, a_items, known, &a_unreadable)
            .or_else(|| skip_reason(Side::B, b_items, known, &b_unreadable))
        {
            actions.push(Action::Skip {
                ident: ident.to_owned(),
                reason: skip,
            });
            continue;
        }
        let action = decide(
            ident,
            known,
            presence(a_items),
            presence(b_items),
            mirroring,
        );
        let may_be_it = match &action {
            Some(Action::Delete { on, status, .. }) => match &unidentified[on.other().index()] {
                hrefs if !hrefs.is_empty() => Some((*on, hrefs)),
                _ if status.is_none() && !source_unreadable.is_empty() => {
                    Some((*on, &source_unreadable))
                }
                _ => None,
            },
            _ => None,
        };
        let action = match may_be_it {
            Some((on, hrefs)) => Some(Action::Skip {
                ident: ident.to_owned(),
                reason: SkipReason::MayBeUnreadable {
                    on,
                    hrefs: hrefs.clone(),
                },
            }),
            None => action,
        };
        actions.extend(action);
    }
    actions.sort_unstable_by(|x, y| x.ident().cmp(y.ident()));
    Ok(actions)
}

/// The refusals of an emptied side (see [`Refusal`]). In a one-way pair an emptied target is
/// not refused: the source's items are restored onto it, and nothing is deleted.
fn refuse_emptied(
    a: &Listing,
    b: &Listing,
    status: &[StatusItem],
    mirroring: Option<Side>,
) -> Result<(), Refusal> {
    if !status.is_empty() {
        if a.is_empty() && b.is_empty() {
            return Err(Refusal::BothEmptied {
                known: status.len(),
            });
        }
        for (side, empty, other) in [(Side::A, a, b), (Side::B, b, a)] {
            if empty.is_empty() && !other.is_empty() && mirroring != Some(side) {
                return Err(Refusal::SideEmptied {
                    side,
                    known: status.len(),
                });
            }
        }
    }
    if let Some(target) = mirroring {
        let (source, held) = match target {
            Side::A => (b, a),
            Side::B => (a, b),
        };
        if source.is_empty() && !held.is_empty() {
            return Err(Refusal::SourceEmpty {
                side: target.other(),
                held: held.items.len(),
            });
        }
    }
    Ok(())
}

fn presence<'a>(items: &[&'a ListedItem]) -> Presence<'a> {
    match items.first() {
        Some(item) => Presence::Present(item),
        None => Presence::Absent,
    }
}

fn group_by_ident<'a>(listing: &'a Listing<'_>) -> HashMap<&'a str, Group<'a>> {
    let mut map: HashMap<&str, Group<'a>> =
        HashMap::with_capacity_and_hasher(listing.items.len(), Default::default());
    for item in &listing.items {
        match map.entry(&*item.ident) {
            Entry::Vacant(entry) => {
                entry.insert(Group::One([item]));
            }
            Entry::Occupied(mut entry) => {
                let group = entry.get_mut();
                match group {
                    Group::One([first]) => *group = Group::Many(vec![*first, item]),
                    Group::Many(items) => items.push(item),
                }
            }
        }
    }
    map
}

/// The items one side lists under one ident: almost always one, which then needs no
/// allocation of its own (one per item was a tenth of a no-op sync's memory and time).
enum Group<'a> {
    /// The usual case.
    One([&'a ListedItem<'a>; 1]),
    /// A UID held by several items (skipped as a duplicate).
    Many(Vec<&'a ListedItem<'a>>),
}

impl<'a> Group<'a> {
    fn as_slice(&self) -> &[&'a ListedItem<'a>] {
        match self {
            Group::One(item) => item,
            Group::Many(items) => items,
        }
    }
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

/// The three-way decision for one ident. `mirroring` is the target of a one-way pair: every
/// arm's comment says what two-way does, then what one-way does where it differs (the source
/// wins, the target's own changes are undone, nothing is a conflict, the source is never
/// written).
fn decide(
    ident: &str,
    status: Option<&StatusItem>,
    a: Presence<'_>,
    b: Presence<'_>,
    mirroring: Option<Side>,
) -> Option<Action> {
    use Presence::{Absent, Present};
    let unchanged = |item: &ListedItem, known: &ItemVersion| item.version.hash == known.hash;
    let mirrors = |side: Side| mirroring == Some(side);
    let owned = |item: &ListedItem| item.version.shared();
    // The source of a one-way pair overwrites the target's version.
    let overwrite =
        |from: Side, source: &ListedItem, target: &ListedItem, s: Option<&StatusItem>| {
            Action::Update {
                ident: ident.to_owned(),
                from,
                source: owned(source),
                target: owned(target),
                status: s.cloned().map(Box::new),
                mirror: true,
            }
        };
    let action = match (status, a, b) {
        // New on A only: copy it to B. One-way b-to-a: it is only on the target a, delete it.
        (None, Present(a), Absent) if mirrors(Side::A) => Action::Delete {
            ident: ident.to_owned(),
            on: Side::A,
            target: owned(a),
            status: None,
            mirror: true,
        },
        (None, Present(a), Absent) => Action::Create {
            ident: ident.to_owned(),
            from: Side::A,
            source: owned(a),
        },
        // New on B only: copy it to A. One-way a-to-b: only on the target b, delete it.
        (None, Absent, Present(b)) if mirrors(Side::B) => Action::Delete {
            ident: ident.to_owned(),
            on: Side::B,
            target: owned(b),
            status: None,
            mirror: true,
        },
        (None, Absent, Present(b)) => Action::Create {
            ident: ident.to_owned(),
            from: Side::B,
            source: owned(b),
        },
        // New on both sides with the same content (created alike, or copied by a run that was
        // killed before it could record): remember, write nothing. The same in one-way.
        (None, Present(a), Present(b)) if a.version.hash == b.version.hash => Action::Record {
            ident: ident.to_owned(),
            a: owned(a),
            b: owned(b),
            status: None,
        },
        // New on both sides with different content: a conflict. One-way: the source's version
        // overwrites the target's.
        (None, Present(a), Present(b)) => match mirroring {
            Some(Side::B) => overwrite(Side::A, a, b, None),
            Some(Side::A) => overwrite(Side::B, b, a, None),
            None => Action::Conflict {
                ident: ident.to_owned(),
                a: owned(a),
                b: owned(b),
                status: None,
            },
        },
        // Nothing anywhere: an ident only comes from a listing or the status, so this does
        // not happen; there is nothing to do either way.
        (None, Absent, Absent) => return None,
        // Unchanged on both sides. A new href or ETag with the same content (a move, a touch,
        // a server re-serializing) only refreshes the status. The same in one-way.
        (Some(s), Present(a), Present(b)) if unchanged(a, &s.a) && unchanged(b, &s.b) => {
            if *a.version == s.a && *b.version == s.b {
                return None;
            }
            Action::Record {
                ident: ident.to_owned(),
                a: owned(a),
                b: owned(b),
                status: Some(Box::new(s.clone())),
            }
        }
        // Changed on A only: update B against the ETag listed on B in this run. One-way
        // b-to-a: a's own change is overwritten with b's version.
        (Some(s), Present(a), Present(b)) if unchanged(b, &s.b) => match mirrors(Side::A) {
            true => overwrite(Side::B, b, a, Some(s)),
            false => Action::Update {
                ident: ident.to_owned(),
                from: Side::A,
                source: owned(a),
                target: owned(b),
                status: Some(Box::new(s.clone())),
                mirror: false,
            },
        },
        // Changed on B only: update A. One-way a-to-b: b's own change is overwritten.
        (Some(s), Present(a), Present(b)) if unchanged(a, &s.a) => match mirrors(Side::B) {
            true => overwrite(Side::A, a, b, Some(s)),
            false => Action::Update {
                ident: ident.to_owned(),
                from: Side::B,
                source: owned(b),
                target: owned(a),
                status: Some(Box::new(s.clone())),
                mirror: false,
            },
        },
        // Changed on both sides to the same content: remember, write nothing. The same in
        // one-way.
        (Some(s), Present(a), Present(b)) if a.version.hash == b.version.hash => Action::Record {
            ident: ident.to_owned(),
            a: owned(a),
            b: owned(b),
            status: Some(Box::new(s.clone())),
        },
        // Changed on both sides differently: a conflict. One-way: the source's version
        // overwrites the target's.
        (Some(s), Present(a), Present(b)) => match mirroring {
            Some(Side::B) => overwrite(Side::A, a, b, Some(s)),
            Some(Side::A) => overwrite(Side::B, b, a, Some(s)),
            None => Action::Conflict {
                ident: ident.to_owned(),
                a: owned(a),
                b: owned(b),
                status: Some(Box::new(s.clone())),
            },
        },
        // Deleted on A, unchanged on B: delete on B (also one-way a-to-b). One-way b-to-a:
        // the target a deleted it, restore it from b.
        (Some(s), Absent, Present(b)) if unchanged(b, &s.b) => match mirrors(Side::A) {
            true => Action::Restore {
                ident: ident.to_owned(),
                from: Side::B,
                source: owned(b),
                status: Box::new(s.clone()),
                mirror: true,
            },
            false => Action::Delete {
                ident: ident.to_owned(),
                on: Side::B,
                target: owned(b),
                status: Some(Box::new(s.clone())),
                mirror: false,
            },
        },
        // Deleted on A, changed on B: the modification wins, restore it to A (also one-way
        // b-to-a, where it undoes the target's deletion). One-way a-to-b: the source deleted
        // it, so b's changed copy is deleted too.
        (Some(s), Absent, Present(b)) => match mirrors(Side::B) {
            true => Action::Delete {
                ident: ident.to_owned(),
                on: Side::B,
                target: owned(b),
                status: Some(Box::new(s.clone())),
                mirror: true,
            },
            false => Action::Restore {
                ident: ident.to_owned(),
                from: Side::B,
                source: owned(b),
                status: Box::new(s.clone()),
                mirror: mirrors(Side::A),
            },
        },
        // Deleted on B, unchanged on A: delete on A (also one-way b-to-a). One-way a-to-b:
        // the target b deleted it, restore it from a.
        (Some(s), Present(a), Absent) if unchanged(a, &s.a) => match mirrors(Side::B) {
            true => Action::Restore {
                ident: ident.to_owned(),
                from: Side::A,
                source: owned(a),
                status: Box::new(s.clone()),
                mirror: true,
            },
            false => Action::Delete {
                ident: ident.to_owned(),
                on: Side::A,
                target: owned(a),
                status: Some(Box::new(s.clone())),
                mirror: false,
            },
        },
        // Deleted on B, changed on A: restore it to B (also one-way a-to-b, undoing b's
        // deletion). One-way b-to-a: the source deleted it, so a's changed copy goes too.
        (Some(s), Present(a), Absent) => match mirrors(Side::A) {
            true => Action::Delete {
                ident: ident.to_owned(),
                on: Side::A,
                target: owned(a),
                status: Some(Box::new(s.clone())),
                mirror: true,
            },
            false => Action::Restore {
                ident: ident.to_owned(),
                from: Side::A,
                source: owned(a),
                status: Box::new(s.clone()),
                mirror: mirrors(Side::B),
            },
        },
        // Deleted on both sides: forget it. The same in one-way.
        (Some(s), Absent, Absent) => Action::Forget {
            status: Box::new(s.clone()),
        },
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
                    version: version.clone().into(),
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
        mode: SyncMode,
    ) -> Vec<Action> {
        let keep = v("keep", "k", "hk");
        let mut la = vec![("keep", keep.clone())];
        let mut lb = vec![("keep", keep.clone())];
        la.extend(a.map(|v| ("x", v)));
        lb.extend(b.map(|v| ("x", v)));
        let mut status = vec![st("keep", keep.clone(), keep)];
        status.extend(s);
        let options = PlanOptions {
            force_delete: false,
            mode,
        };
        plan(&listing(&la), &listing(&lb), &status, options).expect("no refusal")
    }

    /// The side an action writes to, if any.
    fn written_side(action: &Action) -> Option<Side> {
        match action {
            Action::Create { from, .. }
            | Action::Update { from, .. }
            | Action::Restore { from, .. } => Some(from.other()),
            Action::Delete { on, .. } => Some(*on),
            Action::Conflict { .. } => Some(Side::A),
            Action::Record { .. } | Action::Forget { .. } | Action::Skip { .. } => None,
        }
    }

    #[test]
    fn every_arm_of_the_three_way_table_in_every_mode() {
        let a1 = v("a.ics", "ea1", "h1");
        let b1 = v("b.ics", "eb1", "h1");
        let s1 = st("x", a1.clone(), b1.clone());
        let a2 = v("a.ics", "ea2", "h2");
        let b2 = v("b.ics", "eb2", "h2");
        let b3 = v("b.ics", "eb3", "h3");
        let a_moved = v("moved.ics", "ea9", "h1");
        let b_touched = v("b.ics", "eb9", "h1");
        let record = "record x: same on both sides";
        // (case, a, b, status, [two-way, a-to-b, b-to-a]); an empty string: no action.
        #[rustfmt::skip]
        type Case<'a> = (&'a str, Option<ItemVersion>, Option<ItemVersion>, Option<StatusItem>, [&'a str; 3]);
        let table: Vec<Case> = vec![
            (
                "new on a",
                Some(a1.clone()),
                None,
                None,
                [
                    "create x: a → b (new on a as a.ics)",
                    "create x: a → b (new on a as a.ics)",
                    "delete x: on a (only on a; a mirrors b)",
                ],
            ),
            (
                "new on b",
                None,
                Some(b1.clone()),
                None,
                [
                    "create x: b → a (new on b as b.ics)",
                    "delete x: on b (only on b; b mirrors a)",
                    "create x: b → a (new on b as b.ics)",
                ],
            ),
            (
                "new both same",
                Some(a1.clone()),
                Some(b1.clone()),
                None,
                [record; 3],
            ),
            (
                "new both different",
                Some(a1.clone()),
                Some(b2.clone()),
                None,
                [
                    "conflict x: created differently on both sides",
                    "update x: a → b (differs on b; b mirrors a)",
                    "update x: b → a (differs on a; a mirrors b)",
                ],
            ),
            (
                "unchanged",
                Some(a1.clone()),
                Some(b1.clone()),
                Some(s1.clone()),
                [""; 3],
            ),
            (
                "moved on a",
                Some(a_moved.clone()),
                Some(b1.clone()),
                Some(s1.clone()),
                [record; 3],
            ),
            (
                "touched on b",
                Some(a1.clone()),
                Some(b_touched.clone()),
                Some(s1.clone()),
                [record; 3],
            ),
            (
                "changed on a",
                Some(a2.clone()),
                Some(b1.clone()),
                Some(s1.clone()),
                [
                    "update x: a → b (changed on a)",
                    "update x: a → b (changed on a)",
                    "update x: b → a (changed on a; a mirrors b)",
                ],
            ),
            (
                "changed on b",
                Some(a1.clone()),
                Some(b2.clone()),
                Some(s1.clone()),
                [
                    "update x: b → a (changed on b)",
                    "update x: a → b (changed on b; b mirrors a)",
                    "update x: b → a (changed on b)",
                ],
            ),
            (
                "changed both same",
                Some(a2.clone()),
                Some(b2.clone()),
                Some(s1.clone()),
                [record; 3],
            ),
            (
                "changed both different",
                Some(a2.clone()),
                Some(b3.clone()),
                Some(s1.clone()),
                [
                    "conflict x: changed on both sides",
                    "update x: a → b (changed on both sides; b mirrors a)",
                    "update x: b → a (changed on both sides; a mirrors b)",
                ],
            ),
            (
                "deleted a, unchanged b",
                None,
                Some(b1.clone()),
                Some(s1.clone()),
                [
                    "delete x: on b (deleted on a)",
                    "delete x: on b (deleted on a)",
                    "restore x: b → a (deleted on a; a mirrors b)",
                ],
            ),
            (
                "deleted a, changed b",
                None,
                Some(b2.clone()),
                Some(s1.clone()),
                [
                    "restore x: b → a (deleted on a, changed on b)",
                    "delete x: on b (deleted on a, changed on b; b mirrors a)",
                    "restore x: b → a (deleted on a; a mirrors b)",
                ],
            ),
            (
                "deleted b, unchanged a",
                Some(a1.clone()),
                None,
                Some(s1.clone()),
                [
                    "delete x: on a (deleted on b)",
                    "restore x: a → b (deleted on b; b mirrors a)",
                    "delete x: on a (deleted on b)",
                ],
            ),
            (
                "deleted b, changed a",
                Some(a2.clone()),
                None,
                Some(s1.clone()),
                [
                    "restore x: a → b (deleted on b, changed on a)",
                    "restore x: a → b (deleted on b; b mirrors a)",
                    "delete x: on a (deleted on b, changed on a; a mirrors b)",
                ],
            ),
            (
                "deleted both",
                None,
                None,
                Some(s1.clone()),
                ["forget x: deleted on both sides"; 3],
            ),
        ];
        let modes = [SyncMode::TwoWay, SyncMode::AToB, SyncMode::BToA];
        for (case, a, b, s, expected) in table {
            for (mode, expected) in modes.into_iter().zip(expected) {
                let actions = plan_x(a.clone(), b.clone(), s.clone(), mode);
                let shown: Vec<String> = actions.iter().map(ToString::to_string).collect();
                let expected: Vec<&str> = Some(expected)
                    .filter(|e| !e.is_empty())
                    .into_iter()
                    .collect();
                // Display tells a mirror action by its flag: the flag is checked by the text.
                for action in &actions {
                    assert_eq!(action.is_mirror(), action.to_string().contains("mirrors"));
                }
                assert_eq!(shown, expected, "case: {case}, {mode:?}");
                // A one-way pair writes its target only, and never leaves a conflict.
                if let Some(target) = mirroring_side(mode) {
                    for action in &actions {
                        assert!(
                            !matches!(action, Action::Conflict { .. }),
                            "{case}, {mode:?}"
                        );
                        let written = written_side(action);
                        assert!(written.is_none_or(|w| w == target), "{case}, {mode:?}");
                    }
                }
            }
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
            unidentified: false,
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
            PlanOptions {
                force_delete: true,
                mode: SyncMode::TwoWay,
            },
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
        let actions = plan(
            &empty,
            &empty,
            &[s],
            PlanOptions {
                force_delete: true,
                mode: SyncMode::TwoWay,
            },
        )
        .unwrap();
        assert!(matches!(actions[..], [Action::Forget { .. }]));
    }

    fn one_way(mode: SyncMode) -> PlanOptions {
        PlanOptions {
            force_delete: false,
            mode,
        }
    }

    #[test]
    fn an_empty_source_is_refused_even_on_a_first_sync() {
        let b = listing(&[("x", v("x.ics", "e", "h"))]);
        let empty = Listing::default();
        assert_eq!(
            plan(&empty, &b, &[], one_way(SyncMode::AToB)),
            Err(Refusal::SourceEmpty {
                side: Side::A,
                held: 1
            })
        );
        // With a status it is the emptied side, as in two-way.
        let s = st("x", v("x.ics", "e", "h"), v("x.ics", "e", "h"));
        assert_eq!(
            plan(
                &empty,
                &b,
                std::slice::from_ref(&s),
                one_way(SyncMode::AToB)
            ),
            Err(Refusal::SideEmptied {
                side: Side::A,
                known: 1
            })
        );
        let forced = PlanOptions {
            force_delete: true,
            mode: SyncMode::AToB,
        };
        let shown: Vec<String> = plan(&empty, &b, &[], forced)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["delete x: on b (only on b; b mirrors a)"]);
        // Two-way copies it: nothing is deleted, nothing refused.
        assert!(plan(&empty, &b, &[], PlanOptions::default()).is_ok());
    }

    #[test]
    fn an_emptied_target_is_restored_not_refused() {
        let s = st("x", v("x.ics", "e", "h"), v("x.ics", "e", "h"));
        let b = listing(&[("x", v("x.ics", "e", "h"))]);
        let empty = Listing::default();
        let shown: Vec<String> = plan(
            &empty,
            &b,
            std::slice::from_ref(&s),
            one_way(SyncMode::BToA),
        )
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(shown, ["restore x: b → a (deleted on a; a mirrors b)"]);
        // Both empty is still refused.
        assert_eq!(
            plan(&empty, &empty, &[s], one_way(SyncMode::BToA)),
            Err(Refusal::BothEmptied { known: 1 })
        );
    }

    #[test]
    fn nothing_is_deleted_while_a_side_has_an_item_it_cannot_identify() {
        // x (without UID, so named by its hash) was synced; on a it broke, and with its UID
        // unreadable a cannot say which item the broken one is.
        let s = st("sha256:x", v("sha256:x", "e", "h"), v("x.ics", "e", "h"));
        let keep = st("k", v("k", "e", "hk"), v("k.ics", "e", "hk"));
        let b = listing(&[
            ("k", v("k.ics", "e", "hk")),
            ("sha256:x", v("x.ics", "e", "h")),
        ]);
        let broken = |unidentified| {
            let mut a = listing(&[("k", v("k", "e", "hk"))]);
            a.unreadable.push(UnreadableItem {
                href: "malformed-at-line-9".into(),
                reason: "broken".into(),
                unidentified,
            });
            a
        };
        for mode in [SyncMode::TwoWay, SyncMode::AToB] {
            let options = PlanOptions {
                mode,
                ..PlanOptions::default()
            };
            let shown: Vec<String> = plan(&broken(true), &b, &[s.clone(), keep.clone()], options)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(
                shown,
                [
                    "skip sha256:x: not deleted on b: an item could not be read on a and may be it: \
                  malformed-at-line-9"
                ],
                "{mode:?}"
            );
        }
        // An unreadable item with a name of its own is not this one: the deletion goes on.
        let actions = plan(&broken(false), &b, &[s, keep], PlanOptions::default()).unwrap();
        assert!(
            matches!(actions[..], [Action::Delete { on: Side::B, .. }]),
            "{actions:?}"
        );
    }

    #[test]
    fn a_target_only_item_is_kept_while_the_source_has_unreadable_items() {
        let unreadable = |href: &str| UnreadableItem {
            href: href.into(),
            reason: "broken".into(),
            unidentified: false,
        };
        let mut a = listing(&[("k", v("k.ics", "e", "hk"))]);
        a.unreadable.push(unreadable("new.ics"));
        let b = listing(&[("k", v("k.ics", "e", "hk")), ("y", v("y.ics", "e", "hy"))]);
        let shown: Vec<String> = plan(&a, &b, &[], one_way(SyncMode::AToB))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "record k: same on both sides",
                "skip y: not deleted on b: an item could not be read on a and may be it: new.ics"
            ]
        );
        // An unreadable item the status knows is skipped by its own ident, and the target-only
        // item is deleted: the unreadable one is accounted for.
        let s = st("x", v("x.ics", "e", "h"), v("x.ics", "e", "h"));
        let keep = st("k", v("k.ics", "e", "hk"), v("k.ics", "e", "hk"));
        let mut a = listing(&[("k", v("k.ics", "e", "hk"))]);
        a.unreadable.push(unreadable("x.ics"));
        let b = listing(&[
            ("k", v("k.ics", "e", "hk")),
            ("x", v("x.ics", "e2", "h2")),
            ("y", v("y.ics", "e", "hy")),
        ]);
        let shown: Vec<String> = plan(&a, &b, &[s, keep], one_way(SyncMode::AToB))
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "skip x: x.ics on a could not be read",
                "delete y: on b (only on b; b mirrors a)"
            ]
        );
    }
}
