//! The built-in site, compiled into the binary from `site/` at the repository root, served
//! when `serve` runs without `--root`.

/// Every file of the built-in site: path relative to the site root, contents.
pub const FILES: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../../site/index.html")),
    (
        "handshake.html",
        include_bytes!("../../site/handshake.html"),
    ),
    ("style.css", include_bytes!("../../site/style.css")),
    ("favicon.svg", include_bytes!("../../site/favicon.svg")),
];

/// The contents of the built-in file at `path` (relative, no leading slash).
pub fn file(path: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// True if `path` names a directory of the built-in site (a prefix of some file's path).
pub fn is_dir(path: &str) -> bool {
    let prefix = format!("{path}/");
    FILES.iter().any(|(p, _)| p.starts_with(&prefix))
}
