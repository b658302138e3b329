//! Vision-language model descriptions: configurations of dual-stream (LXMERT-style) and
//! single-stream (ViLT-style) models.

pub mod config;
