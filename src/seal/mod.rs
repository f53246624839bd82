//! Node identity and sealed records (work in progress).
