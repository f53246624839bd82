//! The node's signing key: generated from OS randomness, kept in a PKCS#8 PEM file
//! that only its owner may read, never printed.
//!
//! The key id is the first 8 bytes of SHA-256 over the 32-byte public key, in
//! lowercase hex (16 characters, docs/design.md §4). It names a key in seals and in the
//! trust list; it is a hint, not a proof — a seal verifies only under the full
//! public key the trust list holds for that id, so a key made to collide with a
//! trusted id gains nothing.

use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Identifies a signing key: the first 8 bytes of SHA-256(public key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> KeyId {
        let h = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = String;
    /// Exactly 16 lowercase hex digits: one spelling per key, so key ids compare as
    /// strings too.
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("\"{s}\" is not a key id (16 lowercase hex digits)"));
        }
        let mut id = [0u8; 8];
        hex::decode_to_slice(s, &mut id).map_err(|e| format!("\"{s}\": {e}"))?;
        Ok(KeyId(id))
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a base64 (standard alphabet, padded) ed25519 public key, as `sluis keys`
/// prints it and the config's `public_key` holds it.
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("{} bytes, an ed25519 public key has 32", bytes.len()))?;
    let key = VerifyingKey::from_bytes(&arr).map_err(|_| "not a valid ed25519 point".to_owned())?;
    // A small-order key would accept forged signatures under lax verification;
    // `verify_strict` refuses them anyway, and so do we, as early as possible.
    if key.is_weak() {
        return Err("a weak (small-order) ed25519 key".to_owned());
    }
    Ok(key)
}

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `save` never replaces a key: losing the node's identity by accident is worse
    /// than an error.
    #[error("{path} already exists; refusing to overwrite a signing key")]
    Exists { path: PathBuf },
    #[error("{path} is readable or writable by group or others (mode {mode:03o}); run `chmod 600 {path}`")]
    Insecure { path: PathBuf, mode: u32 },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} is not a PKCS#8 PEM ed25519 private key: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// The node's ed25519 signing key.
///
/// `Debug` shows only the key id and public key; the secret is zeroed on drop by
/// ed25519-dalek (`zeroize` feature, on by default) and never leaves this type
/// except through [`NodeKey::save`]. Not `Clone` on purpose: share it behind an
/// `Arc` rather than copy the secret around.
pub struct NodeKey {
    signing: SigningKey,
    key_id: KeyId,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_b64())
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<NodeKey, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(NodeKey::from_signing_key(SigningKey::from_bytes(&seed)))
    }

    fn from_signing_key(signing: SigningKey) -> NodeKey {
        let key_id = KeyId::of(&signing.verifying_key());
        NodeKey { signing, key_id }
    }

    /// The public half, as peers put it in their trust lists.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key in base64 (standard, padded): what `sluis keys` prints and a
    /// partner puts in its `[[peer]]`/`[[origin]]` `public_key`.
    pub fn public_key_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.signing.verifying_key().as_bytes())
    }

    /// This key's id (see the module documentation).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// Writes the key as PKCS#8 PEM to `path`, which must not exist yet.
    ///
    /// The file is created beside `path` under a temporary name with mode 0600
    /// (set before any byte of the key is written), synced, then linked to `path`
    /// in one step, so `path` is either absent or complete and private — never a
    /// half-written or briefly world-readable key. Linking rather than renaming is
    /// what makes "must not exist" race-free.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |action: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| KeyError::Io {
                action,
                path: p,
                source,
            }
        };
        let pem = self
            .signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Format {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map_or_else(
            || "signing.key".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(nonce)));

        let result = (|| {
            let mut f = create_private(&tmp).map_err(io("create", &tmp))?;
            f.write_all(pem.as_bytes()).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("sync", &tmp))?;
            drop(f);
            std::fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyError::Exists {
                        path: path.to_path_buf(),
                    }
                } else {
                    io("create", path)(e)
                }
            })?;
            // Make the new directory entry durable; failing to open a directory
            // for syncing (some filesystems) is not worth failing the save.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }

    /// Reads a key written by [`NodeKey::save`] (or any PKCS#8 PEM ed25519 key).
    ///
    /// Refuses a file that group or others may read or write, as ssh does: a
    /// signing key that others could read is no longer this node's alone, and the
    /// operator should know before it signs anything.
    pub fn load(path: &Path) -> Result<NodeKey, KeyError> {
        let mut f = std::fs::File::open(path).map_err(|source| KeyError::Io {
            action: "open",
            path: path.to_path_buf(),
            source,
        })?;
        let meta = f.metadata().map_err(|source| KeyError::Io {
            action: "stat",
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        check_private(path, &meta)?;
        let mut pem = Zeroizing::new(String::new());
        f.read_to_string(&mut pem).map_err(|source| KeyError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(NodeKey::from_signing_key(signing))
    }

    /// Loads the key at `path`, or creates and saves a new one if there is none
    /// (first start of a node). The flag says whether a key was created.
    pub fn load_or_create(path: &Path) -> Result<(NodeKey, bool), KeyError> {
        match NodeKey::load(path) {
            Ok(k) => Ok((k, false)),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let k = NodeKey::generate()?;
                k.save(path)?;
                Ok((k, true))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(unix)]
fn create_private(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)?;
    // The umask can only clear bits of 0600, but be explicit: the mode is set
    // before the key is written.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

#[cfg(not(unix))]
fn create_private(p: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Insecure {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;

    #[test]
    fn key_id_is_sha256_prefix_in_lower_hex() {
        let k = NodeKey::generate().unwrap();
        let h = Sha256::digest(k.verifying_key().as_bytes());
        assert_eq!(k.key_id().to_string(), hex::encode(&h[..8]));
        assert_eq!(k.key_id().to_string().parse::<KeyId>().unwrap(), k.key_id());
        assert!("ABCDEF0123456789".parse::<KeyId>().is_err());
        assert!("abcdef012345678".parse::<KeyId>().is_err());
        assert!("abcdef012345678g".parse::<KeyId>().is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = NodeKey::generate().unwrap();
        let dbg = format!("{k:?}");
        let secret = k.signing.to_bytes();
        assert!(!dbg.contains(&hex::encode(secret)), "{dbg}");
        assert!(!dbg.contains(&base64::engine::general_purpose::STANDARD.encode(secret)));
        assert!(!dbg.contains(&format!("{secret:?}")));
        assert!(dbg.contains(&k.key_id().to_string()));
    }

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let k = NodeKey::generate().unwrap();
        k.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
        let back = NodeKey::load(&path).unwrap();
        assert_eq!(back.key_id(), k.key_id());
        let sig = back.sign(b"m");
        k.verifying_key().verify(b"m", &sig).unwrap();
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn save_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        NodeKey::generate().unwrap().save(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = NodeKey::generate().unwrap().save(&path).unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn load_refuses_group_or_world_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        NodeKey::generate().unwrap().save(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = NodeKey::load(&path).unwrap_err();
            assert!(matches!(err, KeyError::Insecure { .. }), "{err}");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        NodeKey::load(&path).unwrap();
    }

    #[test]
    fn load_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        assert!(matches!(NodeKey::load(&missing), Err(KeyError::Io { .. })));
        assert!(matches!(
            NodeKey::load(dir.path()),
            Err(KeyError::NotAFile { .. })
        ));
        let junk = dir.path().join("junk.key");
        let f = create_private(&junk).unwrap();
        drop(f);
        std::fs::write(&junk, "not a key").unwrap();
        assert!(matches!(NodeKey::load(&junk), Err(KeyError::Format { .. })));
    }

    #[test]
    fn load_or_create_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let (a, created) = NodeKey::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = NodeKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.key_id(), b.key_id());
    }

    #[test]
    fn public_key_parsing() {
        let k = NodeKey::generate().unwrap();
        assert_eq!(
            parse_public_key(&k.public_key_b64()).unwrap(),
            k.verifying_key()
        );
        assert!(parse_public_key("not base64!").is_err());
        assert!(parse_public_key("AAAA").is_err());
        // The identity point is a small-order (weak) key.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let weak = base64::engine::general_purpose::STANDARD.encode(ident);
        assert!(parse_public_key(&weak).unwrap_err().contains("weak"));
    }
}
