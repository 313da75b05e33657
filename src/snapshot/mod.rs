//! Snapshots of a virtual cluster's datastore: the file format (pure, [`format`]) and the
//! streams that carry it to and from the host ([`stream`]).

pub mod format;
