//! # sluis — a threat-intelligence exchange node for national CERTs
//!
//! Each CERT runs one node. A node stores MISP events locally (sled), serves them to
//! analysts through a MISP-compatible API, and exchanges them with partner nodes over
//! mutual TLS, every record sealed by the node that vouches for it.
//!
//! ## Layers
//!
//! Dependencies point one way, downwards through this list; a module may use any
//! module on a lower layer, never one on its own layer's neighbours unless listed,
//! never one above. `tests/layers.rs` reads every `crate::` path of non-test code
//! and fails on an edge that breaks this order, so the map stays true.
//!
//! | layer | module | owns |
//! |---|---|---|
//! | 0 | [`model`] | the MISP core format, the type/category matrix, value normalisation, the one validator, pure event edits |
//! | 1 | [`policy`] | pure decisions: visibility, roles, tagging rights, federation outbound filtering and downgrades, exercise data |
//! | 1 | [`seal`] | node keys, RFC 8785 canonical JSON, seals of events, sightings, tombstones and case records, the trust list |
//! | 1 | [`tls`] | the federation CA and certificates (rcgen), rustls configs with client-cert verification and CRLs, peer identity |
//! | 1 | [`metrics`] | the node's counters and histograms, rendered for `/metrics` |
//! | 1 | [`testdata`] | deterministic synthetic events for benchmarks and tests |
//! | 2 | [`store`] | sled keyspaces, atomic write transactions, indexes, change log, lookups, correlation, backup |
//! | 3 | [`audit`] | the audit log: append-only JSON lines, hash-chained, checkpoints signed by the node key |
//! | 3 | [`support`] | incident-support exchange between CERTs: sealed case records, audience rules, webhook and overdue scan |
//! | 3 | [`export`] | output formats: MISP JSON, CSV (MISP's columns), text |
//! | 4 | [`config`] | the TOML configuration: typed data parsed once, defaults and validation with clear errors |
//! | 5 | [`federation`] | node-to-node sync: wire format, feed content, the hub, pulling, pushing, the one receive path, peer status |
//! | 6 | [`http`] | the HTTP core: state, MISP-shaped errors, API-key auth, rate limits, client address, request pipeline, accept loop |
//! | 7 | [`api`] | the MISP-compatible routes (one file per group), `/fed/v1/…`, `/support/…`, `/admin/…`, `/healthz`, `/metrics` |
//! | 8 | [`node`] | a node's life: `sluis init`, [`node::Node::start`] and [`node::Node::run`], owning every task |
//! | 9 | [`cli`] | the `sluis` subcommands (`import`, `export`, …) as library functions; `main.rs` only parses and prints |
//!
//! The design document (contracts: commands, config keys, API paths, seal format,
//! distribution rules) is `docs/design.md`; `docs/architecture.md` walks through
//! the layers.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod export;
pub mod federation;
pub mod http;
pub mod metrics;
pub mod model;
pub mod node;
pub mod policy;
pub mod seal;
pub mod store;
pub mod support;
pub mod testdata;
pub mod tls;
