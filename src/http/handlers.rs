//! What answers requests: the [`Handler`] trait and the built-in handlers.
//!
//! - [`StaticSite`]: GET/HEAD of files under a root directory, or of the built-in site.
//! - [`Echo`]: `POST /echo` answers with the request body.
//! - [`Router`]: exact-path routes plus a fallback; [`Router::standard`] is what `serve` runs.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::request::Request;
use super::response::{http_date, parse_http_date, Body, Response};
use super::site;

/// Something that turns a request into a response. Called concurrently from connection
/// threads, hence `Send + Sync`.
///
/// The server owns framing: it sets `Content-Length` from the [`Body`], adds `Date`, `Server`
/// and `Connection`, and for `HEAD` sends only the head, so a handler answers HEAD exactly as
/// it would answer GET. A handler may add `Connection: close` to end the connection after its
/// response. A panic in a handler becomes a 500 for that request only.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, req: &Request) -> Response;
}

/// Any `Fn(&Request) -> Response` closure is a handler.
impl<F> Handler for F
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: &Request) -> Response {
        self(req)
    }
}

/// The Content-Type for a file name, by extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Where a [`StaticSite`] gets its files.
#[derive(Debug, Clone)]
enum Source {
    /// The site compiled into the binary.
    Builtin,
    /// A directory on disk (canonical path).
    Dir(PathBuf),
}

/// Serves GET and HEAD of static files, never outside its root.
///
/// Path safety, in order: the path is percent-decoded by the server (so `%2e%2e` and `%2f`
/// cannot hide a `..`), then any `..` segment, NUL or backslash is rejected; finally the file's
/// canonical path (symlinks resolved) must still lie under the canonical root, so a symlink
/// pointing outside is answered 404.
#[derive(Debug, Clone)]
pub struct StaticSite {
    source: Source,
    /// Small files of a directory root, kept while they do not change (clones share it).
    cache: Arc<FileCache>,
}

impl StaticSite {
    /// The built-in site (files under `site/` in the repository, compiled in).
    pub fn builtin() -> Self {
        StaticSite {
            source: Source::Builtin,
            cache: Arc::default(),
        }
    }

    /// Serve the directory `root`. Fails if it does not exist or is not a directory.
    pub fn from_dir(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = fs::canonicalize(root.as_ref())?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(StaticSite {
            source: Source::Dir(root),
            cache: Arc::default(),
        })
    }

    /// The redirect for a directory requested without its trailing slash (`/dir` → `/dir/`),
    /// so relative links in its index.html resolve inside it.
    fn redirect_to_dir(req: &Request) -> Response {
        let raw_path = req.target.split(['?', '#']).next().unwrap_or("/");
        let raw_path = if raw_path.starts_with('/') {
            raw_path
        } else {
            // absolute-form: redirect to the decoded path instead (re-encoding is not needed
            // for the safe characters that reach here; others were refused earlier).
            req.path.as_str()
        };
        let mut location = format!("{raw_path}/");
        if let Some(q) = &req.query {
            location.push('?');
            location.push_str(q);
        }
        Response::text(301, format!("Moved to {location}\n")).with_header("Location", location)
    }

    fn serve_builtin(&self, req: &Request, segments: &[&str]) -> Response {
        let mut key = segments.join("/");
        if req.path.ends_with('/') || key.is_empty() {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str("index.html");
        } else if site::is_dir(&key) {
            return Self::redirect_to_dir(req);
        }
        match site::file(&key) {
            Some(bytes) => Response::new(200)
                .with_header("Content-Type", content_type(&key))
                .with_body(Body::Static(bytes)),
            None => Response::error(404),
        }
    }

    fn serve_dir(&self, root: &Path, req: &Request, segments: &[&str]) -> Response {
        let (canon, meta) = match plain_path(root, segments) {
            Some(found) => found,
            None => {
                let mut path = root.to_path_buf();
                path.extend(segments);
                let Some(canon) = under_root(root, &path) else {
                    return Response::error(404);
                };
                let Ok(meta) = fs::metadata(&canon) else {
                    return Response::error(404);
                };
                (canon, meta)
            }
        };
        let (canon, meta) = if meta.is_dir() {
            if !req.path.ends_with('/') {
                return Self::redirect_to_dir(req);
            }
            let index = canon.join("index.html");
            let Some(index) = under_root(root, &index) else {
                return Response::error(404);
            };
            match fs::metadata(&index) {
                Ok(m) => (index, m),
                Err(_) => return Response::error(404),
            }
        } else {
            (canon, meta)
        };
        // Only regular files: opening a FIFO or a device could block or never end.
        if !meta.is_file() {
            return Response::error(404);
        }
        // A small file unchanged since it was cached: no open, fstat, read, close.
        let cached = self.cache.get(&canon, &meta);
        let (body, modified) = match cached {
            Some(bytes) => (Body::Bytes(bytes), meta.modified().ok()),
            None => {
                let file = match File::open(&canon) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        return Response::error(403)
                    }
                    Err(_) => return Response::error(404),
                };
                // The length of what we opened, not of what the path named a moment ago.
                let Ok(m) = file.metadata() else {
                    return Response::error(500);
                };
                let modified = m.modified().ok();
                (self.cache.load(&canon, file, &m), modified)
            }
        };
        let name = canon.to_string_lossy();
        // HTTP dates have one-second resolution.
        let modified = modified
            .filter(|t| *t <= SystemTime::now())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs()));
        // RFC 9110 §13.1.3: unchanged since the client's copy → 304 without a body.
        if let (Some(m), Some(since)) = (
            modified,
            req.headers
                .get("if-modified-since")
                .and_then(parse_http_date),
        ) {
            if m <= since {
                return Response::new(304).with_header("Last-Modified", last_modified(m));
            }
        }
        let mut resp = Response::new(200)
            .with_header("Content-Type", content_type(&name))
            .with_body(body);
        if let Some(m) = modified {
            resp.headers.append("Last-Modified", last_modified(m));
        }
        resp
    }
}

thread_local! {
    /// The last Last-Modified value formatted on this thread: a site's files mostly share a
    /// few modification times, and formatting a date costs more than the rest of the handler.
    static LAST_MODIFIED: std::cell::RefCell<(SystemTime, String)> =
        const { std::cell::RefCell::new((UNIX_EPOCH, String::new())) };
}

/// `http_date(m)`, formatted at most once per distinct time in a row.
fn last_modified(m: SystemTime) -> String {
    LAST_MODIFIED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.1.is_empty() || cache.0 != m {
            *cache = (m, http_date(m));
        }
        cache.1.clone()
    })
}

/// Largest file kept in a [`FileCache`].
const CACHE_FILE_MAX: u64 = 16 * 1024;
/// Bytes a [`FileCache`] holds at most (beyond it, files are just not cached).
const CACHE_TOTAL_MAX: usize = 4 * 1024 * 1024;
/// A file is only cached once its inode has not changed for this long: a later change then
/// necessarily gives it a different change time, even on a file system whose timestamps
/// are coarse (the "racy git" problem and its solution).
const CACHE_SETTLE: Duration = Duration::from_secs(2);

/// What identifies one version of a file: any write, truncate, chmod, rename or replacement
/// changes at least one of these (RFC-free, POSIX `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileVersion {
    fn of(m: &fs::Metadata) -> FileVersion {
        FileVersion {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Path → the version of the file that was read, and its contents.
type CachedFiles = HashMap<PathBuf, (FileVersion, Vec<u8>)>;

/// The contents of small files served from a directory, each checked on every request
/// against the `stat` the request does anyway: a hit costs that one system call instead of
/// open, fstat, read and close. Bounded in entry size and total size; no eviction (a site's
/// small files are few), an entry is replaced when its file changes.
struct FileCache {
    /// Path → (version, contents), and the total size of the contents.
    files: RwLock<(CachedFiles, usize)>,
    /// [`CACHE_SETTLE`], shorter in tests.
    settle: Duration,
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache {
            files: RwLock::default(),
            settle: CACHE_SETTLE,
        }
    }
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.files.read().map(|g| g.0.len()).unwrap_or(0);
        f.debug_struct("FileCache").field("files", &n).finish()
    }
}

impl FileCache {
    /// The cached contents of `path` if `meta` (its current `stat`) says it is unchanged.
    fn get(&self, path: &Path, meta: &fs::Metadata) -> Option<Vec<u8>> {
        if meta.len() > CACHE_FILE_MAX {
            return None;
        }
        let files = self.files.read().ok()?;
        let (version, bytes) = files.0.get(path)?;
        (*version == FileVersion::of(meta)).then(|| bytes.to_vec())
    }

    /// The body for `file` (opened from `path`, `meta` its fstat): small settled files are
    /// read whole and kept; others are streamed as before.
    fn load(&self, path: &Path, mut file: File, meta: &fs::Metadata) -> Body {
        let len = meta.len();
        // Only a file whose inode settled a while ago: its next change cannot keep the same
        // change time.
        let changed = u64::try_from(meta.ctime())
            .ok()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        let settled = changed.is_some_and(|t| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age >= self.settle)
        });
        if len > CACHE_FILE_MAX || !settled {
            return Body::File { file, len };
        }
        let mut bytes = Vec::with_capacity(len as usize);
        if file.by_ref().take(len).read_to_end(&mut bytes).is_err() || bytes.len() as u64 != len {
            // Changed under us: send what we read, keep nothing.
            return Body::Bytes(bytes);
        }
        if let Ok(mut files) = self.files.write() {
            let (map, total) = &mut *files;
            let old = map.get(path).map_or(0, |(_, b)| b.len());
            if *total - old + bytes.len() <= CACHE_TOTAL_MAX {
                *total = *total - old + bytes.len();
                map.insert(path.to_path_buf(), (FileVersion::of(meta), bytes.clone()));
            }
        }
        Body::Bytes(bytes)
    }
}

/// The path of `segments` under the canonical `root` and its metadata, when no segment is a
/// symlink: the path is then already canonical (the segments are plain names, see
/// [`safe_segments`]), found with one `lstat` per segment instead of `realpath`'s `readlink` of
/// every component from `/` plus a `stat` (the keep-alive benchmark's file costs 5 system calls
/// instead of 8). `None` (a symlink on the way, or an error): the caller canonicalizes.
fn plain_path(root: &Path, segments: &[&str]) -> Option<(PathBuf, fs::Metadata)> {
    let mut path = root.to_path_buf();
    if segments.is_empty() {
        let meta = fs::metadata(&path).ok()?;
        return Some((path, meta));
    }
    let mut meta = None;
    for seg in segments {
        path.push(seg);
        let m = fs::symlink_metadata(&path).ok()?;
        if m.file_type().is_symlink() {
            return None;
        }
        meta = Some(m);
    }
    Some((path, meta?))
}

/// Canonicalize `path` and return it only if it is still under `root` (already canonical).
fn under_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let canon = fs::canonicalize(path).ok()?;
    if canon.starts_with(root) {
        Some(canon)
    } else {
        log::warn!("refusing {}: resolves outside the root", path.display());
        None
    }
}

/// Split a decoded request path into safe segments, or `None` if it must be refused.
fn safe_segments(path: &str) -> Option<Vec<&str>> {
    if !path.starts_with('/') || path.contains('\0') || path.contains('\\') {
        return None;
    }
    let mut segments = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s => segments.push(s),
        }
    }
    Some(segments)
}

impl Handler for StaticSite {
    fn handle(&self, req: &Request) -> Response {
        if req.method != "GET" && req.method != "HEAD" {
            return Response::method_not_allowed("GET, HEAD");
        }
        let Some(segments) = safe_segments(&req.path) else {
            log::info!("refusing unsafe path {:?}", req.path);
            return Response::error(400);
        };
        match &self.source {
            Source::Builtin => self.serve_builtin(req, &segments),
            Source::Dir(root) => self.serve_dir(root, req, &segments),
        }
    }
}

/// `POST` answers 200 with the request body unchanged; Content-Type is copied from the request
/// (default `application/octet-stream`). Other methods get 405 with `Allow: POST`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Handler for Echo {
    fn handle(&self, req: &Request) -> Response {
        if req.method != "POST" {
            return Response::method_not_allowed("POST");
        }
        let ct = req
            .headers
            .get("content-type")
            .unwrap_or("application/octet-stream");
        Response::bytes(200, ct, req.body.clone())
    }
}

/// Dispatches on the exact decoded path; unmatched paths go to the fallback (404 if none).
#[derive(Default)]
pub struct Router {
    routes: HashMap<String, Box<dyn Handler>>,
    fallback: Option<Box<dyn Handler>>,
}

impl Router {
    /// An empty router: every request is 404 until routes are added.
    pub fn new() -> Self {
        Router::default()
    }

    /// The standard server: `/echo` → [`Echo`], everything else → [`StaticSite`] over `root`
    /// if given, else over the built-in site. Fails if `root` is not a readable directory.
    pub fn standard(root: Option<&Path>) -> io::Result<Self> {
        let site = match root {
            Some(dir) => StaticSite::from_dir(dir)?,
            None => StaticSite::builtin(),
        };
        let mut router = Router::new();
        router.route("/echo", Echo).fallback(site);
        Ok(router)
    }

    /// Send requests whose path is exactly `path` to `handler` (replacing an earlier route).
    pub fn route(&mut self, path: &str, handler: impl Handler) -> &mut Self {
        self.routes.insert(path.to_string(), Box::new(handler));
        self
    }

    /// Send every unmatched request to `handler`.
    pub fn fallback(&mut self, handler: impl Handler) -> &mut Self {
        self.fallback = Some(Box::new(handler));
        self
    }
}

impl Handler for Router {
    fn handle(&self, req: &Request) -> Response {
        match self.routes.get(&req.path).or(self.fallback.as_ref()) {
            Some(h) => h.handle(req),
            None => Response::error(404),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(safe_segments("/a/./b//c/"), Some(vec!["a", "b", "c"]));
        assert_eq!(safe_segments("/"), Some(vec![]));
        assert_eq!(safe_segments("/../etc/passwd"), None);
        assert_eq!(safe_segments("/a/.."), None);
        assert_eq!(safe_segments("/a\\..\\b"), None);
        assert_eq!(safe_segments("/a\0"), None);
        assert_eq!(safe_segments("*"), None);
        assert_eq!(safe_segments("/..."), Some(vec!["..."]));
    }

    #[test]
    fn types() {
        assert_eq!(content_type("a/index.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("x.wasm"), "application/wasm");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("a.tar.gz"), "application/octet-stream");
    }

    fn get(site: &StaticSite, path: &str) -> (u16, Vec<u8>) {
        let req = Request {
            method: "GET".into(),
            target: path.into(),
            path: path.into(),
            query: None,
            version: crate::http::Version::Http11,
            headers: crate::http::Headers::new(),
            body: Vec::new(),
            peer: None,
        };
        let resp = site.handle(&req);
        let body = match resp.body {
            Body::Bytes(b) => b,
            Body::File { mut file, len } => {
                let mut b = Vec::new();
                file.by_ref().take(len).read_to_end(&mut b).unwrap();
                b
            }
            Body::Static(s) => s.to_vec(),
            Body::Empty => Vec::new(),
        };
        (resp.status, body)
    }

    /// Small files are served from the cache while unchanged, and from disk again as soon
    /// as they change (size, contents with a new time, permissions, replacement).
    #[test]
    fn small_files_cached_while_unchanged() {
        let dir = std::env::temp_dir().join(format!("tunstack-cache-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.txt");
        fs::write(&f, b"one").unwrap();
        fs::write(dir.join("big.bin"), vec![7u8; CACHE_FILE_MAX as usize + 1]).unwrap();
        let mut site = StaticSite::from_dir(&dir).unwrap();
        site.cache = Arc::new(FileCache {
            settle: Duration::ZERO,
            ..FileCache::default()
        });
        let cached = |site: &StaticSite| site.cache.files.read().unwrap().0.len();
        assert_eq!(get(&site, "/a.txt"), (200, b"one".to_vec()));
        assert_eq!(cached(&site), 1);
        assert_eq!(get(&site, "/a.txt"), (200, b"one".to_vec()));
        // A new size.
        fs::write(&f, b"three").unwrap();
        assert_eq!(get(&site, "/a.txt"), (200, b"three".to_vec()));
        // Same size, other bytes, another modification time.
        fs::write(&f, b"THREE").unwrap();
        let t = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert_eq!(get(&site, "/a.txt"), (200, b"THREE".to_vec()));
        // Replaced by another file (a new inode).
        let tmp = dir.join("a.new");
        fs::write(&tmp, b"fresh").unwrap();
        fs::rename(&tmp, &f).unwrap();
        assert_eq!(get(&site, "/a.txt"), (200, b"fresh".to_vec()));
        // Gone.
        fs::remove_file(&f).unwrap();
        assert_eq!(get(&site, "/a.txt").0, 404);
        // Too big to cache: streamed.
        assert_eq!(get(&site, "/big.bin").1.len(), CACHE_FILE_MAX as usize + 1);
        assert_eq!(cached(&site), 1);
        // With the default settle time, a file changed just now is not cached.
        let fresh = StaticSite::from_dir(&dir).unwrap();
        fs::write(dir.join("b.txt"), b"new").unwrap();
        assert_eq!(get(&fresh, "/b.txt"), (200, b"new".to_vec()));
        assert_eq!(cached(&fresh), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
