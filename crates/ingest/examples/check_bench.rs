//! Benchmark of the file checks (not a test): generates a roster CSV of the
//! requested size in a temporary directory (streamed, never in memory), or
//! takes an existing file, runs every check on one thread, and prints the
//! throughput and the process's peak memory (VmHWM from /proc/self/status).
//!
//! ```text
//! cargo run --release -p ferry-ingest --example check_bench -- --size-gib 1
//! cargo run --release -p ferry-ingest --example check_bench -- --file users.csv [--profile generic]
//! cargo run --release -p ferry-ingest --example check_bench -- --size-gib 1 --out /tmp/users_20261123.csv
//! ```
//!
//! The generated file is read back from the page cache, so this measures the
//! checks, not the disk. Aim: at least 200 MB/s and under 64 MiB.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_ingest::{CheckPlan, FileRule, Profile, check_reader};

struct Options {
    size_gib: f64,
    file: Option<PathBuf>,
    out: Option<PathBuf>,
    profile: Profile,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        size_gib: 1.0,
        file: None,
        out: None,
        profile: Profile::OneRoster11,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--size-gib" => {
                options.size_gib = value()?
                    .parse()
                    .map_err(|_| "--size-gib takes a number, e.g. 1 or 0.25".to_string())?;
            }
            "--file" => options.file = Some(PathBuf::from(value()?)),
            "--out" => options.out = Some(PathBuf::from(value()?)),
            "--profile" => {
                options.profile = match value()?.as_str() {
                    "generic" => Profile::Generic,
                    "oneroster-1.1" => Profile::OneRoster11,
                    "clever" => Profile::Clever,
                    other => return Err(format!("unknown profile {other}")),
                }
            }
            "-h" | "--help" => {
                println!(
                    "check_bench [--size-gib N] [--file PATH | --out PATH] [--profile generic|oneroster-1.1|clever]\n  --file: check an existing file instead of generating one\n  --out: generate here and keep the file (default: a temporary directory)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// A small deterministic generator (xorshift64*), so every run checks the same bytes.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Writes a OneRoster users.csv-shaped file of about `bytes` bytes: UTF-8 with
/// accented names, quoted lists, empty optional fields, CRLF line ends.
fn generate(path: &Path, bytes: u64) -> std::io::Result<u64> {
    const GIVEN: &[&str] = &[
        "María", "José", "Chloé", "Noah", "Zoë", "Liam", "Olivia", "Muhammad", "Siobhán", "Ana",
        "Björn", "Emma", "Nguyễn", "Ava", "Mateo",
    ];
    const FAMILY: &[&str] = &[
        "García", "Smith", "Núñez", "O'Brien", "Johnson", "Müller", "Kowalski", "Lee", "Brown",
        "Peña", "Martin", "Davis", "Wilson",
    ];
    const ROLES: &[&str] = &[
        "student", "student", "student", "student", "teacher", "aide",
    ];
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let header = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\r\n";
    out.write_all(header.as_bytes())?;
    let mut written = header.len() as u64;
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let mut row = Vec::with_capacity(512);
    let mut id: u64 = 100_000;
    while written < bytes {
        id += 1;
        row.clear();
        let given = random.pick(GIVEN);
        let family = random.pick(FAMILY);
        let role = random.pick(ROLES);
        let school = random.next() % 40 + 1;
        let grade = random.next() % 13;
        let orgs = if random.next().is_multiple_of(8) {
            format!("\"sch-{school:03},sch-{:03}\"", (school % 40) + 1)
        } else {
            format!("sch-{school:03}")
        };
        let phone = if random.next().is_multiple_of(3) {
            format!("555-01{:02}", random.next() % 100)
        } else {
            String::new()
        };
        write!(
            row,
            "u-{id},active,2026-11-2{}T02:14:0{}Z,true,{orgs},{role},{}.{}{id},\"{{LDAP:{id}}}\",{given},{family},,{id},{}.{}@lincoln.k12.example,,{phone},,{grade:02},\r\n",
            random.next() % 10,
            random.next() % 10,
            given.to_lowercase(),
            family.to_lowercase().replace('\'', ""),
            given.to_lowercase(),
            family.to_lowercase().replace('\'', ""),
        )?;
        out.write_all(&row)?;
        written += row.len() as u64;
    }
    out.flush()?;
    Ok(written)
}

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("check_bench: {message}");
            std::process::exit(2);
        }
    };
    let temporary = tempfile::tempdir().expect("create a temporary directory");
    let path = match &options.file {
        Some(path) => path.clone(),
        None => {
            let path = options
                .out
                .clone()
                .unwrap_or_else(|| temporary.path().join("users_20261123.csv"));
            let target = (options.size_gib * (1u64 << 30) as f64) as u64;
            let started = Instant::now();
            let written = generate(&path, target).expect("generate the CSV");
            println!(
                "generated {} ({written} bytes) in {:.1} s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
            path
        }
    };
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("file.csv");
    let rule = FileRule {
        profile: options.profile,
        ..FileRule::default()
    };
    let plan = CheckPlan::new(file_name, &rule);
    let memory_before = peak_memory_kib();
    let file = File::open(&path).expect("open the CSV");
    let started = Instant::now();
    let report = check_reader(file, &plan).expect("read the CSV");
    let seconds = started.elapsed().as_secs_f64();
    let size = report.size as f64;
    println!(
        "checked {} bytes in {seconds:.2} s on one thread: {:.0} MB/s ({:.0} MiB/s)",
        report.size,
        size / seconds / 1e6,
        size / seconds / f64::from(1 << 20)
    );
    println!(
        "rows {}, columns {}, encoding {}, delimiter {:?}, problems {} (passed: {})",
        report.rows,
        report.columns,
        report.encoding.map_or("-", |charset| charset.name()),
        report.delimiter.map_or("-", |delimiter| delimiter.as_str()),
        report.problems.len(),
        report.passed()
    );
    for problem in report.problems.iter().take(5) {
        println!(
            "  {:?} line {:?}: {}",
            problem.kind, problem.line, problem.message
        );
    }
    match (memory_before, peak_memory_kib()) {
        (Some(before), Some(after)) => println!(
            "peak memory (VmHWM): {:.1} MiB ({:.1} MiB before the checks)",
            after as f64 / 1024.0,
            before as f64 / 1024.0
        ),
        _ => println!("peak memory: /proc/self/status not available"),
    }
}
