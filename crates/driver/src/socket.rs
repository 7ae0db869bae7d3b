//! The CSI Unix socket: created with mode 0600 from the moment it exists,
//! replacing a stale socket but never anything else.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// Something other than a socket is at the endpoint path.
    #[error(
        "refusing to replace {path}: it exists and is not a Unix socket ({kind}); \
         remove it by hand or choose another --endpoint"
    )]
    NotASocket {
        /// The endpoint path.
        path: PathBuf,
        /// What is there instead.
        kind: &'static str,
    },
    /// An IO step failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The failed step.
        what: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SocketError + 'a {
    move |source| SocketError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Binds a listening socket at `path`.
///
/// The parent directory is created when missing. A socket already at `path`
/// is taken to be stale (a previous instance's) and replaced; anything else
/// there is an error and is left alone. The socket is bound inside a private
/// (0700) directory beside `path`, set to 0600 and only then renamed into
/// place, so no other user can ever connect to it, without touching the
/// process-wide umask.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_err("creating socket directory", &parent))?;

    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let ft = meta.file_type();
            if ft.is_socket() {
                std::fs::remove_file(path).map_err(io_err("removing stale socket", path))?;
            } else {
                let kind = if ft.is_dir() {
                    "a directory"
                } else if ft.is_symlink() {
                    "a symbolic link"
                } else if ft.is_file() {
                    "a regular file"
                } else {
                    "a special file"
                };
                return Err(SocketError::NotASocket {
                    path: path.to_path_buf(),
                    kind,
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }

    let private = parent.join(format!(".csi-sock-{}", std::process::id()));
    // A leftover from a crashed start with the same pid: remove it.
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_err("creating private socket directory", &private))?;
    let result = (|| {
        let tmp = private.join("csi.sock");
        let listener = UnixListener::bind(&tmp).map_err(io_err("binding", &tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("setting mode 0600 on", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err("moving socket into place at", path))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Removes the socket at `path` if it is (still) a socket.
pub fn remove(path: &Path) {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_is_0600_and_regular_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/csi.sock");
        let l = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(l);
        // stale socket is replaced
        let _l2 = bind(&path).unwrap();

        let file = dir.path().join("file.sock");
        std::fs::write(&file, b"keep me").unwrap();
        let err = bind(&file).unwrap_err();
        assert!(err.to_string().contains("not a Unix socket"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    }
}
