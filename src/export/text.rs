//! Text: one attribute value per line, as MISP's `text` return format.

use crate::model::Event;
use std::io::{self, Write};

pub struct TextWriter;

impl TextWriter {
    pub fn event(out: &mut dyn Write, event: &Event) -> io::Result<()> {
        for a in event.all_attributes() {
            // A value with a line break would split into two indicators downstream.
            if a.value.contains(['\n', '\r']) {
                out.write_all(a.value.replace(['\n', '\r'], " ").as_bytes())?;
            } else {
                out.write_all(a.value.as_bytes())?;
            }
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}
