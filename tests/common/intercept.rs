//! Storages wrapped by a test that changes some of what they do: [`Intercept`] states the
//! change (writes, flush, concurrency), [`Intercepted`] passes everything else to the wrapped
//! storage, so the executor sees the real storage's answers wherever the test changed nothing.

use davsync::config::MetadataKey;
use davsync::filter::Window;
use davsync::hook::HookFailure;
use davsync::storage::{
    ChangeSet, CollectionInfo, Fetched, ItemError, ListEntry, ListingPlan, Storage, StorageError,
    Written,
};

/// What a test changes about `Self::Inner`; each method left out does what the inner storage
/// does.
pub trait Intercept: Send + Sync {
    /// The wrapped storage.
    type Inner: Storage;

    fn inner(&self) -> &Self::Inner;

    fn concurrency(&self) -> usize {
        self.inner().concurrency()
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner().flush()
    }

    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.inner().create(collection, name_hint, bytes)
    }

    fn update(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.inner().update(collection, href, expected_etag, bytes)
    }

    fn delete(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
    ) -> Result<(), ItemError> {
        self.inner().delete(collection, href, expected_etag)
    }
}

/// A storage that is `I`'s inner storage with `I`'s changes.
pub struct Intercepted<I>(pub I);

impl<I: Intercept> Storage for Intercepted<I> {
    fn list_collections(&self) -> Result<Vec<CollectionInfo>, StorageError> {
        self.0.inner().list_collections()
    }

    fn root_collection(&self) -> CollectionInfo {
        self.0.inner().root_collection()
    }

    fn create_collection(&self, name: &str) -> Result<CollectionInfo, StorageError> {
        self.0.inner().create_collection(name)
    }

    fn list(&self, collection: &CollectionInfo) -> Result<Vec<ListEntry>, StorageError> {
        self.0.inner().list(collection)
    }

    fn list_changes(
        &self,
        collection: &CollectionInfo,
        since: Option<&str>,
        fetch_all: bool,
    ) -> Result<ChangeSet, StorageError> {
        self.0.inner().list_changes(collection, since, fetch_all)
    }

    fn identity(&self) -> String {
        self.0.inner().identity()
    }

    fn listing_plan(
        &self,
        collection: &CollectionInfo,
    ) -> Result<Option<ListingPlan>, StorageError> {
        self.0.inner().listing_plan(collection)
    }

    fn discovery_hint(&self) -> Option<String> {
        self.0.inner().discovery_hint()
    }

    fn use_discovery_hint(&self, hint: &str) {
        self.0.inner().use_discovery_hint(hint)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.0.flush()
    }

    fn flush_rewrites_everything(&self) -> bool {
        self.0.inner().flush_rewrites_everything()
    }

    fn reads_cheaply(&self) -> bool {
        self.0.inner().reads_cheaply()
    }

    fn create_root(&self) -> Result<Option<String>, StorageError> {
        self.0.inner().create_root()
    }

    fn take_hook_failures(&self) -> Vec<HookFailure> {
        self.0.inner().take_hook_failures()
    }

    fn metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
    ) -> Result<Option<String>, StorageError> {
        self.0.inner().metadata(collection, key)
    }

    fn set_metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
        value: Option<&str>,
    ) -> Result<(), StorageError> {
        self.0.inner().set_metadata(collection, key, value)
    }

    fn concurrency(&self) -> usize {
        self.0.concurrency()
    }

    fn list_in_window(
        &self,
        collection: &CollectionInfo,
        window: Window,
        content: bool,
    ) -> Option<Vec<ListEntry>> {
        self.0.inner().list_in_window(collection, window, content)
    }

    fn get_many(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Vec<(String, Result<Fetched, ItemError>)> {
        self.0.inner().get_many(collection, hrefs)
    }

    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.0.create(collection, name_hint, bytes)
    }

    fn update(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        self.0.update(collection, href, expected_etag, bytes)
    }

    fn delete(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
    ) -> Result<(), ItemError> {
        self.0.delete(collection, href, expected_etag)
    }
}
