//! The execute → hash → prove → commit pipeline.
