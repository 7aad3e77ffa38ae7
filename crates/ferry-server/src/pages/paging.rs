//! How the listing pages page: [`PAGE_SIZE`] records a page, and the
//! engine's cursor (opaque, carried in the "next page" link).

use ferry_engine::paging::{Cursor, PageRequest};

/// How many records a listing page shows.
pub const PAGE_SIZE: usize = 50;

/// The page a request asks for: the first, or the one after `cursor`.
pub fn request(cursor: Option<&str>) -> PageRequest {
    PageRequest {
        limit: PAGE_SIZE,
        after: cursor.map(Cursor::from_text),
    }
}
