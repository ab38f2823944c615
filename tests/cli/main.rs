//! The cli tests in one binary (one link of arkworks and wgpu instead of one per file).

mod fuzz_parsers;
mod hostile;
mod user;
