//! Vision-language model descriptions: configurations of dual-stream (LXMERT-style) and
//! single-stream (ViLT-style) models, and the single-stream graph with its answer head.

pub mod config;
pub mod head;
pub mod single_stream;
pub mod vilt_embeddings;
