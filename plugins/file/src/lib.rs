//! The `file` backend: secrets from files beneath a root folder on the Nomad client.
//!
//! `fetch prod/db.json` reads `<root>/prod/db.json`. The root is the operator's `root` setting
//! and never the job's: a job's `env {}` cannot widen what it may read. The kernel keeps every
//! open beneath the root (see [`resolve`]).
//!
//! | what the path names           | result                                                    |
//! |-------------------------------|-----------------------------------------------------------|
//! | `*.json` (or `?format=json`)  | the JSON conversion policy: one key per top-level field   |
//! | `*.env` (or `?format=env`)    | one key per variable (see `nomad_secrets_protocol::dotenv`)                     |
//! | any other file (`format=text`)| `value`: the text without one trailing newline; bytes that |
//! |                               | are not UTF-8 give `value_base64`                          |
//! | a folder                      | one key per regular file in it (names starting with `.`,  |
//! |                               | subfolders and special files are skipped), read as text;  |
//! |                               | a file that is not UTF-8 gives `<name>_base64`             |
//!
//! Files and folders larger than `max_size` (default 1 MiB, in total for a folder) are refused.
#![deny(missing_docs)]

pub mod resolve;

use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;

use nomad_secrets_protocol::convert::base64_text;
use std::path::{Path, PathBuf};

use nomad_secrets_protocol::{Backend, Error, Key, Request, Secret, Secrets, Setting, Settings};

use crate::resolve::{Dir, Opened, Strategy, describe};

/// The folder that holds the secrets.
pub const ROOT: Key<Path> = Key::path(
    "root",
    "folder that holds the secrets; jobs can read nothing outside it",
)
.unset("(required)");
/// The largest read.
pub const MAX_SIZE: Key<u64> = Key::size(
    "max_size",
    "largest file (or folder, in total) a fetch may read",
)
.default("1MiB");

/// The `file` plugin: a root folder and a size limit, read from the settings.
pub struct FileBackend {
    root: PathBuf,
    max_size: u64,
}

impl Backend for FileBackend {
    const NAME: &'static str = "file";
    const SETTINGS: &'static [Setting] = &[ROOT.setting, MAX_SIZE.setting];
    const OPTIONS: &'static [&'static str] = &["format"];

    fn new(settings: &Settings) -> Result<FileBackend, Error> {
        let root = settings
            .get(&ROOT)
            .ok_or_else(|| settings.missing(&ROOT, "\"/etc/nomad-secrets\""))?;
        Ok(FileBackend {
            root: root.to_owned(),
            max_size: settings.get(&MAX_SIZE).expect("max_size has a default"),
        })
    }

    /// The root can be opened and listed.
    fn check(&self, _settings: &Settings, _deadline: std::time::Instant) -> Result<String, Error> {
        let root_path = &self.root;
        let root = Dir::open_root(root_path)?;
        let names = root.names().map_err(|e| {
            Error::unavailable(format!(
                "cannot list `{}`: {}",
                root_path.display(),
                describe(&e)
            ))
        })?;
        Ok(format!(
            "secrets root `{}` is readable; entries: {}",
            root_path.display(),
            names.len()
        ))
    }

    /// `a//./b` is `a/b`; `..` and absolute paths are refused here already.
    fn normalise(locator: &str, _settings: &Settings) -> Result<String, Error> {
        resolve::relative_components(locator).map(|components| components.join("/"))
    }

    fn fetch(&self, request: &Request) -> Result<Secrets, Error> {
        let (root_path, limit) = (&self.root, self.max_size);
        let locator = request.path.locator();
        let components = resolve::relative_components(locator)?;
        let format = Format::choose(
            request.path.option("format"),
            components[components.len() - 1],
        )?;

        let root = Dir::open_root(root_path)?;
        let (opened, strategy) = match root.open(&components, Strategy::Beneath) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => (
                root.open(&components, Strategy::NoSymlinks),
                Strategy::NoSymlinks,
            ),
            other => (other, Strategy::Beneath),
        };
        let reader = Reader {
            request,
            root: &root,
            limit,
            strategy,
        };
        match opened.map_err(|e| reader.open_error(&e, locator).because(e))? {
            Opened::File(file, size) => {
                reader.check_real_path(|| resolve::real_path(file.as_raw_fd()), locator)?;
                let bytes = reader.read(file, size, limit, locator)?;
                format.convert(bytes, locator)
            }
            Opened::Dir(dir) if request.path.option("format").is_some() => {
                drop(dir);
                Err(Error::invalid_path(format!(
                    "`{locator}` is a folder; `format` applies to files only"
                )))
            }
            Opened::Dir(dir) => {
                reader.check_real_path(|| dir.real_path(), locator)?;
                reader.folder(&dir, locator)
            }
            Opened::Other => Err(not_regular(locator)),
        }
    }
}

/// How a file's bytes become keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Env,
    Text,
}

impl Format {
    /// The `format` option if given, else the file name's extension.
    fn choose(option: Option<&str>, name: &str) -> Result<Format, Error> {
        match option {
            Some("json") => Ok(Format::Json),
            Some("env") => Ok(Format::Env),
            Some("text") => Ok(Format::Text),
            Some(other) => Err(Error::invalid_path(format!("unknown format `{other}`"))
                .hint("the formats are `json`, `env` and `text`")),
            None if name.ends_with(".json") => Ok(Format::Json),
            None if name.ends_with(".env") => Ok(Format::Env),
            None => Ok(Format::Text),
        }
    }

    fn convert(self, bytes: Vec<u8>, locator: &str) -> Result<Secrets, Error> {
        let text = |bytes: Vec<u8>| {
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::invalid_secret(format!("`{locator}` is not UTF-8 text"))
                    .hint("use `?format=text` to get it as `value_base64`")
            })?;
            Ok::<_, Error>(match text.strip_prefix('\u{feff}') {
                Some(without_bom) => without_bom.to_owned(),
                None => text,
            })
        };
        match self {
            Format::Json => Secrets::from_json(&text(bytes)?),
            Format::Env => nomad_secrets_protocol::dotenv::parse(&text(bytes)?),
            Format::Text => Ok(Secrets::from_bytes(trim_newline(bytes))),
        }
    }
}

/// Drops one trailing `\n` or `\r\n` from text (what `echo` and editors add); binary is kept.
fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if std::str::from_utf8(&bytes).is_ok() && bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    bytes
}

struct Reader<'a> {
    request: &'a Request,
    root: &'a Dir,
    limit: u64,
    strategy: Strategy,
}

impl Reader<'_> {
    /// Checks the access policy against the path really opened, every symlink resolved: the
    /// protocol checked the path as written, but a symlink inside an allowed folder may lead to
    /// another one. Without a policy there is nothing to check.
    /// `real` is only called when there is a policy: it costs a readlink.
    fn check_real_path(
        &self,
        real: impl FnOnce() -> io::Result<std::path::PathBuf>,
        shown: &str,
    ) -> Result<(), Error> {
        if !self.request.settings.policy().exists() {
            return Ok(());
        }
        let cannot_tell = || {
            Error::denied(format!(
                "cannot tell where `{shown}` really leads (is /proc mounted?), so the access policy cannot be checked"
            ))
        };
        let (Ok(real), Ok(root)) = (real(), self.root.real_path()) else {
            return Err(cannot_tell());
        };
        let relative = real
            .strip_prefix(&root)
            .ok()
            .and_then(|r| r.to_str())
            .ok_or_else(cannot_tell)?;
        // The target is not named: the job must not learn what other paths exist.
        self.request.check_policy(relative).map_err(|_| {
            Error::denied(format!(
                "`{shown}` leads through a symbolic link to a file that the operator's access \
                 policy in `{}` does not let this job read",
                self.request.settings.file().display()
            ))
            .hint("ask the operator to add an [[allow]] rule for it, or to replace the link")
        })
    }

    /// Reads at most `budget` bytes; more is an error, whatever `fstat` said.
    fn read(
        &self,
        file: std::fs::File,
        size: u64,
        budget: u64,
        shown: &str,
    ) -> Result<Vec<u8>, Error> {
        if size > budget {
            return Err(self.too_large(shown));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(budget + 1).read_to_end(&mut bytes).map_err(|e| {
            Error::unavailable(format!("cannot read `{shown}`: {}", describe(&e))).because(e)
        })?;
        if bytes.len() as u64 > budget {
            return Err(self.too_large(shown));
        }
        Ok(bytes)
    }

    fn folder(&self, dir: &Dir, locator: &str) -> Result<Secrets, Error> {
        let names = dir.names().map_err(|e| {
            Error::unavailable(format!("cannot list `{locator}`: {}", describe(&e)))
        })?;
        let mut secrets = Secrets::new();
        let mut budget = self.limit;
        for name in names {
            if name.starts_with(b".") {
                continue;
            }
            let name = String::from_utf8(name).map_err(|_| {
                Error::invalid_secret(format!(
                    "the folder `{locator}` holds a file whose name is not UTF-8"
                ))
            })?;
            let shown = format!("{}/{name}", locator.trim_end_matches('/'));
            let opened = dir.open(&[&name], self.strategy).map_err(|e| {
                if e.raw_os_error() == Some(libc::EXDEV) {
                    Error::denied(format!(
                        "`{shown}` leads outside the folder `{locator}` (through a symbolic link)"
                    ))
                    .hint("a folder's files are read only when they stay inside it")
                } else {
                    self.open_error(&e, &shown)
                }
            })?;
            let Opened::File(file, size) = opened else {
                continue;
            };
            self.check_real_path(|| resolve::real_path(file.as_raw_fd()), &shown)?;
            let bytes = self.read(file, size, budget, &shown)?;
            budget -= bytes.len() as u64;
            let bytes = trim_newline(bytes);
            let (key, value) = match String::from_utf8(bytes) {
                Ok(text) => (name, text),
                Err(binary) => (format!("{name}_base64"), base64_text(binary.as_bytes())),
            };
            secrets.insert(key, Secret::new(value))?;
        }
        Ok(secrets)
    }

    fn too_large(&self, shown: &str) -> Error {
        Error::invalid_secret(format!(
            "`{shown}` is larger than the {} bytes allowed by `max_size`",
            self.limit
        ))
        .hint(format!(
            "the operator can raise `max_size` in `{}`",
            self.request.settings.file().display()
        ))
    }

    fn open_error(&self, error: &io::Error, shown: &str) -> Error {
        match error.raw_os_error() {
            Some(libc::ENOENT) => Error::not_found(format!("no secret file `{shown}` under the secrets root"))
                .hint(format!(
                    "check the job's secret path; the operator's root is `{}`",
                    self.request.settings.get(&ROOT).map(|p| p.display().to_string()).unwrap_or_default()
                )),
            Some(libc::ENOTDIR) => Error::not_found(format!(
                "no secret file `{shown}`: a part of the path is a file, not a folder"
            )),
            Some(libc::EXDEV) => Error::denied(format!(
                "`{shown}` leads outside the secrets root (through a symbolic link or `..`)"
            )),
            Some(libc::ELOOP) => match self.strategy {
                Strategy::NoSymlinks => Error::denied(format!(
                    "`{shown}` goes through a symbolic link, which this plugin does not follow on this \
                     kernel (no openat2 before Linux 5.6)"
                ))
                .hint("replace the link with the file itself"),
                Strategy::Beneath => Error::denied(format!(
                    "`{shown}` goes through a /proc magic link or a symbolic link loop"
                )),
            },
            Some(libc::EACCES | libc::EPERM) => Error::denied(format!(
                "the plugin may not read `{shown}`: permission denied"
            ))
            .hint("the plugin runs as the Nomad agent's user; make the file readable by it"),
            _ => Error::unavailable(format!("cannot open `{shown}`: {}", describe(error))),
        }
    }
}

fn not_regular(shown: &str) -> Error {
    Error::denied(format!(
        "`{shown}` is not a regular file or folder (a FIFO, socket or device is never read)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_option_or_extension() {
        assert_eq!(Format::choose(None, "db.json").unwrap(), Format::Json);
        assert_eq!(Format::choose(None, "app.env").unwrap(), Format::Env);
        assert_eq!(Format::choose(None, ".env").unwrap(), Format::Env);
        assert_eq!(Format::choose(None, "key.pem").unwrap(), Format::Text);
        assert_eq!(Format::choose(Some("json"), "x.txt").unwrap(), Format::Json);
        assert_eq!(
            Format::choose(Some("yaml"), "x").unwrap_err().to_string(),
            "unknown format `yaml` (hint: the formats are `json`, `env` and `text`)"
        );
    }

    #[test]
    fn one_trailing_newline_is_dropped_from_text_only() {
        assert_eq!(trim_newline(b"pw\n".to_vec()), b"pw");
        assert_eq!(trim_newline(b"pw\r\n".to_vec()), b"pw");
        assert_eq!(trim_newline(b"pw\n\n".to_vec()), b"pw\n");
        assert_eq!(trim_newline(vec![0xff, b'\n']), vec![0xff, b'\n']);
    }
}
