//! The repository password: from `--password-file`, else `ARKIV_PASSWORD`, else
//! `KOPIA_PASSWORD` (an empty value counts as unset), else — only where the binary allows
//! it — a prompt on the terminal with echo off.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::exit::{self, CliError};
use crate::{Env, non_empty};

/// Whether a binary may ask on the terminal when no password is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Never prompt (`arkiv`: scripts must not hang).
    Never,
    /// Prompt on `/dev/tty` (`arkiv-restore`, for disaster recovery by hand).
    OnTerminal,
}

/// The password from `file`, the environment or (if allowed) the terminal.
pub fn password(file: Option<&Path>, env: Env<'_>, prompt: Prompt) -> Result<String> {
    if let Some(f) = file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("reading password file {}", f.display()))?;
        return Ok(s.trim_end_matches(['\n', '\r']).to_owned());
    }
    if let Some(p) = non_empty(env("ARKIV_PASSWORD")).or_else(|| non_empty(env("KOPIA_PASSWORD"))) {
        return Ok(p);
    }
    match prompt {
        Prompt::Never => Err(CliError::new(
            exit::CONFIG,
            "no password given: set ARKIV_PASSWORD (or KOPIA_PASSWORD) or use --password-file",
        )),
        Prompt::OnTerminal => prompt_password().map_err(|e| {
            CliError::new(
                exit::CONFIG,
                format!(
                    "no password: set ARKIV_PASSWORD or KOPIA_PASSWORD, use --password-file, or \
                     run on a terminal ({e})"
                ),
            )
        }),
    }
}

/// Reads a password from the controlling terminal with echo off.
fn prompt_password() -> std::io::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = tcgetattr(&tty).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tty.write_all(b"Repository password: ")?;
    tty.flush()?;
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let mut line = String::new();
    let read = std::io::BufRead::read_line(&mut std::io::BufReader::new(&tty), &mut line);
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_then_arkiv_then_kopia_and_empty_counts_as_unset() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\r\n").unwrap();
        let env = |k: &str| match k {
            "ARKIV_PASSWORD" => Some(String::new()),
            "KOPIA_PASSWORD" => Some("kopia".to_owned()),
            _ => None,
        };
        assert_eq!(
            password(Some(&f), &env, Prompt::Never).unwrap(),
            "from-file"
        );
        assert_eq!(password(None, &env, Prompt::Never).unwrap(), "kopia");
        let none = |_: &str| None;
        let e = password(None, &none, Prompt::Never).unwrap_err();
        assert_eq!(exit::code_for(&e), exit::CONFIG);
    }
}
