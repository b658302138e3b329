//! Result reports: the same rows as an aligned text table (for the terminal), a markdown
//! table, CSV, and SVG line plots — the formats every `bench`, `eval` and `demo` result is
//! written in.

mod csv;
mod svg;
mod table;

pub use csv::to_csv;
pub use svg::{LinePlot, Panel, Series};
pub use table::{markdown_table, text_table};
