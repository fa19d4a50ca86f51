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
