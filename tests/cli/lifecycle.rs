//! Lifecycle scenarios against the fake API server.
