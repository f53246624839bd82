//! Output formats: MISP JSON (what `events/restSearch` returns), CSV with MISP's
//! columns, and text (one value per line, for blocklists and IDS feeds).
//!
//! Every format streams: events are loaded one at a time from the store and written
//! out, so memory does not grow with the size of the export.

mod csv;
mod misp;
mod select;
mod text;

pub use csv::{csv_field, CsvStyle, CsvWriter};
pub use misp::MispWriter;
pub use select::{parse_since, Filter, FilterError};
pub use text::TextWriter;

use crate::store::{Store, StoreError};
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Misp,
    Csv,
    Text,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "misp" | "json" => Ok(Format::Misp),
            "csv" => Ok(Format::Csv),
            "text" => Ok(Format::Text),
            other => Err(format!(
                "unknown format \"{other}\" (expected misp, csv or text)"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Counts of what an export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportStats {
    pub events: u64,
    pub attributes: u64,
}

/// Writes every event and attribute matching `filter` to `out` in `format`.
/// `progress` is called after each event with the running stats.
pub fn export(
    store: &Store,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(ExportStats),
) -> Result<ExportStats, ExportError> {
    let mut stats = ExportStats::default();
    let mut misp = MispWriter::new();
    let mut csv = CsvWriter::with_style(filter.csv_style);
    match format {
        Format::Misp => misp.begin(out)?,
        Format::Csv => csv.header(out)?,
        Format::Text => {}
    }
    for event in select::events(store, filter)? {
        let event = event?;
        if format != Format::Misp && !filter.include_exercise && crate::policy::is_exercise(&event)
        {
            continue;
        }
        stats.events += 1;
        stats.attributes += event.count_attributes() as u64;
        match format {
            Format::Misp => misp.event(out, &event)?,
            Format::Csv => csv.event(out, &event)?,
            Format::Text => TextWriter::event(out, &event)?,
        }
        progress(stats);
    }
    match format {
        Format::Misp => misp.end(out)?,
        Format::Csv => csv.footer(out)?,
        Format::Text => {}
    }
    out.flush()?;
    Ok(stats)
}
