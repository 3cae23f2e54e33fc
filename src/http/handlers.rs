//! What answers requests: the [`Handler`] trait and the built-in handlers.
//!
//! - [`StaticSite`]: GET/HEAD of files under a root directory, or of the built-in site.
//! - [`Echo`]: `POST /echo` answers with the request body.
//! - [`Router`]: exact-path routes plus a fallback; [`Router::standard`] is what `serve` runs.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
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
}

impl StaticSite {
    /// The built-in site (files under `site/` in the repository, compiled in).
    pub fn builtin() -> Self {
        StaticSite {
            source: Source::Builtin,
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
        let mut path = root.to_path_buf();
        path.extend(segments);
        let Some(canon) = under_root(root, &path) else {
            return Response::error(404);
        };
        let Ok(meta) = fs::metadata(&canon) else {
            return Response::error(404);
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
        let file = match File::open(&canon) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Response::error(403),
            Err(_) => return Response::error(404),
        };
        // The length of what we opened, not of what the path named a moment ago.
        let (len, modified) = match file.metadata() {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(_) => return Response::error(500),
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
                return Response::new(304).with_header("Last-Modified", http_date(m));
            }
        }
        let mut resp = Response::new(200)
            .with_header("Content-Type", content_type(&name))
            .with_body(Body::File { file, len });
        if let Some(m) = modified {
            resp.headers.append("Last-Modified", http_date(m));
        }
        resp
    }
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
}
