//! Prints the plain-text report (and, with `--json`, the JSON report) for one
//! file, as a district would read it, so the wording can be checked by eye.
//!
//! ```text
//! cargo run -p ferry-ingest --example check_file -- students_20261123.csv [--profile oneroster-1.1|clever] [--json]
//! ```

use std::fs::File;
use std::path::PathBuf;

use ferry_ingest::{CheckPlan, FileRule, Profile, ReportContext, check_reader, render_report};

fn main() {
    let mut path = None;
    let mut profile = Profile::Generic;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--profile" => {
                profile = match args.next().as_deref() {
                    Some("oneroster-1.1") => Profile::OneRoster11,
                    Some("clever") => Profile::Clever,
                    Some("generic") => Profile::Generic,
                    other => {
                        eprintln!("check_file: unknown profile {other:?}");
                        std::process::exit(2);
                    }
                }
            }
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    let Some(path) = path else {
        eprintln!("usage: check_file FILE [--profile generic|oneroster-1.1|clever] [--json]");
        std::process::exit(2);
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file.csv");
    let plan = CheckPlan::new(
        name,
        &FileRule {
            profile,
            ..FileRule::default()
        },
    );
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("check_file: {}: {error}", path.display());
            std::process::exit(1);
        }
    };
    match check_reader(file, &plan) {
        Ok(report) if json => println!("{}", serde_json::to_string_pretty(&report).unwrap()),
        Ok(report) => print!("{}", render_report(&report, &ReportContext::default())),
        Err(error) => {
            eprintln!("check_file: {error}");
            std::process::exit(1);
        }
    }
}
