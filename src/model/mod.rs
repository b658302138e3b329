//! Vision-language model descriptions: configurations of dual-stream (LXMERT-style) and
//! single-stream (ViLT-style) models, both graphs with their shared answer head, one
//! [`vqa::VqaModel`] over either, its structure (modality tags, prunable weights, skip and
//! parallel adapters, switchable skipping for the DAS search) and Hugging Face checkpoint directories.

pub mod config;
pub mod dual_stream;
pub mod head;
pub mod hf_checkpoint;
pub mod lxmert_embeddings;
pub mod modality;
pub mod pooler;
pub mod single_stream;
pub mod skipping;
pub mod structure;
pub mod text_embeddings;
pub mod vilt_embeddings;
pub mod vilt_images;
pub mod vilt_positions;
pub mod vqa;
