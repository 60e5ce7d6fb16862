//! Where the platform is and which token to use: `--url`/`--token` flags, then `CLAW_URL`/
//! `CLAW_TOKEN`, then the file `claw login` writes (`$XDG_CONFIG_HOME/claw/config.json`, else
//! `~/.config/claw/config.json`, mode 0600). Each setting is taken from the first source that
//! has it. The token is held in [`Token`], whose `Debug` never shows it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

pub const ENV_URL: &str = "CLAW_URL";
pub const ENV_TOKEN: &str = "CLAW_TOKEN";

/// A bearer token (operator token or creator key). Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn new(s: impl Into<String>) -> Token {
        Token(s.into())
    }
    /// The value, for the `authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The config file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
}

/// One source of settings.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub url: Option<String>,
    pub token: Option<Token>,
}

/// The settings in force, and where each came from (for `claw whoami`, never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub url: Option<String>,
    pub url_from: &'static str,
    pub token: Option<Token>,
    pub token_from: &'static str,
}

fn non_empty<T, F: Fn(&T) -> bool>(v: Option<T>, empty: F) -> Option<T> {
    v.filter(|x| !empty(x))
}

/// Flags over the environment over the file; an empty value counts as unset.
pub fn resolve(flags: Source, env: Source, file: Source) -> Resolved {
    let mut r = Resolved {
        url: None,
        url_from: "unset",
        token: None,
        token_from: "unset",
    };
    for (src, name) in [(file, "config file"), (env, "environment"), (flags, "flag")] {
        if let Some(u) = non_empty(src.url, |u: &String| u.trim().is_empty()) {
            r.url = Some(u.trim().trim_end_matches('/').to_owned());
            r.url_from = name;
        }
        if let Some(t) = non_empty(src.token, |t: &Token| t.0.trim().is_empty()) {
            r.token = Some(Token(t.0.trim().to_owned()));
            r.token_from = name;
        }
    }
    r
}

/// The config file's path: `$XDG_CONFIG_HOME/claw/config.json`, else
/// `$HOME/.config/claw/config.json`.
pub fn file_path(xdg_config_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match (xdg_config_home, home) {
        (Some(x), _) if !x.is_empty() => PathBuf::from(x),
        (_, Some(h)) if !h.is_empty() => Path::new(h).join(".config"),
        _ => return None,
    };
    Some(base.join("claw").join("config.json"))
}

pub fn default_file_path() -> Option<PathBuf> {
    file_path(
        std::env::var("XDG_CONFIG_HOME").ok().as_deref(),
        std::env::var("HOME").ok().as_deref(),
    )
}

/// Reads the config file; absent is empty, unreadable is an error (naming the path only).
pub fn read_file(path: &Path) -> Result<FileConfig, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a claw config file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the config file with mode 0600 (its directory 0700), replacing it atomically.
pub fn write_file(path: &Path, config: &FileConfig) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().ok_or("the config path has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let body = serde_json::to_vec_pretty(config).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // create_new with a mode is 0600 minus the umask; make sure of it.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(url: Option<&str>, token: Option<&str>) -> Source {
        Source {
            url: url.map(str::to_owned),
            token: token.map(Token::new),
        }
    }

    #[test]
    fn flags_override_env_override_file() {
        let r = resolve(
            src(Some("https://flag"), None),
            src(Some("https://env"), Some("env-token")),
            src(Some("https://file"), Some("file-token")),
        );
        assert_eq!(r.url.as_deref(), Some("https://flag"));
        assert_eq!(r.url_from, "flag");
        assert_eq!(r.token.as_ref().map(Token::expose), Some("env-token"));
        assert_eq!(r.token_from, "environment");

        let r = resolve(
            Source::default(),
            src(None, None),
            src(Some("https://file/"), Some("file-token")),
        );
        assert_eq!(r.url.as_deref(), Some("https://file"));
        assert_eq!(r.token.as_ref().map(Token::expose), Some("file-token"));
        assert_eq!(r.token_from, "config file");

        let r = resolve(
            src(None, Some("flag-token")),
            src(Some(""), Some("env-token")),
            src(Some("https://file"), None),
        );
        // An empty CLAW_URL does not hide the file's URL.
        assert_eq!(r.url.as_deref(), Some("https://file"));
        assert_eq!(r.token.as_ref().map(Token::expose), Some("flag-token"));

        let r = resolve(Source::default(), Source::default(), Source::default());
        assert_eq!((r.url, r.token), (None, None));
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = Token::new("claw_ck_0123_secret");
        assert!(!format!("{t:?}").contains("secret"));
        let r = resolve(
            src(None, Some("claw_ck_0123_secret")),
            Source::default(),
            Source::default(),
        );
        assert!(!format!("{r:?}").contains("secret"));
    }

    #[test]
    fn file_path_prefers_xdg() {
        assert_eq!(
            file_path(Some("/x"), Some("/home/u")),
            Some(PathBuf::from("/x/claw/config.json"))
        );
        assert_eq!(
            file_path(Some(""), Some("/home/u")),
            Some(PathBuf::from("/home/u/.config/claw/config.json"))
        );
        assert_eq!(file_path(None, None), None);
    }

    #[test]
    fn file_is_written_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("claw-cli-test-{}", std::process::id()));
        let path = dir.join("claw").join("config.json");
        let config = FileConfig {
            url: Some("http://127.0.0.1:8787".into()),
            token: Some(Token::new("tok")),
        };
        write_file(&path, &config).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_file(&path).unwrap(), config);
        // Rewriting keeps 0600 and replaces the content.
        write_file(&path, &FileConfig::default()).unwrap();
        assert_eq!(read_file(&path).unwrap(), FileConfig::default());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(read_file(&path).unwrap(), FileConfig::default());
    }
}
