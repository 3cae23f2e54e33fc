//! What answers requests: the [`Handler`] trait and the built-in handlers.
//!
//! - [`StaticSite`]: GET/HEAD of files under a root directory, or of the built-in site.
//! - [`Echo`]: `POST /echo` answers with the request body.
//! - [`Router`]: exact-path routes plus a fallback; [`Router::standard`] is what `serve` runs.

use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::conditional::{self, Precondition, RangeAnswer};
use super::request::Request;
use super::response::{http_date, Body, Response};
use super::site;
use super::table::OwnKeyMap;

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

    /// Answer one request, with leave to take what the response can reuse (the body): what
    /// the servers call. The default answers with [`Handler::handle`]. [`Echo`] moves the
    /// request body into its response instead of copying it (32 MiB echoed cost a copy and
    /// as many fresh pages as the body had).
    fn handle_mut(&self, req: &mut Request) -> Response {
        self.handle(req)
    }
}

/// Run `handler` on `req` as both servers do: a panic, or a status outside 200..=599, becomes
/// a 500 for this request only (logged), and the server goes on.
pub(crate) fn answer(handler: &dyn Handler, req: &mut Request) -> Response {
    // Formatted only on the error paths.
    let peer = |req: &Request| req.peer.map_or_else(|| "-".to_string(), |p| p.to_string());
    match catch_unwind(AssertUnwindSafe(|| handler.handle_mut(req))) {
        // Status codes are 100..=599 (RFC 9110 §15); interim (1xx) ones would desynchronize
        // the client: we have no protocol upgrades, and 100 Continue is the server's job.
        Ok(r) if (200..=599).contains(&r.status) => r,
        Ok(r) => {
            log::error!("http: {}: handler returned status {}", peer(req), r.status);
            Response::error(500)
        }
        Err(_) => {
            log::error!(
                "http: {}: handler panicked on {} {}",
                peer(req),
                req.method,
                req.target
            );
            Response::error(500)
        }
    }
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
///
/// Small files are kept in memory after their first request ([`CACHE_MAX_FILE`]), keyed by
/// the request path and checked against the file with one `stat` at most every
/// [`CACHE_REVALIDATE`] (1 s): the same device, inode, size, modification and change times,
/// or the slow path runs again. So an edited, replaced or deleted file, or a path whose
/// symlink now points elsewhere, is served from memory for at most one second after the
/// change, never longer, with the validators (ETag, Last-Modified) of the copy it serves. A
/// request then costs no system call at all instead of resolving, opening, reading and
/// closing; the `stat` was one of the three system calls a small request cost (with the
/// device read and write).
#[derive(Debug, Clone)]
pub struct StaticSite {
    source: Source,
    /// Keyed by paths of files that exist (at most [`CACHE_MAX_ENTRIES`]): an unkeyed hash.
    cache: Arc<RwLock<OwnKeyMap<String, Cached>>>,
    /// How long ago a file must have changed to be cached ([`CACHE_SETTLE`]; tests shorten it).
    settle: Duration,
    /// How long a cached file is served without looking at the file again
    /// ([`CACHE_REVALIDATE`]; tests change it).
    revalidate: Duration,
    /// What the cache's check times count from.
    epoch: Instant,
}

/// Files up to this size are cached by [`StaticSite`].
pub const CACHE_MAX_FILE: u64 = 64 * 1024;
/// How long ago a file must have last changed before [`StaticSite`] caches it.
const CACHE_SETTLE: Duration = Duration::from_secs(2);
/// How long [`StaticSite`] serves a cached file without checking the file again: the
/// longest a change to it can go unseen.
pub const CACHE_REVALIDATE: Duration = Duration::from_secs(1);
/// Most files a [`StaticSite`] caches (at most 64 MiB with [`CACHE_MAX_FILE`]).
const CACHE_MAX_ENTRIES: usize = 1024;

/// A small file served from memory, with what identifies the version it holds.
#[derive(Debug)]
struct Cached {
    /// The path as requested under the root (not canonical: `stat` follows it again).
    path: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    /// The inode change time: a `chmod` changes it, not the contents.
    ctime: (i64, i64),
    content_type: &'static str,
    modified: Option<SystemTime>,
    /// `modified` as an HTTP date, formatted once for every hit.
    last_modified: Option<Arc<str>>,
    /// The strong entity tag ([`file_etag`]), formatted once.
    etag: Arc<str>,
    /// Shared with the responses being sent: a hit costs a reference count, not a copy.
    bytes: Arc<[u8]>,
    /// When a `stat` last found the file unchanged, in nanoseconds since the site's epoch
    /// (atomic: the threaded runtime's connections share the cache behind a read lock).
    checked: AtomicU64,
}

impl Cached {
    /// The file at `path` is still the one cached.
    fn is_current(&self, meta: &fs::Metadata) -> bool {
        meta.is_file()
            && meta.dev() == self.dev
            && meta.ino() == self.ino
            && meta.len() == self.len
            && (meta.mtime(), meta.mtime_nsec()) == self.mtime
            && (meta.ctime(), meta.ctime_nsec()) == self.ctime
    }
}

impl StaticSite {
    /// The built-in site (files under `site/` in the repository, compiled in).
    pub fn builtin() -> Self {
        StaticSite {
            source: Source::Builtin,
            cache: Arc::default(),
            settle: CACHE_SETTLE,
            revalidate: CACHE_REVALIDATE,
            epoch: Instant::now(),
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
            settle: CACHE_SETTLE,
            revalidate: CACHE_REVALIDATE,
            epoch: Instant::now(),
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
            Some(bytes) => {
                // The built-in files change only with the binary: a tag from their
                // bytes is strong (RFC 9110 §8.8.3: it changes with the representation).
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                let etag: Arc<str> = Arc::from(format!("\"{:016x}\"", h.finish()));
                file_response(
                    req,
                    content_type(&key),
                    None,
                    None,
                    etag,
                    Body::Static(bytes),
                )
            }
            None => Response::error(404),
        }
    }

    /// Nanoseconds since the site's epoch (the cache's clock; no system call: vDSO).
    fn clock(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The cached copy of `req.path`, if the file did not change since it was last checked,
    /// and checked again if that was [`CACHE_REVALIDATE`] ago or more.
    fn cached_response(&self, req: &Request) -> Option<Response> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let hit = cache.get(&req.path)?;
        let now = self.clock();
        let since = Duration::from_nanos(now.saturating_sub(hit.checked.load(Ordering::Relaxed)));
        if since >= self.revalidate {
            let meta = fs::metadata(&hit.path).ok()?;
            if !hit.is_current(&meta) {
                return None;
            }
            hit.checked.store(now, Ordering::Relaxed);
        }
        Some(file_response(
            req,
            hit.content_type,
            hit.modified,
            hit.last_modified.clone(),
            Arc::clone(&hit.etag),
            Body::Shared(Arc::clone(&hit.bytes)),
        ))
    }

    fn serve_dir(&self, root: &Path, req: &Request, segments: &[&str]) -> Response {
        let mut path = root.to_path_buf();
        path.extend(segments);
        let Some(canon) = under_root(root, &path) else {
            return Response::error(404);
        };
        let Ok(meta) = fs::metadata(&canon) else {
            return Response::error(404);
        };
        let direct = !meta.is_dir();
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
        let file = match File::open(&canon) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Response::error(403),
            Err(_) => return Response::error(404),
        };
        // The length of what we opened, not of what the path named a moment ago.
        let opened = match file.metadata() {
            Ok(m) => m,
            Err(_) => return Response::error(500),
        };
        let len = opened.len();
        let name = canon.to_string_lossy();
        let ctype = content_type(&name);
        // HTTP dates have one-second resolution.
        let modified = opened
            .modified()
            .ok()
            .filter(|t| *t <= SystemTime::now())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs()));
        let last_modified = modified.map(|m| Arc::from(http_date(m)));
        let etag = file_etag(&opened);
        if direct && len <= CACHE_MAX_FILE {
            let info = FileInfo {
                content_type: ctype,
                modified,
                last_modified: last_modified.clone(),
                etag: Arc::clone(&etag),
            };
            if let Some(body) = self.cache_file(req, path, &opened, file, info) {
                return file_response(req, ctype, modified, last_modified, etag, body);
            }
            return Response::error(500);
        }
        file_response(
            req,
            ctype,
            modified,
            last_modified,
            etag,
            Body::File { file, len },
        )
    }

    /// Read a small file whole and remember it for the next requests of `req.path`; the
    /// body to answer with (shared with the cache if it was remembered).
    fn cache_file(
        &self,
        req: &Request,
        path: PathBuf,
        meta: &fs::Metadata,
        mut file: File,
        info: FileInfo,
    ) -> Option<Body> {
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
        io::Read::read_to_end(&mut file, &mut bytes).ok()?;
        if bytes.len() as u64 != meta.len() {
            // Changed while we read it: serve what we read, remember nothing.
            return Some(Body::Bytes(bytes));
        }
        // A file written within the file system's timestamp granularity of its last change
        // can be rewritten with the same size and the same times: `is_current` could not
        // tell, and the old bytes would be served for ever. Only files whose last change
        // (ctime, which every write moves) is CACHE_SETTLE old are remembered, as git does
        // for its index ("racy git").
        let changed = UNIX_EPOCH
            + Duration::new(
                u64::try_from(meta.ctime()).unwrap_or(0),
                u32::try_from(meta.ctime_nsec()).unwrap_or(0),
            );
        let settled = SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= self.settle);
        if !settled {
            return Some(Body::Bytes(bytes));
        }
        let bytes: Arc<[u8]> = bytes.into();
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() < CACHE_MAX_ENTRIES || cache.contains_key(&req.path) {
            cache.insert(
                req.path.clone(),
                Cached {
                    path,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    len: meta.len(),
                    mtime: (meta.mtime(), meta.mtime_nsec()),
                    ctime: (meta.ctime(), meta.ctime_nsec()),
                    content_type: info.content_type,
                    modified: info.modified,
                    last_modified: info.last_modified,
                    etag: info.etag,
                    bytes: Arc::clone(&bytes),
                    // `meta` was read just before the file: checked now.
                    checked: AtomicU64::new(self.clock()),
                },
            );
        }
        Some(Body::Shared(bytes))
    }
}

/// What a response says about the file it serves, besides its bytes.
struct FileInfo {
    content_type: &'static str,
    /// The modification time, whole seconds, if known and not in the future.
    modified: Option<SystemTime>,
    /// `modified` as an HTTP date.
    last_modified: Option<Arc<str>>,
    /// The strong entity tag.
    etag: Arc<str>,
}

/// A strong entity tag for the file `meta` describes (RFC 9110 §8.8.3): its inode, size
/// and modification time to the nanosecond, so any write that the cache's `is_current`
/// would notice also changes the tag, and a file replaced by another gets another.
fn file_etag(meta: &fs::Metadata) -> Arc<str> {
    let ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    Arc::from(format!("\"{:x}-{:x}-{:x}\"", meta.ino(), meta.len(), ns))
}

/// The answer to a GET or HEAD of a file: 200 with `body`; 304 or 412 as its
/// preconditions decide (RFC 9110 §13.2.2); 206 with one range of it, or 416, as `Range`
/// asks (RFC 9110 §14). `last_modified` is `modified` formatted (by the caller, once per
/// cached file); `etag` the file's strong entity tag.
fn file_response(
    req: &Request,
    content_type: &'static str,
    modified: Option<SystemTime>,
    last_modified: Option<Arc<str>>,
    etag: Arc<str>,
    body: Body,
) -> Response {
    let validators = |resp: &mut Response| {
        resp.headers.append_shared("ETag", Arc::clone(&etag));
        if let Some(date) = &last_modified {
            resp.headers
                .append_shared("Last-Modified", Arc::clone(date));
        }
    };
    match conditional::evaluate(&req.method, &req.headers, &etag, modified) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            // RFC 9110 §15.4.5: a 304 carries the fields a 200 would have had that
            // describe the representation's version: ETag and Last-Modified.
            let mut resp = Response::new(304);
            validators(&mut resp);
            return resp;
        }
        Precondition::Failed => return Response::error(412),
    }
    let len = body.len();
    let answer = conditional::range(&req.method, &req.headers, &etag, modified, len);
    let (status, body) = match answer {
        RangeAnswer::Whole => (200, body),
        RangeAnswer::Part { first, last } => match body_range(body, first, last) {
            Some(part) => (206, part),
            None => return Response::error(500),
        },
        RangeAnswer::Unsatisfiable => {
            // RFC 9110 §15.5.17: a 416 tells the current length.
            let mut resp = Response::error(416);
            resp.headers
                .append("Content-Range", format!("bytes */{len}"));
            return resp;
        }
    };
    let mut resp = Response::new(status).with_body(body);
    resp.headers.append_static("Content-Type", content_type);
    resp.headers.append_static("Accept-Ranges", "bytes");
    if let RangeAnswer::Part { first, last } = answer {
        resp.headers
            .append("Content-Range", format!("bytes {first}-{last}/{len}"));
    }
    validators(&mut resp);
    resp
}

/// Bytes `first..=last` of `body` (within it: [`conditional::range`] made sure). A file
/// is moved to `first` and sent from there; its `len` becomes the range's, which is all
/// any server path reads of it (`Body::File` is sent from its current position).
fn body_range(body: Body, first: u64, last: u64) -> Option<Body> {
    let count = last.checked_sub(first)?.checked_add(1)?;
    let start = usize::try_from(first).ok()?;
    let end = usize::try_from(last).ok()?.checked_add(1)?;
    Some(match body {
        Body::Empty => Body::Empty,
        Body::Bytes(b) => Body::Bytes(b.get(start..end)?.to_vec()),
        Body::Static(b) => Body::Static(b.get(start..end)?),
        Body::Shared(b) => Body::Bytes(b.get(start..end)?.to_vec()),
        Body::File { mut file, .. } => {
            io::Seek::seek(&mut file, io::SeekFrom::Start(first)).ok()?;
            Body::File { file, len: count }
        }
    })
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
        if let Source::Dir(_) = self.source {
            // Only paths that passed `safe_segments` were ever cached: a hit needs no
            // second look (and no list of segments).
            if let Some(resp) = self.cached_response(req) {
                return resp;
            }
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

    fn handle_mut(&self, req: &mut Request) -> Response {
        if req.method != "POST" {
            return Response::method_not_allowed("POST");
        }
        let ct = req
            .headers
            .get("content-type")
            .unwrap_or("application/octet-stream")
            .to_string();
        Response::bytes(200, &ct, std::mem::take(&mut req.body))
    }
}

/// Dispatches on the exact decoded path; unmatched paths go to the fallback (404 if none).
#[derive(Default)]
pub struct Router {
    /// The operator's paths: an unkeyed hash.
    routes: OwnKeyMap<String, Box<dyn Handler>>,
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

    fn handle_mut(&self, req: &mut Request) -> Response {
        match self.routes.get(&req.path).or(self.fallback.as_ref()) {
            Some(h) => h.handle_mut(req),
            None => Response::error(404),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::parse_http_date;

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

    fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            target: path.into(),
            path: path.into(),
            query: None,
            version: crate::http::Version::Http11,
            headers: crate::http::Headers::new(),
            body: Vec::new(),
            peer: None,
        }
    }

    /// The servers call `handle_mut`: through a router, the echo hands back the very
    /// buffer the request body arrived in (no copy), and `handle` still copies.
    #[test]
    fn echo_moves_the_body_through_a_router() {
        let mut router = Router::new();
        router.route("/echo", Echo);
        let mut req = get("/echo");
        req.method = "POST".into();
        req.body = vec![5u8; 100_000];
        let copied = router.handle(&req);
        assert_eq!(body(&copied).len(), 100_000);
        let at = req.body.as_ptr();
        let resp = router.handle_mut(&mut req);
        assert_eq!(resp.status, 200);
        match &resp.body {
            Body::Bytes(b) => assert_eq!((b.as_ptr(), b.len()), (at, 100_000)),
            other => panic!("echo body {other:?}"),
        }
        assert!(req.body.is_empty());
        // Other methods: 405, the body left alone.
        let mut get_req = get("/echo");
        get_req.body = vec![1, 2, 3];
        assert_eq!(router.handle_mut(&mut get_req).status, 405);
        assert_eq!(get_req.body, [1, 2, 3]);
    }

    fn body(resp: &Response) -> Vec<u8> {
        match &resp.body {
            Body::Bytes(b) => b.clone(),
            Body::Static(b) => b.to_vec(),
            Body::Shared(b) => b.to_vec(),
            Body::Empty => Vec::new(),
            Body::File { .. } => panic!("a small file is served from memory"),
        }
    }

    #[test]
    fn small_files_are_cached_and_never_stale() {
        let dir = std::env::temp_dir().join(format!("tunstack-cache-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        fs::write(&file, b"first").unwrap();
        let mut site = StaticSite::from_dir(&dir).unwrap();
        // Checked on every request here (the time-bound staleness has its own test).
        site.revalidate = Duration::ZERO;
        // Just written: served, but not remembered (a same-size rewrite within the
        // timestamp granularity would be invisible to the stat check).
        assert_eq!(body(&site.handle(&get("/a.txt"))), b"first");
        assert!(site.cache.read().unwrap().is_empty());
        fs::write(&file, b"FIRST").unwrap();
        assert_eq!(body(&site.handle(&get("/a.txt"))), b"FIRST");
        fs::write(&file, b"first").unwrap();
        site.settle = Duration::ZERO;
        let first = site.handle(&get("/a.txt"));
        assert_eq!((first.status, body(&first)), (200, b"first".to_vec()));
        assert_eq!(site.cache.read().unwrap().len(), 1);
        // From the cache: same bytes (the very same allocation: shared, not copied), same
        // headers.
        let again = site.handle(&get("/a.txt"));
        assert_eq!(body(&again), b"first");
        match (&first.body, &again.body) {
            (Body::Shared(a), Body::Shared(b)) => assert!(Arc::ptr_eq(a, b)),
            other => panic!("cached bodies {other:?}"),
        }
        assert_eq!(
            again.headers.get("content-type"),
            first.headers.get("content-type")
        );
        // The precomputed Last-Modified is the file's, and conditional requests still get
        // 304 (with it, and nothing else) when the copy is current, 200 when it is older.
        let lm = again.headers.get("last-modified").unwrap().to_string();
        let mtime = fs::metadata(&file).unwrap().modified().unwrap();
        assert_eq!(
            parse_http_date(&lm),
            Some(
                UNIX_EPOCH
                    + Duration::from_secs(mtime.duration_since(UNIX_EPOCH).unwrap().as_secs())
            )
        );
        assert_eq!(first.headers.get("last-modified"), Some(lm.as_str()));
        let conditional = |since: &str| {
            let mut req = get("/a.txt");
            req.headers.append("If-Modified-Since", since);
            site.handle(&req)
        };
        let not_modified = conditional(&lm);
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
        let etag = again.headers.get("etag").unwrap().to_string();
        assert_eq!(first.headers.get("etag"), Some(etag.as_str()));
        assert_eq!(
            not_modified.headers.iter().collect::<Vec<_>>(),
            vec![("ETag", etag.as_str()), ("Last-Modified", lm.as_str())]
        );
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3); `*` matches.
        let mut req = get("/a.txt");
        req.headers.append("If-None-Match", "\"stale\"");
        req.headers.append("If-Modified-Since", &lm);
        assert_eq!(site.handle(&req).status, 200);
        let mut req = get("/a.txt");
        req.headers.append("If-None-Match", "*");
        assert_eq!(site.handle(&req).status, 304);
        let mut req = get("/a.txt");
        req.headers.append("If-Match", "\"stale\"");
        assert_eq!(site.handle(&req).status, 412);
        let mut req = get("/a.txt");
        req.headers.append("If-Match", &etag);
        req.headers.append("Range", "bytes=1-3");
        let part = site.handle(&req);
        assert_eq!((part.status, body(&part)), (206, b"irs".to_vec()));
        assert_eq!(part.headers.get("content-range"), Some("bytes 1-3/5"));
        let modified = conditional("Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!((modified.status, body(&modified)), (200, b"first".to_vec()));
        // Replaced (a new inode, a new size): the new contents at once.
        fs::write(dir.join("b.tmp"), b"second!").unwrap();
        fs::rename(dir.join("b.tmp"), &file).unwrap();
        let replaced = site.handle(&get("/a.txt"));
        assert_eq!(body(&replaced), b"second!");
        assert_ne!(
            replaced.headers.get("etag"),
            Some(etag.as_str()),
            "a new tag"
        );
        // Deleted: 404, not the cached copy.
        fs::remove_file(&file).unwrap();
        assert_eq!(site.handle(&get("/a.txt")).status, 404);
        // Large files are streamed, not cached.
        fs::write(dir.join("big"), vec![7u8; CACHE_MAX_FILE as usize + 1]).unwrap();
        let big = site.handle(&get("/big"));
        assert!(matches!(big.body, Body::File { .. }));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cached_file_is_checked_at_most_once_per_revalidation_period() {
        let dir = std::env::temp_dir().join(format!("tunstack-reval-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        fs::write(&file, b"first").unwrap();
        let mut site = StaticSite::from_dir(&dir).unwrap();
        site.settle = Duration::ZERO;
        site.revalidate = Duration::from_secs(3600);
        assert_eq!(body(&site.handle(&get("/a.txt"))), b"first");
        assert_eq!(site.cache.read().unwrap().len(), 1);
        // Replaced within the period: the file is not looked at, the copy is served (with
        // its own validators).
        fs::write(dir.join("b.tmp"), b"second!").unwrap();
        fs::rename(dir.join("b.tmp"), &file).unwrap();
        let stale = site.handle(&get("/a.txt"));
        assert_eq!(body(&stale), b"first");
        assert!(
            stale.headers.get("etag").unwrap().contains("-5-"),
            "the copy's size"
        );
        // Once the period is over, the next request checks and sees the new file.
        site.revalidate = Duration::ZERO;
        assert_eq!(body(&site.handle(&get("/a.txt"))), b"second!");
        fs::remove_dir_all(&dir).unwrap();
    }
}
