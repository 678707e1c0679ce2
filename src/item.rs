//! An item as davsync moves it: the exact bytes, plus the identity and normalized hash computed
//! from them by the content-line layer in [`crate::vobject`].

use crate::model::Ident;
use crate::vobject;

/// One calendar object or vCard, kept as the exact bytes it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    bytes: Vec<u8>,
    uid: Option<String>,
    hash: String,
    component: Option<String>,
}

impl Item {
    /// Checks the bytes' structure and computes UID and normalized hash.
    pub fn parse(bytes: Vec<u8>) -> Result<Item, vobject::Malformed> {
        vobject::check(&bytes)?;
        let uid = vobject::uid(&bytes);
        let hash = vobject::normalized_hash(&bytes);
        let component = vobject::component_type(&bytes);
        Ok(Item {
            bytes,
            uid,
            hash,
            component,
        })
    }

    /// An item read again whose strong version tag is the one it had when it was checked and
    /// hashed as `hash`: the same bytes, so only UID and component type are read again. An item
    /// without a UID (whose identity is its hash) gets its bytes back, for [`Item::parse`].
    pub fn vouched(bytes: Vec<u8>, hash: &str) -> Result<Item, Vec<u8>> {
        let Some(uid) = vobject::uid(&bytes) else {
            return Err(bytes);
        };
        let component = vobject::component_type(&bytes);
        Ok(Item {
            bytes,
            uid: Some(uid),
            hash: hash.to_owned(),
            component,
        })
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Gives up the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The UID, if the item has one.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The main component type (`VEVENT`, `VTODO`, `VCARD`, ...).
    pub fn component(&self) -> Option<&str> {
        self.component.as_deref()
    }

    /// The normalized content hash (hex).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether `recorded`, a hash a status database holds for this item's place, was computed
    /// from content equal to this item's: by today's [`vobject::normalized_hash`], or by the
    /// definition davsync used before it recognized default values ([`vobject::legacy_hash`]),
    /// or by the one before it recognized `EMAIL;TYPE=INTERNET` ([`vobject::defaults_hash`]),
    /// which status databases written then still hold.
    pub fn matches_recorded(&self, recorded: &str) -> bool {
        self.hash == recorded
            || vobject::legacy_hash(&self.bytes) == recorded
            || vobject::defaults_hash(&self.bytes) == recorded
    }

    /// The identity used to pair this item with its copy on the other side: the UID, or for an
    /// item without one, its content hash (so an edit to such an item is a delete plus a create).
    pub fn ident(&self) -> Ident {
        match &self.uid {
            Some(uid) => uid.clone(),
            None => format!("sha256:{}", self.hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_recorded_before_defaults_were_recognized_still_matches() {
        let plain = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u\r\n\
            ATTENDEE;RSVP=TRUE;CN=\"Ann\":mailto:ann@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let item = Item::parse(plain.as_bytes().to_vec()).expect("parses");
        let legacy = vobject::legacy_hash(plain.as_bytes());
        assert_ne!(item.hash(), legacy);
        assert!(item.matches_recorded(item.hash()));
        assert!(item.matches_recorded(&legacy));
        let edited = plain.replace("CN=\"Ann\"", "CN=\"Bob\"");
        let edited = Item::parse(edited.into_bytes()).expect("parses");
        assert!(!edited.matches_recorded(&legacy));
        assert!(!edited.matches_recorded(item.hash()));
    }

    #[test]
    fn a_hash_recorded_before_email_type_internet_was_recognized_still_matches() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Ann\r\n\
            EMAIL;TYPE=INTERNET,HOME:ann@example.org\r\nEND:VCARD\r\n";
        let item = Item::parse(card.as_bytes().to_vec()).expect("parses");
        let before = vobject::defaults_hash(card.as_bytes());
        assert_ne!(item.hash(), before);
        assert!(item.matches_recorded(&before));
        let edited = card.replace("ann@", "bob@");
        let edited = Item::parse(edited.into_bytes()).expect("parses");
        assert!(!edited.matches_recorded(&before));
    }

    #[test]
    fn an_item_read_again_under_its_tag_is_the_item_parsed_before() {
        let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u\r\n\
            SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let parsed = Item::parse(event.as_bytes().to_vec()).expect("parses");
        let vouched = Item::vouched(event.as_bytes().to_vec(), parsed.hash()).expect("has a UID");
        assert_eq!(vouched, parsed);
        assert_eq!(vouched.ident(), "u");
        // Without a UID the hash is the identity: the caller must parse and hash it.
        let anonymous = event.replace("UID:u\r\n", "");
        let back = Item::vouched(anonymous.clone().into_bytes(), parsed.hash());
        assert_eq!(back, Err(anonymous.into_bytes()));
    }
}
