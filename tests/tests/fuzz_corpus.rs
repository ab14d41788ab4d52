//! Replays the committed fuzz corpus (fuzz/corpus, grown by scripts/fuzz.sh, crashes included
//! once found) through the same property checks the fuzz targets run, on every test run.

#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {} fails its check", path.display());
        }
        inputs += 1;
    }
    assert!(inputs >= 3, "{target}: the corpus has only {inputs} inputs");
}

#[test]
fn plan_parser_corpus() {
    replay("plan_parser", checks::check_plan);
}

#[test]
fn cloud_response_corpus() {
    replay("cloud_response", checks::check_cloud_response);
}

#[test]
fn client_config_corpus() {
    replay("client_config", checks::check_config);
}
