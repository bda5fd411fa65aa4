//! Where mail comes from. A source hands each mail to the journal and acknowledges it (moves
//! it) only after the journal holds it durably.

pub mod cluster;
pub mod imap;
pub mod maildir;
