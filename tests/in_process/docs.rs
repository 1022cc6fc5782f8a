//! The README and the guides in `docs/`: every link between them, and to the repository's files
//! and folders, leads somewhere. A link to a heading (`deploy.md#tls`) must name a heading that
//! file has, by GitHub's rule for anchors. Links to other sites are not followed (no network
//! here), but there are none today, and a new one fails this test until it is listed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Sites a link may point to without being checked.
const EXTERNAL: &[&str] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut inside = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(file: &Path) -> BTreeSet<String> {
    prose(&std::fs::read_to_string(file).unwrap())
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| anchor(heading.trim_start_matches('#')))
        .collect()
}

/// Every `[text](target)` and `![alt](target)` of the prose, without inline code spans.
fn links(text: &str) -> Vec<String> {
    let code = regex::Regex::new(r"`[^`]*`").unwrap();
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let text = code.replace_all(text, "");
    link.captures_iter(&text).map(|c| c[1].to_owned()).collect()
}

#[test]
fn every_link_in_the_readme_and_the_guides_leads_somewhere() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in documents() {
        let text = prose(&std::fs::read_to_string(&file).unwrap());
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        for target in links(&text) {
            checked += 1;
            if target.starts_with("http://") || target.starts_with("https://") {
                if !EXTERNAL.iter().any(|site| target.starts_with(site)) {
                    broken.push(format!("{name}: {target} is another site, not in EXTERNAL"));
                }
                continue;
            }
            let (path, heading) = target.split_once('#').unwrap_or((&target, ""));
            let linked = match path {
                "" => file.clone(),
                path => file.parent().unwrap().join(path),
            };
            if !linked.exists() {
                broken.push(format!("{name}: {target}: no such file"));
            } else if !heading.is_empty() && !anchors(&linked).contains(heading) {
                broken.push(format!("{name}: {target}: no such heading"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 30,
        "only {checked} links found: the extraction is broken"
    );
}

#[test]
fn the_readme_fits_on_a_few_screens_and_links_every_guide() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "the README has {lines} lines; move detail into docs/"
    );
    for guide in documents().iter().skip(1) {
        let name = guide.file_name().unwrap().to_str().unwrap();
        assert!(
            readme.contains(&format!("(docs/{name})")),
            "the README links docs/{name}"
        );
    }
}

#[test]
fn anchors_follow_githubs_rule() {
    assert_eq!(
        anchor("Outgrowing one Redis: Redis Cluster"),
        "outgrowing-one-redis-redis-cluster"
    );
    assert_eq!(anchor(" Tests and CI"), "tests-and-ci");
    assert_eq!(
        anchor("Against a peer that does the same work, and what a session costs"),
        "against-a-peer-that-does-the-same-work-and-what-a-session-costs"
    );
}

/// The README's decision table comes from one benchmark run, whole: every row of it is a row
/// of the tracked report it links (`bench/results/latest.md`), and the table has a row per
/// store, so no figure from another run can sit beside them.
#[test]
fn the_readmes_decision_table_is_one_runs_table() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- bench:decision-table")
        .expect("the README has the decision table's start marker");
    let end = readme
        .find("<!-- /bench:decision-table -->")
        .expect("the README has its end marker");
    let section = &readme[start..end];
    let link = regex::Regex::new(r"\]\(([^)]+/latest\.md)\)").unwrap();
    let report = &link
        .captures(section)
        .expect("the table links the report it comes from")[1];
    let report = std::fs::read_to_string(root().join(report)).unwrap();
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| ")).collect();
    assert!(
        rows.len() >= 2 + 4,
        "the table has a header and a row per store: {rows:?}"
    );
    for row in &rows {
        assert!(
            report.lines().any(|line| line == *row),
            "a row of the README's table is not in the report it links: {row}"
        );
    }
    let stores = rows
        .iter()
        .skip(2)
        .map(|row| row.split('|').nth(1).unwrap().trim())
        .collect::<Vec<_>>();
    for store in ["sqlite", "redis", "postgres", "memcached"] {
        assert!(stores.contains(&store), "no {store} row in {stores:?}");
    }
}
