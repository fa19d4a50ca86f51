//! Every statement shown in docs/scenario-language.md parses: the
//! reference must not teach syntax the parser rejects.

#[test]
fn every_documented_statement_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenario-language.md");
    let doc = std::fs::read_to_string(path).expect("the language reference exists");
    let mut in_block = false;
    let mut checked = 0;
    let mut bad = Vec::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        // Skip shell lines, traces and rendered errors.
        let skip = ["$", "cowlab", "[", " ", "bad.cow", "|"];
        let rendered_error = line.split_once(" |").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
        if !in_block || line.trim().is_empty() || rendered_error || skip.iter().any(|s| line.starts_with(s)) {
            continue;
        }
        checked += 1;
        if let Err(d) = scenario::parse::parse(line) {
            bad.push(d.render(&scenario::Source::new("doc", line)));
        }
    }
    assert!(checked > 60, "only {checked} statements found");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every file the README and the docs link to, or name as `examples/…`,
/// `crates/…` or `docs/…`, is in the repository: a clone has all it
/// mentions.
#[test]
fn readme_and_docs_link_only_to_files_a_clone_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut missing = Vec::new();
    let mut seen = 0;
    for doc in ["README.md", "docs/scenario-language.md", "docs/selftests.md", "docs/divergences.md", "docs/trace-format.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("the document exists");
        let base = std::path::Path::new(doc).parent().unwrap_or(std::path::Path::new(""));
        // Markdown links: ](target), relative to the document.
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or("").split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") {
                continue;
            }
            seen += 1;
            if !root.join(base).join(target).exists() {
                missing.push(format!("{doc}: ]({target})"));
            }
        }
        // Paths in backticks, relative to the repository.
        for part in text.split('`').skip(1).step_by(2) {
            let named = ["examples/", "crates/", "docs/"].iter().any(|p| part.starts_with(p));
            if !named || part.contains(['*', '{', ' ', '<']) || part.ends_with('/') {
                continue;
            }
            seen += 1;
            if !root.join(part).exists() {
                missing.push(format!("{doc}: `{part}`"));
            }
        }
    }
    assert!(seen > 20, "only {seen} links found");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
