//! # sluis — a threat-intelligence exchange node for national CERTs
//!
//! Each CERT runs one node. A node stores MISP events locally (sled), serves them to
//! analysts through a MISP-compatible API, and exchanges them with partner nodes over
//! mutual TLS, every record sealed by the node that vouches for it. The architecture
//! and the contracts (commands, config keys, API paths) are in `docs/` and the
//! project's `DESIGN.md`.
//!
//! Module map (dependencies point downwards only):
//!
//! | module | owns |
//! |---|---|
//! | [`audit`] | the audit log: append-only JSON lines, hash-chained, checkpoints signed by the node key, `sluis audit verify` |
//! | [`cli`] | the `sluis` subcommands (`import`, `export`, …) as library functions |
//! | [`fed`] | federation endpoints under `/fed/v1/`: client certificate → exactly one configured peer, the streamed changes feed, notify, report; TLS reload (CRLs) |
//! | [`sync`] | pulling partners' feeds (verify, store, fsync, cursor, report back), push notification, per-peer state and metrics, `sluis peers` |
//! | [`support`] | incident-support exchange between CERTs: sealed case records, audience rules, webhook and overdue scan |
//! | [`policy`] | pure decisions: visibility, roles, federation outbound filtering and downgrades, exercise data |
//! | [`seal`] | node keys, RFC 8785 canonical JSON, seals of events, sightings, tombstones and case records, the trust list |
//! | [`api`] | the MISP-compatible HTTPS API (one file per route group), `/support/…`, `/admin/…`, `/healthz`, `/metrics` |
//! | [`server`] | the accept loop: connection cap, handshake/header/request deadlines, graceful drain |
//! | [`export`] | output formats: MISP JSON, CSV (MISP's columns), text |
//! | [`config`] | the TOML configuration, defaults and validation with clear errors |
//! | [`store`] | sled trees, atomic writes, indexes, change log, lookups, correlation |
//! | [`testdata`] | deterministic synthetic events for benchmarks and tests |
//! | [`tls`] | the federation CA and certificates (rcgen), rustls configs with client-cert verification and CRLs, peer identity |
//! | [`model`] | the MISP core format, the type/category matrix, value normalisation, the one validator |

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod export;
pub mod fed;
pub mod metrics;
pub mod model;
pub mod node;
pub mod policy;
pub mod seal;
pub mod server;
pub mod store;
pub mod support;
pub mod sync;
pub mod testdata;
pub mod tls;
