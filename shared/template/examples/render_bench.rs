//! Renders per second for the seed's DATABASE_URL template and for a 50-key template with sprig
//! pipelines: median of several timed runs, each a fresh parse and execute (as the engine does
//! per ExternalSecret).
//!
//! `cargo run --release -p secret-sync-template --example render_bench`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use secret_sync_template::{Engine, Limits};

const RUNS: usize = 7;
const RUN_TIME: Duration = Duration::from_millis(400);

/// Renders per second over one timed run.
fn run(engine: &Engine, text: &str, data: &BTreeMap<String, Vec<u8>>) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN_TIME {
        for _ in 0..64 {
            let out = engine.render("bench", text, data).expect("renders");
            black_box(out);
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(engine: &Engine, text: &str, data: &BTreeMap<String, Vec<u8>>) -> f64 {
    let mut rates: Vec<f64> = (0..RUNS).map(|_| run(engine, text, data)).collect();
    rates.sort_by(f64::total_cmp);
    rates[RUNS / 2]
}

fn main() {
    let engine = Engine::new(Limits::default());

    // tests/fixtures/seed/externalsecret-database-url.yaml
    let seed = "postgresql://{{ .username }}:{{ .password }}@{{ .host }}:5432/{{ .dbname }}?sslmode=require";
    let seed_data = BTreeMap::from([
        ("username".to_owned(), b"app".to_vec()),
        (
            "password".to_owned(),
            b"correct-horse-battery-staple".to_vec(),
        ),
        ("host".to_owned(), b"db.prod.internal".to_vec()),
        ("dbname".to_owned(), b"main".to_vec()),
    ]);

    // 50 keys, each through a sprig pipeline; the pipelines cycle through common ESO uses.
    let pipelines = [
        "{{ .KEY | upper }}",
        "{{ .KEY | b64enc }}",
        "{{ .KEY | sha256sum | trunc 12 }}",
        r#"{{ .KEY | replace "-" "_" | quote }}"#,
        r#"{{ .KEY | default "none" | trim | lower }}"#,
        r#"{{ dict "v" .KEY | toJson }}"#,
        r#"{{ printf "%s=%s" "KEY" .KEY }}"#,
        r#"{{ .KEY | splitList "-" | join "," }}"#,
        r#"{{ if hasPrefix "value" .KEY }}{{ .KEY | b64enc | b64dec }}{{ end }}"#,
        r#"{{ .KEY | regexReplaceAll "[0-9]+" "N" }}"#,
    ];
    let mut fifty = String::new();
    let mut fifty_data = BTreeMap::new();
    for i in 0..50 {
        let key = format!("key{i:02}");
        fifty.push_str(&format!("{key}: "));
        fifty.push_str(&pipelines[i % pipelines.len()].replace("KEY", &key));
        fifty.push('\n');
        fifty_data.insert(
            key,
            format!("value-{i}-of-fifty-{}", "x".repeat(i)).into_bytes(),
        );
    }

    let seed_rate = median(&engine, seed, &seed_data);
    let fifty_rate = median(&engine, &fifty, &fifty_data);
    println!("template                          renders/s (median of {RUNS} x {RUN_TIME:?})");
    println!("seed DATABASE_URL (4 keys)        {seed_rate:>12.0}");
    println!("50 keys with sprig pipelines      {fifty_rate:>12.0}");
}
