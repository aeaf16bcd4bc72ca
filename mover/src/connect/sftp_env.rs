//! SFTP options from a repository URL and environment variables.
//!
//! | setting | sources, highest first | default |
//! |---|---|---|
//! | host | `SFTP_HOST`, host of `sftp://[USER@]HOST[:PORT]/PATH` | required |
//! | port | `SFTP_PORT`, port of the URL | 22 |
//! | user | `SFTP_USERNAME`, user of the URL | required |
//! | path | `SFTP_PATH`, path of the URL (`sftp://host/srv/kopia` is `/srv/kopia`) | required |
//! | password | `SFTP_PASSWORD` (when set, the key is not used, as in Kopia) | none |
//! | key file | `SFTP_KEY_FILE` (the mover mounts the key at `/credentials/sftp_key`) | required without a password |
//! | known hosts | `SFTP_KNOWN_HOSTS_DATA` (the file's contents; wins, as in Kopia), `SFTP_KNOWN_HOSTS` (a path), else `$HOME/.ssh/known_hosts` | — |
//!
//! These are VolSync's names, passed by its script as Kopia's `--host`, `--port`,
//! `--username`, `--path`, `--sftp-password`, `--keyfile`, `--known-hosts` and
//! `--known-hosts-data`. Like Kopia, the server's host key must be in the known hosts.

use std::path::PathBuf;

use arkiv_engine::blob::sftp::{KnownHosts, SftpAuth, SftpOptions};
use arkiv_engine::{Error, Result};

use super::proxy_env::first;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// SFTP options from `sftp://…` (or `""`) and the environment.
pub fn sftp_options_from_env(url: &str, env: Env<'_>) -> Result<SftpOptions> {
    let url = url.trim();
    let bad = |why: &str| {
        Error::Config(format!(
            "invalid repository URL {url:?}: {why} (expected sftp://USER@HOST[:PORT]/PATH)"
        ))
    };
    let (mut host, mut port, mut user, mut path) = (None, None, None, None);
    if !url.is_empty() {
        let rest = url
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("sftp://"))
            .and_then(|_| url.get(7..))
            .ok_or_else(|| bad("not an sftp:// URL"))?;
        let (authority, p) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (u, hp) = match authority.rsplit_once('@') {
            Some((u, hp)) => (Some(u), hp),
            None => (None, authority),
        };
        if u.is_some_and(|u| u.contains(':')) {
            // Not `bad`: the message must not repeat the password.
            return Err(Error::Config(
                "invalid repository URL: a password in an sftp:// URL is not accepted; set \
                 SFTP_PASSWORD"
                    .into(),
            ));
        }
        let (h, pt) = match hp.rsplit_once(':') {
            Some((h, pt)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(pt)),
            _ => (hp, None),
        };
        host = Some(h.trim_matches(['[', ']']).to_owned()).filter(|h| !h.is_empty());
        port = pt.map(str::to_owned);
        user = u.map(str::to_owned);
        path = Some(p.to_owned()).filter(|p| !p.is_empty());
    }
    let host = first(env, &["SFTP_HOST"]).or(host).ok_or_else(|| {
        Error::Config("SFTP host not set: give sftp://USER@HOST/PATH or set SFTP_HOST".into())
    })?;
    let port = match first(env, &["SFTP_PORT"]).or(port) {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Error::Config(format!("invalid SFTP port {p:?}: expected 1..65535")))?,
        None => 22,
    };
    let user = first(env, &["SFTP_USERNAME"]).or(user).ok_or_else(|| {
        Error::Config("SFTP user not set: give sftp://USER@HOST/PATH or set SFTP_USERNAME".into())
    })?;
    let path = first(env, &["SFTP_PATH"]).or(path).ok_or_else(|| {
        Error::Config("SFTP path not set: give sftp://USER@HOST/PATH or set SFTP_PATH".into())
    })?;
    let auth = match (
        first(env, &["SFTP_PASSWORD"]),
        first(env, &["SFTP_KEY_FILE"]),
    ) {
        (Some(pw), _) => SftpAuth::Password(pw),
        (None, Some(key)) => SftpAuth::KeyFile(PathBuf::from(key)),
        (None, None) => {
            return Err(Error::Config(
                "SFTP needs SFTP_PASSWORD or SFTP_KEY_FILE (a private key file)".into(),
            ));
        }
    };
    let known_hosts = match (
        first(env, &["SFTP_KNOWN_HOSTS_DATA"]),
        first(env, &["SFTP_KNOWN_HOSTS"]),
    ) {
        (Some(data), _) => KnownHosts::Data(data),
        (None, Some(file)) => KnownHosts::File(PathBuf::from(file)),
        (None, None) => match first(env, &["HOME"]) {
            Some(home) => KnownHosts::File(PathBuf::from(home).join(".ssh/known_hosts")),
            None => {
                return Err(Error::Config(
                    "SFTP host keys: set SFTP_KNOWN_HOSTS (a known_hosts file) or \
                     SFTP_KNOWN_HOSTS_DATA (its contents); HOME is not set"
                        .into(),
                ));
            }
        },
    };
    let mut o = SftpOptions::new(host, user, path, auth, known_hosts);
    o.port = port;
    Ok(o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::connect::test_env as env;

    #[test]
    fn url_forms_and_variables() {
        let o = sftp_options_from_env(
            "sftp://backup@nas.lan:2222/srv/kopia",
            &env(&[
                ("SFTP_KEY_FILE", "/credentials/sftp_key"),
                ("HOME", "/home/u"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                o.host.as_str(),
                o.port,
                o.username.as_str(),
                o.path.as_str()
            ),
            ("nas.lan", 2222, "backup", "/srv/kopia")
        );
        assert_eq!(o.auth, SftpAuth::KeyFile("/credentials/sftp_key".into()));
        assert_eq!(
            o.known_hosts,
            KnownHosts::File("/home/u/.ssh/known_hosts".into())
        );
        // The variables win over the URL (the script passes only them); the password wins
        // over the key and the known-hosts data over the file, as in Kopia.
        let vars = [
            ("SFTP_HOST", "10.0.0.5"),
            ("SFTP_PORT", "22"),
            ("SFTP_USERNAME", "kopia"),
            ("SFTP_PATH", "backups"),
            ("SFTP_PASSWORD", "pw"),
            ("SFTP_KEY_FILE", "/k"),
            ("SFTP_KNOWN_HOSTS", "/kh"),
            ("SFTP_KNOWN_HOSTS_DATA", "10.0.0.5 ssh-ed25519 AAAA"),
        ];
        let o = sftp_options_from_env("sftp://x@y:1/z", &env(&vars)).unwrap();
        assert_eq!(
            (
                o.host.as_str(),
                o.port,
                o.username.as_str(),
                o.path.as_str()
            ),
            ("10.0.0.5", 22, "kopia", "backups")
        );
        assert_eq!(o.auth, SftpAuth::Password("pw".into()));
        assert_eq!(
            o.known_hosts,
            KnownHosts::Data("10.0.0.5 ssh-ed25519 AAAA".into())
        );
        assert!(!format!("{o:?}").contains("\"pw\""));
    }

    #[test]
    fn missing_or_bad_settings_are_named() {
        let key = [("SFTP_KEY_FILE", "/k"), ("SFTP_KNOWN_HOSTS", "/kh")];
        let msg = |url: &str, vars: &[(&str, &str)]| {
            sftp_options_from_env(url, &env(vars))
                .unwrap_err()
                .to_string()
        };
        assert!(msg("", &key).contains("SFTP_HOST"));
        assert!(msg("sftp://nas/p", &key).contains("SFTP_USERNAME"));
        assert!(msg("sftp://u@nas", &key).contains("SFTP_PATH"));
        assert!(msg("sftp://u@nas:0/p", &key).contains("invalid SFTP port"));
        assert!(msg("sftp://u@nas/p", &[]).contains("SFTP_KEY_FILE"));
        let m = msg("sftp://u:secret@nas/p", &key);
        assert!(m.contains("SFTP_PASSWORD") && !m.contains("secret"), "{m}");
        assert!(msg("ftp://nas/p", &key).contains("sftp://"));
    }
}
