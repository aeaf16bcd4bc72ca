//! The password KDF of the format key (`keyAlgo`, FORMAT.md §2.2; kopia
//! `repo/format/format_encryption_key.go`, `internal/crypto`).

use std::fmt;
use std::str::FromStr;

use sha2::Sha256;

use super::MIN_SALT_LEN;
use crate::{Error, Result};

/// Password-based key derivation of the format key (`keyAlgo`, FORMAT.md §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyDerivation {
    /// `scrypt-65536-8-1`: scrypt N=65536, r=8, p=1 (kopia's default).
    #[default]
    Scrypt65536_8_1,
    /// `pbkdf2-sha256-600000`: PBKDF2-HMAC-SHA256 with 600 000 iterations.
    Pbkdf2Sha256_600000,
}

impl KeyDerivation {
    /// Kopia's name.
    pub fn name(self) -> &'static str {
        match self {
            KeyDerivation::Scrypt65536_8_1 => "scrypt-65536-8-1",
            KeyDerivation::Pbkdf2Sha256_600000 => "pbkdf2-sha256-600000",
        }
    }
}

impl fmt::Display for KeyDerivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyDerivation {
    type Err = Error;

    /// Parses kopia's name; `testing-only-insecure` (test builds of kopia) and unknown or empty
    /// names are [`Error::Unsupported`].
    fn from_str(s: &str) -> Result<Self> {
        [
            KeyDerivation::Scrypt65536_8_1,
            KeyDerivation::Pbkdf2Sha256_600000,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| Error::unsupported("key derivation algorithm", s))
    }
}

/// Derives the 32-byte format key from the password, salted with the repository `uniqueID`
/// (at least 16 bytes). Slow by design (scrypt ~64 MiB of memory).
pub fn derive_format_key(
    algo: KeyDerivation,
    password: &str,
    unique_id: &[u8],
) -> Result<[u8; 32]> {
    if unique_id.len() < MIN_SALT_LEN {
        return Err(Error::invalid(
            "password salt",
            format!(
                "uniqueID is {} bytes, at least {MIN_SALT_LEN} are required",
                unique_id.len()
            ),
        ));
    }
    let mut out = [0u8; 32];
    match algo {
        KeyDerivation::Scrypt65536_8_1 => {
            let params = scrypt::Params::new(16, 8, 1, 32)
                .map_err(|e| Error::invalid("scrypt parameters", e.to_string()))?;
            scrypt::scrypt(password.as_bytes(), unique_id, &params, &mut out)
                .map_err(|e| Error::invalid("scrypt output", e.to_string()))?;
        }
        KeyDerivation::Pbkdf2Sha256_600000 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), unique_id, 600_000, &mut out);
        }
    }
    Ok(out)
}
