//! Static files under versioned addresses: a page names `/static/style.css?v=<hash of its
//! bytes>`, and that address is served `immutable` for a year, so a returning shopper's browser
//! asks for nothing it has; a changed file has a new address.
//!
//! The version is in the query, not the name, because replicas of two releases serve the same
//! shoppers during a deploy: a page from the new release may ask an old replica for its
//! stylesheet, and the old replica serves `/static/style.css` whatever the query says (its own
//! bytes, for a day, never `immutable`). A hashed file name would be a 404 there.

use std::collections::HashMap;
use std::path::Path;

/// The version of every file under the static directory, read once at start.
#[derive(Debug, Default)]
pub struct Assets {
    /// `/static/…` path → its address with `?v=`.
    addresses: HashMap<String, String>,
}

/// Hex digits of a file's BLAKE3 hash in its version.
const VERSION_CHARS: usize = 16;

impl Assets {
    /// Hashes every file under `dir` (served as `/static/…`). A missing directory gives no
    /// versions: pages then name the plain paths, cached for a day.
    pub fn load(dir: &Path) -> Self {
        let mut addresses = HashMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let (Ok(bytes), Ok(relative)) = (std::fs::read(&path), path.strip_prefix(dir))
                else {
                    continue;
                };
                let Some(relative) = relative.to_str() else {
                    continue;
                };
                let served = format!("/static/{relative}");
                let hash = blake3::hash(&bytes).to_hex();
                let address = format!("{served}?v={}", &hash[..VERSION_CHARS]);
                addresses.insert(served, address);
            }
        }
        Self { addresses }
    }

    /// The versioned address of a `/static/…` path; any other path as it is.
    pub fn url<'a>(&'a self, path: &'a str) -> &'a str {
        self.addresses.get(path).map_or(path, String::as_str)
    }

    /// Whether `path` with `query` is the current version's address (served `immutable`).
    pub fn is_current(&self, path: &str, query: &str) -> bool {
        self.addresses
            .get(path)
            .and_then(|address| address.split_once('?'))
            .is_some_and(|(_, current)| current == query)
    }
}

#[cfg(test)]
mod tests {
    use super::Assets;

    #[test]
    fn a_file_gets_an_address_that_changes_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("products")).unwrap();
        std::fs::write(dir.path().join("style.css"), "a").unwrap();
        std::fs::write(dir.path().join("products/mug.svg"), "<svg/>").unwrap();
        let assets = Assets::load(dir.path());
        let style = assets.url("/static/style.css").to_owned();
        assert!(style.starts_with("/static/style.css?v="), "{style}");
        let query = style.split_once('?').unwrap().1;
        assert!(assets.is_current("/static/style.css", query));
        assert!(!assets.is_current("/static/style.css", "v=0000000000000000"));
        assert!(assets.url("/static/products/mug.svg").contains("?v="));
        assert_eq!(assets.url("/static/none.css"), "/static/none.css");
        std::fs::write(dir.path().join("style.css"), "b").unwrap();
        assert_ne!(Assets::load(dir.path()).url("/static/style.css"), style);
    }
}
