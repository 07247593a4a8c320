//! The documents stay true to the tree: every file of the project that README.md and SECURITY.md
//! name (tests, sources, docs, deploy files, samples, benches) exists.

use std::path::Path;

/// Every `dir/….ext` path in `text` under one of the project's folders.
fn cited_paths(text: &str) -> Vec<String> {
    // Not `templates/`: the README names files a user would add there.
    let folders = ["tests/", "src/", "docs/", "deploy/", "samples/", "benches/"];
    let mut paths = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "`()[],;:".contains(c)) {
        let word = word.trim_end_matches(['.', '*']);
        let is_file = word.rsplit('/').next().is_some_and(|name| {
            name.contains('.') && !name.contains(['<', '>', '{', '}', '…', '*'])
        });
        if folders.iter().any(|f| word.starts_with(f)) && is_file {
            paths.push(word.to_owned());
        }
    }
    paths
}

#[test]
fn the_files_the_documents_name_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cited = 0;
    for document in ["README.md", "SECURITY.md"] {
        let text = std::fs::read_to_string(root.join(document)).unwrap();
        for path in cited_paths(&text) {
            cited += 1;
            assert!(
                root.join(&path).exists(),
                "{document} names {path}, which does not exist"
            );
        }
    }
    assert!(cited > 20, "the reading of paths works: {cited}");
    assert_eq!(
        cited_paths("see `tests/it/http.rs` and tests/memory.rs, not templates/<kind>/x.hbs"),
        ["tests/it/http.rs", "tests/memory.rs"]
    );
}
