//! Opening a path beneath the secrets root so that nothing a job writes can leave it.
//!
//! The kernel enforces it: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` fails with `EXDEV`
//! for `..`, absolute symlinks and any symlink whose target is outside the root, and refuses
//! `/proc/self/...`-style magic links. On kernels without `openat2` (Linux < 5.6, such as RHEL 8)
//! the path is walked one component at a time with `O_NOFOLLOW`, so every symlink is refused.
//! Files are opened `O_NONBLOCK` so that a FIFO cannot hang a fetch.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use nomad_secrets_protocol::Error;

/// How paths are resolved: `Beneath` first, `NoSymlinks` when the kernel has no `openat2`
/// (the fallback is chosen per fetch in `lib.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// `openat2` with `RESOLVE_BENEATH`: symlinks that stay beneath the root are followed.
    Beneath,
    /// Component by component with `O_NOFOLLOW`: no symlink is followed.
    NoSymlinks,
}

/// The checked relative path of a secret under the root: no empty, `.` or `..` component.
pub fn relative_components(locator: &str) -> Result<Vec<&str>, Error> {
    if locator.starts_with('/') {
        return Err(Error::denied("absolute paths are not allowed")
            .hint("write the path relative to the secrets root, like `prod/db.json`"));
    }
    let mut components = Vec::new();
    for component in locator.split('/') {
        match component {
            "" | "." => continue,
            ".." => {
                return Err(Error::denied("`..` is not allowed in a secret path")
                    .hint("write the path relative to the secrets root, without `..`"));
            }
            other => components.push(other),
        }
    }
    if components.is_empty() {
        return Err(Error::denied("the path names the secrets root itself")
            .hint("name a file or folder inside it"));
    }
    Ok(components)
}

/// An open directory: the root, or a folder beneath it.
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Opens the operator's root (its own symlinks, if any, are the operator's choice).
    pub fn open_root(root: &Path) -> Result<Dir, Error> {
        let c_root = c_path(root.as_os_str()).map_err(|_| {
            Error::settings(format!(
                "the secrets root `{}` holds a NUL byte",
                root.display()
            ))
        })?;
        // SAFETY: `c_root` is a valid NUL-terminated string; the result is checked.
        let fd = unsafe {
            libc::open(
                c_root.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let cause = io::Error::last_os_error();
            return Err(Error::settings(format!(
                "cannot open the secrets root `{}`: {}",
                root.display(),
                describe(&cause)
            ))
            .hint("the operator sets `root` in the plugin's settings file; create that folder"));
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens `components` beneath this directory, read-only, as a file or a directory.
    pub fn open(&self, components: &[&str], strategy: Strategy) -> io::Result<Opened> {
        let fd = match strategy {
            Strategy::Beneath => self.open_beneath(&components.join("/"))?,
            Strategy::NoSymlinks => self.open_walk(components)?,
        };
        let file = File::from(fd);
        let metadata = file.metadata()?;
        Ok(if metadata.is_dir() {
            Opened::Dir(Dir { fd: file.into() })
        } else if metadata.is_file() {
            Opened::File(file, metadata.len())
        } else {
            Opened::Other
        })
    }

    /// Where this directory really is, every symlink resolved.
    pub fn real_path(&self) -> io::Result<std::path::PathBuf> {
        real_path(self.fd.as_raw_fd())
    }

    /// The names in this directory, sorted, without `.` and `..`.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        // SAFETY: `dup` of a valid descriptor; fdopendir takes ownership of the copy, closedir
        // releases it; entries are read while the stream is open and copied out.
        unsafe {
            let copy = libc::dup(self.fd.as_raw_fd());
            if copy < 0 {
                return Err(io::Error::last_os_error());
            }
            let stream = libc::fdopendir(copy);
            if stream.is_null() {
                let error = io::Error::last_os_error();
                libc::close(copy);
                return Err(error);
            }
            libc::rewinddir(stream);
            let mut names = Vec::new();
            loop {
                let entry = libc::readdir(stream);
                if entry.is_null() {
                    break;
                }
                let name = CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes();
                if name != b"." && name != b".." {
                    names.push(name.to_vec());
                }
            }
            libc::closedir(stream);
            names.sort();
            Ok(names)
        }
    }

    fn open_beneath(&self, relative: &str) -> io::Result<OwnedFd> {
        let c_relative = c_str(relative)?;
        // SAFETY: open_how is plain data, all-zero is valid; the fields are then set.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: valid descriptor, NUL-terminated path, `how` lives across the call and its
        // size is passed; the result is checked.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                c_relative.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    fn open_walk(&self, components: &[&str]) -> io::Result<OwnedFd> {
        let mut current: Option<OwnedFd> = None;
        for (i, component) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            let flags = libc::O_NOFOLLOW
                | libc::O_CLOEXEC
                | if last {
                    libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK
                } else {
                    libc::O_PATH | libc::O_DIRECTORY
                };
            let parent = current.as_ref().unwrap_or(&self.fd).as_raw_fd();
            let c_component = c_str(component)?;
            // SAFETY: valid descriptor and NUL-terminated name; the result is checked.
            let fd = unsafe { libc::openat(parent, c_component.as_ptr(), flags) };
            if fd < 0 {
                let error = io::Error::last_os_error();
                // O_PATH|O_DIRECTORY on a symlink reports ENOTDIR; say what it really was.
                if !last
                    && error.raw_os_error() == Some(libc::ENOTDIR)
                    && is_symlink(parent, &c_component)
                {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                return Err(error);
            }
            // SAFETY: a fresh descriptor we own.
            current = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        current.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// Where an open descriptor really points, as the kernel resolved it (needs /proc).
pub fn real_path(fd: std::os::fd::RawFd) -> io::Result<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
}

/// What a path turned out to be.
pub enum Opened {
    /// A regular file, with its size as `fstat` reported it.
    File(File, u64),
    /// A directory.
    Dir(Dir),
    /// A FIFO, socket or device: never read.
    Other,
}

fn is_symlink(parent: i32, name: &CStr) -> bool {
    // SAFETY: `stat` is plain data; valid descriptor and name; the result is checked.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstatat(parent, name.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) == 0
            && stat.st_mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// A short, stable description of an OS error (without Rust's "(os error N)" suffix).
pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_lowercase(),
        None => text.to_lowercase(),
    }
}

fn c_str(text: &str) -> io::Result<CString> {
    c_path(OsStr::new(text))
}

fn c_path(text: &OsStr) -> Result<CString, io::Error> {
    CString::new(text.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// root/{a.txt, sub/b.txt, in -> sub/b.txt, out -> /etc/hostname, up -> ../x, via -> sub}
    fn tree(name: &str) -> Scratch {
        let base = std::env::temp_dir().join(format!("resolve-{}-{name}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("x"), "outside").unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("sub/b.txt"), "b").unwrap();
        symlink("sub/b.txt", root.join("in")).unwrap();
        symlink("/etc/hostname", root.join("out")).unwrap();
        symlink("../x", root.join("up")).unwrap();
        symlink("sub", root.join("via")).unwrap();
        Scratch(base)
    }

    fn outcome(dir: &Dir, path: &str, strategy: Strategy) -> String {
        let components: Vec<&str> = path.split('/').collect();
        match dir.open(&components, strategy) {
            Ok(Opened::File(_, size)) => format!("file {size}"),
            Ok(Opened::Dir(_)) => "dir".into(),
            Ok(Opened::Other) => "other".into(),
            Err(e) => describe(&e),
        }
    }

    #[test]
    fn lexical_checks() {
        assert_eq!(relative_components("a//./b").unwrap(), ["a", "b"]);
        for (path, message) in [
            ("/etc/passwd", "absolute paths are not allowed"),
            ("a/../../b", "`..` is not allowed in a secret path"),
            ("./", "the path names the secrets root itself"),
        ] {
            assert_eq!(relative_components(path).unwrap_err().message(), message);
        }
    }

    #[test]
    fn both_strategies_stay_beneath_the_root() {
        let scratch = tree("strategies");
        let root = Dir::open_root(&scratch.0.join("root")).unwrap();
        let expected = [
            // path, beneath, no-symlinks
            ("a.txt", "file 1", "file 1"),
            ("sub", "dir", "dir"),
            ("sub/b.txt", "file 1", "file 1"),
            ("in", "file 1", "too many levels of symbolic links"),
            ("via/b.txt", "file 1", "too many levels of symbolic links"),
            (
                "out",
                "invalid cross-device link",
                "too many levels of symbolic links",
            ),
            (
                "up",
                "invalid cross-device link",
                "too many levels of symbolic links",
            ),
            (
                "missing",
                "no such file or directory",
                "no such file or directory",
            ),
            ("a.txt/x", "not a directory", "not a directory"),
        ];
        for (path, beneath, walk) in expected {
            assert_eq!(
                outcome(&root, path, Strategy::Beneath),
                beneath,
                "{path} beneath"
            );
            assert_eq!(
                outcome(&root, path, Strategy::NoSymlinks),
                walk,
                "{path} walk"
            );
        }
    }

    #[test]
    fn directory_names_are_sorted() {
        let scratch = tree("names");
        let root = Dir::open_root(&scratch.0.join("root")).unwrap();
        let names: Vec<String> = root
            .names()
            .unwrap()
            .into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect();
        assert_eq!(names, ["a.txt", "in", "out", "sub", "up", "via"]);
    }
}
