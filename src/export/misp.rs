//! MISP JSON: `{"response":[{"Event":{…}},…]}`, byte-compatible with MISP's
//! `events/restSearch` envelope, written one event at a time.

use crate::model::event::{Event, Wrapped};
use std::io::{self, Write};

#[derive(Default)]
pub struct MispWriter {
    first: bool,
}

impl MispWriter {
    pub fn new() -> Self {
        MispWriter { first: true }
    }

    pub fn begin(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.first = true;
        out.write_all(b"{\"response\":[")
    }

    pub fn event(&mut self, out: &mut dyn Write, event: &Event) -> io::Result<()> {
        if !self.first {
            out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut *out, &Wrapped { event }).map_err(io::Error::other)
    }

    pub fn end(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(b"]}\n")
    }
}
