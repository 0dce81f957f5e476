//! Static files (`serve = "public"` in the config, like PartyKit's `serve`): the folder is
//! read once at start, on the starting thread, into memory, so a shard serves a file with
//! no file I/O at all. Every path that is not a party path (and that the server's
//! `on_fetch` did not answer) is looked up here: `GET` and `HEAD`, content types by
//! extension, a strong `ETag` (answered `304` to a matching `If-None-Match`), `index.html`
//! for folders. Only files under the folder are ever served: the table holds only them
//! (symlinks are followed only when they resolve inside the folder), and a request path
//! with `..` or `.` segments, encoded or not, finds nothing. Bounded by [`ASSETS_BYTES_MAX`]
//! and [`ASSETS_FILES_MAX`]: a larger folder is refused at start, naming the limit.
//! [`StaticFiles`] holds the table a server serves: SIGHUP reads the folder again and, if
//! it reads within the limits, swaps the new table in (a request already answering keeps
//! the one it took); if not, the old one stays and the error is logged.

use bytes::Bytes;
use partyline_protocol::http::Response;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Bytes of files a `serve` folder may hold.
pub const ASSETS_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Files a `serve` folder may hold.
pub const ASSETS_FILES_MAX: usize = 10_000;

/// One file, ready to send.
#[derive(Debug)]
struct Asset {
    body: Bytes,
    etag: String,
    content_type: &'static str,
}

/// The files of a `serve` folder, by path relative to it (`/`-separated).
#[derive(Debug, Default)]
pub struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    /// Reads every file under `root` (blocking: call it before the shards start).
    pub fn load(root: &Path) -> Result<Assets, String> {
        let canonical =
            root.canonicalize().map_err(|e| format!("serve folder {}: {e}", root.display()))?;
        if !canonical.is_dir() {
            return Err(format!("serve folder {}: not a folder", root.display()));
        }
        let mut assets = Assets::default();
        let mut bytes = 0u64;
        let mut pending: Vec<PathBuf> = vec![canonical.clone()];
        while let Some(dir) = pending.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("serve folder {}: {e}", dir.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("serve folder {}: {e}", dir.display()))?;
                // Resolve symlinks; whatever resolves outside the folder is left out.
                let Ok(path) = entry.path().canonicalize() else { continue };
                if !path.starts_with(&canonical) {
                    tracing::warn!(path = %entry.path().display(), "serve: a link out of the folder is not served");
                    continue;
                }
                if path.is_dir() {
                    if path != dir && path.starts_with(&dir) {
                        pending.push(path);
                    }
                    continue;
                }
                let Ok(rel) = entry.path().strip_prefix(&canonical).map(Path::to_path_buf) else {
                    continue;
                };
                let Some(rel) = rel.to_str().map(|r| r.replace('\\', "/")) else { continue };
                let body =
                    std::fs::read(&path).map_err(|e| format!("serve: {}: {e}", path.display()))?;
                bytes += body.len() as u64;
                if bytes > ASSETS_BYTES_MAX || assets.files.len() >= ASSETS_FILES_MAX {
                    return Err(format!(
                        "serve folder {}: more than {ASSETS_FILES_MAX} files or {ASSETS_BYTES_MAX} bytes",
                        root.display()
                    ));
                }
                assets.insert(rel, Bytes::from(body));
            }
        }
        Ok(assets)
    }

    /// The welcome page `partyline serve` shows at `/` when no `serve` folder is set: a chat
    /// in a room of the built-in `main` party through the official `partysocket` client,
    /// whose npm files (1.3.0, unmodified) are embedded under `/_partyline/partysocket/`.
    pub fn welcome() -> Assets {
        Assets::embedded(&[
            ("index.html", include_bytes!("../ui/welcome.html")),
            (
                "_partyline/partysocket/index.js",
                include_bytes!("../ui/vendor/partysocket/index.js"),
            ),
            ("_partyline/partysocket/ws.js", include_bytes!("../ui/vendor/partysocket/ws.js")),
            (
                "_partyline/partysocket/LICENSE.txt",
                include_bytes!("../ui/vendor/partysocket/LICENSE.txt"),
            ),
        ])
    }

    /// Files compiled into the binary, by path relative to the site's root.
    pub fn embedded(files: &[(&str, &'static [u8])]) -> Assets {
        let mut assets = Assets::default();
        for (rel, body) in files {
            assets.insert((*rel).to_owned(), Bytes::from_static(body));
        }
        assets
    }

    fn insert(&mut self, rel: String, body: Bytes) {
        let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&body));
        let content_type = content_type(&rel);
        self.files.insert(rel, Asset { body, etag, content_type });
    }

    /// How many files are served.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is served.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The answer for a request to `target` (origin form), or `None` if no file matches.
    pub fn respond(
        &self,
        method: &str,
        target: &str,
        if_none_match: Option<&str>,
    ) -> Option<Response> {
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let decoded =
            partyline_protocol::route::percent_decode(&path.replace('+', "%2B")).into_owned();
        let mut rel = decoded.strip_prefix('/')?.to_owned();
        let segments_ok =
            rel.split('/').all(|s| s != ".." && s != "." && !s.contains(['\\', '\0']));
        if !segments_ok {
            return None;
        }
        if rel.is_empty() || rel.ends_with('/') {
            rel.push_str("index.html");
        }
        let asset =
            self.files.get(&rel).or_else(|| self.files.get(&format!("{rel}/index.html")))?;
        if !matches!(method, "GET" | "HEAD") {
            return Some(
                Response::text(405, "static files answer GET and HEAD\n")
                    .with_header("allow", "GET, HEAD"),
            );
        }
        let fresh = if_none_match
            .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag || t.trim() == "*"));
        let response = if fresh {
            Response::new(304)
        } else {
            Response::new(200)
                .with_header("content-type", asset.content_type)
                .with_body(asset.body.clone())
        };
        Some(
            response
                .with_header("etag", asset.etag.clone())
                .with_header("cache-control", "no-cache"),
        )
    }
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_served_with_types_etags_and_index_and_nothing_outside() {
        let dir = std::env::temp_dir().join(format!("partyline-assets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("public");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(root.join("app.js"), "x()").unwrap();
        std::fs::write(root.join("sub/index.html"), "sub").unwrap();
        std::fs::write(root.join("a b.txt"), "spaced").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("app.js"), root.join("alias.js")).unwrap();
        let a = Assets::load(&root).unwrap();
        let get = |t: &str| a.respond("GET", t, None);
        let ok = get("/").unwrap();
        assert_eq!((ok.status(), &ok.body()[..]), (200, &b"<h1>hi</h1>"[..]));
        assert_eq!(ok.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            get("/app.js?v=2").unwrap().header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(&get("/sub/").unwrap().body()[..], b"sub");
        assert_eq!(&get("/sub").unwrap().body()[..], b"sub");
        assert_eq!(&get("/a%20b.txt").unwrap().body()[..], b"spaced");
        assert_eq!(&get("/alias.js").unwrap().body()[..], b"x()", "a link inside the folder");
        for outside in [
            "/leak.txt",
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/sub/../../secret.txt",
            "/..%2fsecret.txt",
            "/nope",
        ] {
            assert!(get(outside).is_none(), "{outside}");
        }
        let etag = ok.header("etag").unwrap().to_owned();
        assert_eq!(a.respond("GET", "/", Some(&etag)).unwrap().status(), 304);
        assert_eq!(a.respond("GET", "/", Some("\"other\"")).unwrap().status(), 200);
        assert_eq!(a.respond("POST", "/", None).unwrap().status(), 405);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The files a server serves, replaceable while it runs: a `serve` folder read again on
/// SIGHUP ([`StaticFiles::reload`]), or a fixed table (the welcome page). Shards take the
/// current table for each request (a read lock and a reference count, uncontended but for
/// the rare swap), as TLS takes the current certificate.
#[derive(Debug)]
pub struct StaticFiles {
    /// The folder read again on reload; `None` for a fixed table.
    folder: Option<PathBuf>,
    current: std::sync::RwLock<std::sync::Arc<Assets>>,
}

impl StaticFiles {
    /// The files of `folder`, read now (blocking).
    pub fn folder(folder: &Path) -> Result<StaticFiles, String> {
        let assets = Assets::load(folder)?;
        Ok(StaticFiles {
            folder: Some(folder.to_owned()),
            current: std::sync::RwLock::new(std::sync::Arc::new(assets)),
        })
    }

    /// A table that never changes.
    pub fn fixed(assets: Assets) -> StaticFiles {
        StaticFiles { folder: None, current: std::sync::RwLock::new(std::sync::Arc::new(assets)) }
    }

    /// The table to answer from now.
    pub fn current(&self) -> std::sync::Arc<Assets> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the folder again (blocking: not on a shard); on success later requests see
    /// the new files and the count is returned. `Ok(None)` for a fixed table; on an error
    /// the old files stay.
    pub fn reload(&self) -> Result<Option<usize>, String> {
        let Some(folder) = &self.folder else { return Ok(None) };
        let assets = Assets::load(folder)?;
        let files = assets.len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(assets);
        Ok(Some(files))
    }
}
