//! Checking a log: the chain, contiguous sequence numbers, every checkpoint's
//! signature, and — given this node's anchor — that nothing was cut off the end.
//!
//! The checker reads line by line and stops at the first problem, which names the
//! line (1-based, as editors and `sed -n` count) and says why. What it cannot see
//! is said plainly in the report: records after the last checkpoint are chained
//! but not signed, so whoever can write the file can rewrite or drop them
//! unnoticed — unless the anchor (the last checkpoint this node's store
//! remembers) or a copy shipped elsewhere says otherwise.

use super::anchor::Anchor;
use super::record::{checkpoint_line, checkpoint_message, genesis, line_hash, LineHash};
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use std::io::BufRead;
use uuid::Uuid;

/// Longest line the checker reads; the writer's field caps keep real lines far
/// below it, so a longer one is damage, and reading it whole is not needed.
pub const MAX_LINE: usize = 64 * 1024;

/// Whom the log must belong to: the node's organisation and the public keys its
/// checkpoints may be signed with (the current key, and earlier ones after a
/// rotation).
#[derive(Debug, Clone)]
pub struct Trust {
    pub org: Uuid,
    pub keys: Vec<VerifyingKey>,
}

impl Trust {
    fn key(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|k| crate::seal::KeyId::of(k).to_string() == key_id)
    }
}

/// The first problem found. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("line {line}: incomplete (no newline at the end of the file): a write was interrupted, or the file was cut")]
    Incomplete { line: u64 },
    #[error("line {line}: longer than {MAX_LINE} bytes, not a line this node writes")]
    TooLong { line: u64 },
    #[error("line {line}: not an audit record: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("line {line}: chains from neither this node's genesis (org {org}, under any trusted key) nor, as a signed checkpoint, from an earlier log")]
    Genesis { line: u64, org: Uuid },
    #[error("line {line}: seq {found} where {expected} was expected: records {expected} to {} are missing here (deleted, or moved further down)", found - 1)]
    Missing {
        line: u64,
        found: u64,
        expected: u64,
    },
    #[error("line {line}: seq {found} where {expected} was expected: lines are out of order or repeated")]
    OutOfOrder {
        line: u64,
        found: u64,
        expected: u64,
    },
    #[error("line {line}: altered: its hash is not the `prev` of line {next} (line {line} was edited, or line {next}'s prev)")]
    Altered { line: u64, next: u64 },
    #[error("line {line}: checkpoint altered: not in the exact form the node writes")]
    CheckpointAltered { line: u64 },
    #[error("line {line}: checkpoint signed by key {key_id}, which is not trusted here (pass the node's earlier public key with --key)")]
    UnknownKey { line: u64, key_id: String },
    #[error(
        "line {line}: checkpoint signature does not verify: forged, or the checkpoint was altered"
    )]
    BadSignature { line: u64 },
    #[error("line {line}: the log ends at seq {last}, but this node's store remembers a checkpoint at seq {anchor}: records were removed from the end, or this is an older copy")]
    Truncated { line: u64, last: u64, anchor: u64 },
    #[error("line {line}: seq {seq} is not the checkpoint this node's store remembers for that seq: the log was replaced or rewritten")]
    Replaced { line: u64, seq: u64 },
}

impl Problem {
    /// The line at fault.
    pub fn line(&self) -> u64 {
        match self {
            Problem::Incomplete { line }
            | Problem::TooLong { line }
            | Problem::Malformed { line, .. }
            | Problem::Genesis { line, .. }
            | Problem::Missing { line, .. }
            | Problem::OutOfOrder { line, .. }
            | Problem::Altered { line, .. }
            | Problem::CheckpointAltered { line }
            | Problem::UnknownKey { line, .. }
            | Problem::BadSignature { line }
            | Problem::Truncated { line, .. }
            | Problem::Replaced { line, .. } => *line,
        }
    }
}

/// Where the log's chain starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// At this node's genesis: a complete log.
    Genesis,
    /// At a signed checkpoint continuing an earlier log (rotation), whose last
    /// record had this seq and line hash.
    Continues { seq: u64, hash: LineHash },
}

/// What the checker saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Complete lines read.
    pub lines: u64,
    pub checkpoints: u64,
    pub origin: Option<Origin>,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The hash of the last line (what a continuation would chain from).
    pub last_hash: Option<LineHash>,
    /// Line number and seq of the last checkpoint.
    pub last_checkpoint: Option<(u64, u64)>,
    /// Records after the last checkpoint: chained, not yet signed.
    pub unprotected: u64,
    /// Key ids that signed checkpoints, in order of first use.
    pub signed_by: Vec<String>,
    /// Checkpoints whose signature could not be checked because their key is not
    /// known here (only when unknown keys are allowed, at open after a key change).
    pub unchecked: Vec<String>,
    /// Whether the anchor was compared (it was given and the log reached it).
    pub anchor_checked: bool,
    /// The seq of the `log_closed` record, when the log ends with one (and the
    /// checkpoint after it): a rotated-away log that a later one continues.
    pub closed: Option<u64>,
    pub problem: Option<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

#[derive(serde::Deserialize)]
struct Head {
    seq: u64,
    time: String,
    prev: String,
    kind: String,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    signature: Option<String>,
}

/// How the first line read is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The start of a file: genesis, or a signed continuation checkpoint.
    File,
    /// Somewhere inside a file (the tail check at open): the first line is
    /// taken as it is, the point the rest must chain from.
    Anywhere,
}

/// A line-by-line checker; feed it with [`Checker::line`], finish with
/// [`Checker::finish`].
pub(crate) struct Checker<'a> {
    trust: &'a Trust,
    anchor: Option<Anchor>,
    start: Start,
    allow_unknown_keys: bool,
    prev: Option<(u64, LineHash)>,
    report: Report,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(trust: &'a Trust, anchor: Option<Anchor>, start: Start) -> Self {
        Checker {
            trust,
            anchor,
            start,
            allow_unknown_keys: false,
            prev: None,
            report: Report::default(),
        }
    }

    /// Accept checkpoints by keys not in the trust list (unchecked, listed in
    /// [`Report::unchecked`]): the node itself, resuming a log after its key was
    /// changed, cannot check the old key's signatures.
    pub(crate) fn allow_unknown_keys(mut self) -> Self {
        self.allow_unknown_keys = true;
        self
    }

    /// Checks the next complete line (without its newline).
    pub(crate) fn line(&mut self, bytes: &[u8]) -> Result<(), Problem> {
        let n = self.report.lines + 1;
        let hash = line_hash(bytes);
        let head: Head = serde_json::from_slice(bytes).map_err(|e| Problem::Malformed {
            line: n,
            reason: e.to_string(),
        })?;
        let prev = decode_hash(&head.prev).ok_or_else(|| Problem::Malformed {
            line: n,
            reason: "`prev` is not 64 hex digits".into(),
        })?;
        let is_checkpoint = head.kind == "checkpoint";
        match self.prev {
            None => {
                let genesis_ok = self.start == Start::File
                    && self
                        .trust
                        .keys
                        .iter()
                        .any(|k| genesis(self.trust.org, k) == prev);
                if genesis_ok {
                    if head.seq != 1 {
                        return Err(if head.seq > 1 {
                            Problem::Missing {
                                line: n,
                                found: head.seq,
                                expected: 1,
                            }
                        } else {
                            Problem::OutOfOrder {
                                line: n,
                                found: head.seq,
                                expected: 1,
                            }
                        });
                    }
                    self.report.origin = Some(Origin::Genesis);
                } else if self.start == Start::File {
                    if !is_checkpoint {
                        return Err(Problem::Genesis {
                            line: n,
                            org: self.trust.org,
                        });
                    }
                    self.report.origin = Some(Origin::Continues {
                        seq: head.seq.saturating_sub(1),
                        hash: prev,
                    });
                }
                self.report.first_seq = Some(head.seq);
            }
            Some((last_seq, last_hash)) => {
                let expected = last_seq + 1;
                if head.seq > expected {
                    return Err(Problem::Missing {
                        line: n,
                        found: head.seq,
                        expected,
                    });
                }
                if head.seq < expected {
                    return Err(Problem::OutOfOrder {
                        line: n,
                        found: head.seq,
                        expected,
                    });
                }
                if prev != last_hash {
                    return Err(Problem::Altered {
                        line: n - 1,
                        next: n,
                    });
                }
            }
        }
        if is_checkpoint {
            self.checkpoint(n, &head, &prev, bytes)?;
        }
        if let Some(a) = &self.anchor {
            if a.seq == head.seq {
                if !is_checkpoint || a.hash != hash {
                    return Err(Problem::Replaced {
                        line: n,
                        seq: head.seq,
                    });
                }
                self.report.anchor_checked = true;
            }
        }
        self.prev = Some((head.seq, hash));
        self.report.lines = n;
        self.report.last_seq = Some(head.seq);
        self.report.last_hash = Some(hash);
        if is_checkpoint {
            self.report.checkpoints += 1;
            self.report.last_checkpoint = Some((n, head.seq));
            self.report.unprotected = 0;
        } else {
            self.report.unprotected += 1;
            self.report.closed = (head.kind == "log_closed").then_some(head.seq);
        }
        Ok(())
    }

    fn checkpoint(
        &mut self,
        n: u64,
        head: &Head,
        prev: &LineHash,
        bytes: &[u8],
    ) -> Result<(), Problem> {
        let (Some(key_id), Some(sig)) = (&head.key_id, &head.signature) else {
            return Err(Problem::CheckpointAltered { line: n });
        };
        if checkpoint_line(head.seq, &head.time, prev, key_id, sig) != bytes
            || head.time.len() > usize::from(u16::MAX)
        {
            return Err(Problem::CheckpointAltered { line: n });
        }
        let Some(key) = self.trust.key(key_id) else {
            if self.allow_unknown_keys {
                if !self.report.unchecked.contains(key_id) {
                    self.report.unchecked.push(key_id.clone());
                }
                return Ok(());
            }
            return Err(Problem::UnknownKey {
                line: n,
                key_id: key_id.clone(),
            });
        };
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .ok_or(Problem::BadSignature { line: n })?;
        let msg = checkpoint_message(self.trust.org, head.seq, prev, &head.time);
        key.verify_strict(&msg, &sig)
            .map_err(|_| Problem::BadSignature { line: n })?;
        if !self.report.signed_by.contains(key_id) {
            self.report.signed_by.push(key_id.clone());
        }
        Ok(())
    }

    /// The report, with the anchor compared against where the log ended. A log
    /// closed by a rotation (its `log_closed` record signed by the checkpoint
    /// after it) legitimately ends before the anchor, which belongs to a later log.
    pub(crate) fn finish(mut self) -> Report {
        let closed = self.report.closed.is_some() && self.report.unprotected == 0;
        if let Some(a) = &self.anchor {
            if self.report.problem.is_none() && self.report.last_seq.unwrap_or(0) < a.seq && !closed
            {
                self.report.problem = Some(Problem::Truncated {
                    line: self.report.lines,
                    last: self.report.last_seq.unwrap_or(0),
                    anchor: a.seq,
                });
            }
        }
        self.report
    }

    pub(crate) fn fail(&mut self, p: Problem) {
        self.report.problem = Some(p);
    }

    pub(crate) fn lines(&self) -> u64 {
        self.report.lines
    }
}

fn decode_hash(s: &str) -> Option<LineHash> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).ok()?;
    Some(h)
}

/// Reads the next line into `buf` (without the newline). `Ok(None)` at the end;
/// `Ok(Some(false))` for a last line without newline; lines over [`MAX_LINE`]
/// are an error of the caller's choosing, signalled as `Err(None)`.
pub(crate) fn read_line(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> Result<Option<bool>, Option<std::io::Error>> {
    buf.clear();
    loop {
        let chunk = r.fill_buf().map_err(Some)?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() { None } else { Some(false) });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_LINE {
            return Err(None);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some(true));
        }
    }
}

/// Checks a whole log from its first line. `anchor` is the last checkpoint this
/// node's store remembers (see [`super::anchor`]), if known.
pub fn verify(
    r: &mut impl BufRead,
    trust: &Trust,
    anchor: Option<Anchor>,
) -> std::io::Result<Report> {
    let mut c = Checker::new(trust, anchor, Start::File);
    let mut buf = Vec::new();
    loop {
        let n = c.lines() + 1;
        match read_line(r, &mut buf) {
            Ok(None) => break,
            Ok(Some(true)) => {
                if let Err(p) = c.line(&buf) {
                    c.fail(p);
                    return Ok(c.report);
                }
            }
            Ok(Some(false)) => {
                c.fail(Problem::Incomplete { line: n });
                return Ok(c.report);
            }
            Err(None) => {
                c.fail(Problem::TooLong { line: n });
                return Ok(c.report);
            }
            Err(Some(e)) => return Err(e),
        }
    }
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_line_splits_and_flags_the_incomplete_tail() {
        let mut r = std::io::Cursor::new(b"a\nbc\nd".to_vec());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), Some(true));
        assert_eq!(buf, b"a");
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), Some(true));
        assert_eq!(buf, b"bc");
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), Some(false));
        assert_eq!(buf, b"d");
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), None);
    }

    #[test]
    fn read_line_refuses_overlong_lines() {
        let mut data = vec![b'x'; MAX_LINE + 1];
        data.push(b'\n');
        let mut r = std::io::BufReader::with_capacity(1024, std::io::Cursor::new(data));
        let mut buf = Vec::new();
        assert!(matches!(read_line(&mut r, &mut buf), Err(None)));
    }

    #[test]
    fn an_empty_file_is_an_empty_intact_log() {
        let k = crate::seal::NodeKey::generate().unwrap();
        let trust = Trust {
            org: Uuid::new_v4(),
            keys: vec![k.verifying_key()],
        };
        let r = verify(&mut std::io::Cursor::new(Vec::new()), &trust, None).unwrap();
        assert!(r.ok());
        assert_eq!(r.lines, 0);
        // …unless the store remembers a checkpoint.
        let anchor = Anchor {
            seq: 3,
            hash: [0; 32],
        };
        let r = verify(&mut std::io::Cursor::new(Vec::new()), &trust, Some(anchor)).unwrap();
        assert!(
            matches!(r.problem, Some(Problem::Truncated { anchor: 3, .. })),
            "{r:?}"
        );
    }
}
