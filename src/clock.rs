//! Time as batches carry it.

/// Seconds since the Unix epoch, as given by the submitter of a batch.
pub type Timestamp = u64;
