//! Progress reporting, kept behind a small type so the engine does not
//! depend on a terminal library: the command line plugs in progress bars,
//! tests and `--json` use [`Progress::hidden`].

use std::sync::Arc;

/// Something that shows per-table progress.
pub trait ProgressSink: Send + Sync {
    fn table(&self, name: &str) -> Box<dyn TableProgress>;
    fn finish(&self) {}
}

pub trait TableProgress: Send {
    fn inc(&self, n: u64);
    /// The number of rows the table will count, where it is known before
    /// the work starts (a bar with an ETA instead of a spinner).
    fn set_total(&self, _total: u64) {}
    fn finish(&self) {}
}

#[derive(Clone)]
pub struct Progress(Option<Arc<dyn ProgressSink>>);

struct Nothing;

impl TableProgress for Nothing {
    fn inc(&self, _: u64) {}
}

impl Progress {
    pub fn hidden() -> Progress {
        Progress(None)
    }

    pub fn new(sink: Arc<dyn ProgressSink>) -> Progress {
        Progress(Some(sink))
    }

    pub fn table(&self, name: &str) -> Box<dyn TableProgress> {
        match &self.0 {
            Some(s) => s.table(name),
            None => Box::new(Nothing),
        }
    }

    pub fn finish(&self) {
        if let Some(s) = &self.0 {
            s.finish();
        }
    }
}
