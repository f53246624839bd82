//! `sluis export`: stream the store (or a filtered part of it) as MISP JSON, CSV or
//! text to a file or stdout.

use super::{progress_bar, CliError};
use crate::export::{export as run_export, ExportStats, Filter, Format};
use crate::store::Store;
use std::io::Write;

/// Writes the export to `out`, with a progress bar on a terminal.
pub fn export(
    store: &Store,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<ExportStats, CliError> {
    filter.check()?;
    let total = store.event_count() as u64;
    let pb = progress_bar(
        total,
        "{spinner} exporting [{bar:30}] {pos}/{len} events {msg}",
    );
    let stats = run_export(store, filter, format, out, &mut |s| {
        pb.set_position(s.events);
        pb.set_message(format!("{} attributes", s.attributes));
    })?;
    pb.finish_and_clear();
    Ok(stats)
}
