//! Vision-language model descriptions: configurations of dual-stream (LXMERT-style) and
//! single-stream (ViLT-style) models, and both graphs with their shared answer head.

pub mod config;
pub mod dual_stream;
pub mod head;
pub mod lxmert_embeddings;
pub mod pooler;
pub mod single_stream;
pub mod text_embeddings;
pub mod vilt_embeddings;
