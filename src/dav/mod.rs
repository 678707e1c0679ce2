//! CalDAV and CardDAV storages. (In progress: see issue 3.)

use crate::config::DavConfig;
use crate::storage::StorageError;

/// Opens a DAV storage. (In progress.)
pub fn open(config: &DavConfig) -> Result<Box<dyn crate::storage::Storage>, StorageError> {
    Err(StorageError::Other(format!(
        "{}: CalDAV/CardDAV is not implemented yet",
        config.url
    )))
}
