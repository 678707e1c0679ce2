//! The executor with writes under way at the same time: a storage (a vdir behind a wrapper
//! named for what it does) whose write of the plan's first item finishes only after another
//! write did. What the run reports, and so what `-v` and `--json` show, keeps the plan's order.

mod common;

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use common::intercept::{Intercept, Intercepted};
use davsync::config::CollectionsSpec;
use davsync::status::StatusDb;
use davsync::storage::vdir::VdirStorage;
use davsync::storage::{CollectionInfo, ItemError, Storage, Written};
use davsync::sync::{Progress, Sides, SyncOptions, pair_collections, sync_collection};

/// A vdir taking two writes at once, whose create of the item hinted `held` waits (10 s at
/// most) until another create finished.
struct FirstWriteFinishesLast {
    inner: VdirStorage,
    held: &'static str,
    others_done: Mutex<usize>,
    other_done: Condvar,
}

impl Intercept for FirstWriteFinishesLast {
    type Inner = VdirStorage;

    fn inner(&self) -> &VdirStorage {
        &self.inner
    }

    fn concurrency(&self) -> usize {
        2
    }

    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        if name_hint == self.held {
            let done = self.others_done.lock().unwrap();
            let (done, _) = self
                .other_done
                .wait_timeout_while(done, Duration::from_secs(10), |done| *done == 0)
                .unwrap();
            assert!(*done > 0, "no other write finished while the first waited");
            drop(done);
            return self.inner.create(collection, name_hint, bytes);
        }
        let written = self.inner.create(collection, name_hint, bytes);
        *self.others_done.lock().unwrap() += 1;
        self.other_done.notify_all();
        written
    }
}

#[test]
fn actions_are_reported_in_the_plans_order_whichever_write_finishes_first() {
    let sb = common::Sandbox::new();
    sb.mkdir("a");
    sb.mkdir("b");
    for uid in ["u1", "u2", "u3"] {
        sb.write(&format!("a/{uid}.ics"), common::event(uid, uid));
    }
    let a = VdirStorage::new(sb.path("a"), ".ics".into());
    let b = Intercepted(FirstWriteFinishesLast {
        inner: VdirStorage::new(sb.path("b"), ".ics".into()),
        held: "u1",
        others_done: Mutex::new(0),
        other_done: Condvar::new(),
    });
    let sides = Sides { a: &a, b: &b };
    let pairs = pair_collections(&CollectionsSpec::Root, &sides).unwrap();
    let status = StatusDb::open(&sb.path("status.db")).unwrap();
    let mut applied = Vec::new();
    let report = sync_collection(
        &sides,
        &pairs[0],
        &status,
        &SyncOptions::default(),
        &mut |progress| {
            if let Progress::Applied(action) = progress {
                applied.push(action.ident().to_owned());
            }
        },
    )
    .unwrap();
    assert_eq!(report.created, 3);
    assert_eq!(applied, ["u1", "u2", "u3"]);
    let mut on_b = sb.ls("b");
    on_b.sort();
    assert_eq!(on_b, ["u1.ics", "u2.ics", "u3.ics"]);
}
