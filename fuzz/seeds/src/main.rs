//! Writes the seed inputs of every fuzz target: the SFTP exchanges of the
//! protocol tests (uploads, WinSCP's `.filepart` rename, downloads, listings,
//! escapes through `..` and planted symlinks, writes where none are allowed,
//! pipelined writes, an abandoned upload, framing at its limits), every key
//! fixture in shared/fixtures/keys, and small CSV files of the kinds the
//! ingest tests use (each profile, delimiter, line end and character set,
//! and each quoting problem).
//!
//! `scripts/fuzz --seeds` runs it into an empty folder and merges the result
//! into `fuzz/corpus/` (libFuzzer keeps a smallest set with the same coverage).
//! Usage: `seeds OUT_DIR KEY_FIXTURES_DIR`.
//!
//! The few lines of SFTP encoding below follow draft-ietf-secsh-filexfer-02
//! (as `ferry_sftp::protocol::codec::client` does); they are repeated here so
//! this program needs nothing but std.

use std::fs;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, fixtures] = &args[..] else {
        eprintln!("usage: seeds OUT_DIR KEY_FIXTURES_DIR");
        std::process::exit(2);
    };
    let out = Path::new(out);
    write_all(&out.join("sftp_codec"), codec_seeds());
    write_all(&out.join("sftp_session"), session_seeds());
    write_all(&out.join("keys_text"), key_seeds(Path::new(fixtures)));
    write_all(&out.join("csv_check"), csv_seeds());
}

fn write_all(dir: &Path, seeds: Vec<(String, Vec<u8>)>) {
    fs::create_dir_all(dir).expect("create the seed folder");
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
}

// ---- SFTP ----

mod packet {
    pub const INIT: u8 = 1;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const EXTENDED: u8 = 200;
}

mod open_flag {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

/// ATTRS with the fields that are set (size, and atime/mtime).
#[derive(Default)]
struct Attrs {
    size: Option<u64>,
    times: Option<(u32, u32)>,
}

mod client {
    use super::Attrs;

    /// A length-prefixed request packet.
    pub fn request(kind: u8, id: u32, fields: &[u8]) -> Vec<u8> {
        let len = (1 + 4 + fields.len()) as u32;
        [&len.to_be_bytes()[..], &[kind], &id.to_be_bytes(), fields].concat()
    }

    pub fn string(bytes: &[u8]) -> Vec<u8> {
        [&(bytes.len() as u32).to_be_bytes()[..], bytes].concat()
    }

    pub fn attrs(attrs: &Attrs) -> Vec<u8> {
        let flags = u32::from(attrs.size.is_some()) | u32::from(attrs.times.is_some()) << 3;
        let mut out = flags.to_be_bytes().to_vec();
        if let Some(size) = attrs.size {
            out.extend_from_slice(&size.to_be_bytes());
        }
        if let Some((atime, mtime)) = attrs.times {
            out.extend_from_slice(&atime.to_be_bytes());
            out.extend_from_slice(&mtime.to_be_bytes());
        }
        out
    }
}

const W: u32 = open_flag::WRITE | open_flag::CREAT | open_flag::TRUNC;
const R: u32 = open_flag::READ;

fn s(bytes: &[u8]) -> Vec<u8> {
    client::string(bytes)
}

fn handle(n: u32) -> Vec<u8> {
    s(&n.to_be_bytes())
}

fn times(atime: u32, mtime: u32) -> Vec<u8> {
    client::attrs(&Attrs {
        times: Some((atime, mtime)),
        ..Attrs::default()
    })
}

fn no_attrs() -> Vec<u8> {
    client::attrs(&Attrs::default())
}

/// One request packet (the id is replaced by the session target).
fn req(kind: u8, fields: &[&[u8]]) -> Vec<u8> {
    client::request(kind, 7, &fields.concat())
}

fn open(path: &[u8], flags: u32) -> Vec<u8> {
    req(packet::OPEN, &[&s(path), &flags.to_be_bytes(), &no_attrs()])
}

fn path_req(kind: u8, path: &[u8]) -> Vec<u8> {
    req(kind, &[&s(path)])
}

fn write(h: u32, offset: u64, data: &[u8]) -> Vec<u8> {
    req(
        packet::WRITE,
        &[&handle(h), &offset.to_be_bytes(), &s(data)],
    )
}

fn read(h: u32, offset: u64, len: u32) -> Vec<u8> {
    req(
        packet::READ,
        &[&handle(h), &offset.to_be_bytes(), &len.to_be_bytes()],
    )
}

fn close(h: u32) -> Vec<u8> {
    req(packet::CLOSE, &[&handle(h)])
}

fn extended(name: &str, fields: &[&[u8]]) -> Vec<u8> {
    req(
        packet::EXTENDED,
        &[&[&s(name.as_bytes())[..]], fields].concat(),
    )
}

/// Ends a batch in the session target's packet streams.
fn batch_end() -> Vec<u8> {
    vec![0, 0, 0, 5, 0, 0, 0, 0, 0]
}

/// The exchanges, as packet streams without INIT.
fn exchanges() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    use packet::*;
    vec![
        (
            "upload",
            vec![
                open(b"/inbound/new.csv", W),
                write(0, 0, b"id,name\n1,Ann\n"),
                close(0),
                path_req(STAT, b"/inbound/new.csv"),
            ],
        ),
        (
            "winscp-filepart",
            vec![
                open(b"/inbound/existing.csv.filepart", W),
                write(0, 0, b"id\n9\n"),
                req(
                    FSETSTAT,
                    &[&handle(0), &times(1_700_000_000, 1_700_000_000)],
                ),
                close(0),
                batch_end(),
                extended(
                    "posix-rename@openssh.com",
                    &[
                        &s(b"/inbound/existing.csv.filepart"),
                        &s(b"/inbound/existing.csv"),
                    ],
                ),
                req(SETSTAT, &[&s(b"/inbound/existing.csv"), &times(1, 2)]),
            ],
        ),
        (
            "download-and-list",
            vec![
                path_req(OPENDIR, b"/"),
                path_req(READDIR, &0u32.to_be_bytes()),
                path_req(READDIR, &0u32.to_be_bytes()),
                close(0),
                path_req(OPENDIR, b"/outbound"),
                path_req(READDIR, &1u32.to_be_bytes()),
                close(1),
                open(b"/outbound/download.csv", R),
                read(2, 0, 32768),
                read(2, 32768, 32768),
                req(FSTAT, &[&handle(2)]),
                close(2),
                path_req(REALPATH, b"."),
            ],
        ),
        (
            "escapes",
            vec![
                open(b"../../canary/secret.txt", R),
                open(b"/inbound/escape/secret.txt", R),
                open(b"/outbound/escape", R),
                open(b"/inbound/escape-file", R),
                path_req(STAT, b"/inbound/escape"),
                path_req(LSTAT, b"/escape"),
                path_req(OPENDIR, b"/inbound/escape"),
                path_req(REALPATH, b"/../.."),
                path_req(READLINK, b"/outbound/escape"),
                req(SYMLINK, &[&s(b"/inbound/l"), &s(b"/etc/passwd")]),
                extended(
                    "hardlink@openssh.com",
                    &[&s(b"/outbound/download.csv"), &s(b"/inbound/h")],
                ),
                path_req(REMOVE, b"/inbound/escape"),
                req(
                    RENAME,
                    &[&s(b"/inbound/existing.csv"), &s(b"/inbound/escape")],
                ),
                open(b"/inbound/escape/planted.csv", W),
                open(b"/inbound/a\0b.csv", W),
                open(b"/inbound/bad\xff.csv", W),
            ],
        ),
        (
            "read-only-folders",
            vec![
                open(b"/outbound/x.csv", W),
                open(b"/x.csv", W),
                req(MKDIR, &[&s(b"/outbound/new"), &no_attrs()]),
                path_req(REMOVE, b"/archive/2024-01-01/old.csv"),
                req(RENAME, &[&s(b"/reports/report.txt"), &s(b"/inbound/r.txt")]),
                req(RENAME, &[&s(b"/inbound"), &s(b"/inbox")]),
                req(SETSTAT, &[&s(b"/outbound/download.csv"), &times(5, 6)]),
                req(SETSTAT, &[&s(b"/"), &times(5, 6)]),
                path_req(RMDIR, b"/archive"),
                path_req(REMOVE, b"/outbound/missing"),
            ],
        ),
        (
            "folders",
            vec![
                req(MKDIR, &[&s(b"/inbound/d"), &no_attrs()]),
                open(b"/inbound/d/x.csv", W),
                write(0, 0, b"x"),
                batch_end(),
                req(RENAME, &[&s(b"/inbound/d"), &s(b"/inbound/e")]),
                close(0),
                req(RENAME, &[&s(b"/inbound/e"), &s(b"/inbound/e/inner")]),
                path_req(RMDIR, b"/inbound/e"),
                path_req(RMDIR, b"/inbound/sub"),
                path_req(REMOVE, b"/inbound/sub/nested.csv"),
                path_req(RMDIR, b"/inbound/sub"),
            ],
        ),
        (
            "pipelined-writes",
            std::iter::once(open(b"/inbound/piped.csv", W))
                .chain((0..12u64).map(|i| write(0, i * 3 % 20, b"abcdefgh")))
                .chain([close(0)])
                .collect(),
        ),
        (
            "append-resume-exclusive",
            vec![
                open(
                    b"/inbound/existing.csv",
                    open_flag::WRITE | open_flag::APPEND,
                ),
                write(0, 0, b"2,appended\n"),
                close(0),
                open(b"/inbound/existing.csv", open_flag::WRITE | open_flag::READ),
                req(
                    FSETSTAT,
                    &[
                        &handle(1),
                        &client::attrs(&Attrs {
                            size: Some(3),
                            ..Attrs::default()
                        }),
                    ],
                ),
                read(1, 0, 100),
                extended("fsync@openssh.com", &[&handle(1)]),
                close(1),
                open(
                    b"/inbound/existing.csv",
                    open_flag::WRITE | open_flag::CREAT | open_flag::EXCL,
                ),
                req(
                    SETSTAT,
                    &[
                        &s(b"/inbound/existing.csv"),
                        &client::attrs(&Attrs {
                            size: Some(1),
                            ..Attrs::default()
                        }),
                    ],
                ),
            ],
        ),
        (
            "abandoned-upload",
            vec![
                open(b"/inbound/partial.csv", W),
                write(0, 0, b"half a file"),
                req(SETSTAT, &[&s(b"/inbound/partial.csv"), &times(7, 8)]),
            ],
        ),
        (
            "extensions",
            vec![
                extended("limits@openssh.com", &[]),
                extended("statvfs@openssh.com", &[&s(b"/")]),
                extended("copy-data", &[]),
                req(99, &[b"whatever"]),
            ],
        ),
    ]
}

fn session_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, packets) in exchanges() {
        for (mode, label) in [(0u8, "inline"), (2, "overlap")] {
            let bytes = [vec![mode], packets.concat()].concat();
            seeds.push((format!("{name}-{label}"), bytes));
        }
    }
    seeds
}

fn codec_seeds() -> Vec<(String, Vec<u8>)> {
    let init = vec![0, 0, 0, 5, packet::INIT, 0, 0, 0, 3];
    let mut seeds = Vec::new();
    for (index, (name, packets)) in exchanges().into_iter().enumerate() {
        let selector = index as u8 % 4;
        let stream = [init.clone(), packets.concat()].concat();
        seeds.push((name.to_string(), [vec![selector], stream].concat()));
    }
    let edges: [(&str, Vec<u8>); 6] = [
        ("too-long", vec![0x00, 0x04, 0x00, 0x01, packet::STAT]),
        ("zero-length", vec![0, 0, 0, 0]),
        ("cut-short", open(b"/inbound/x.csv", W)[..12].to_vec()),
        (
            "string-longer-than-packet",
            req(packet::STAT, &[&0x7fff_ffffu32.to_be_bytes()]),
        ),
        (
            "extended-attributes",
            req(
                packet::SETSTAT,
                &[
                    &s(b"/inbound/x"),
                    &0x8000_0000u32.to_be_bytes(),
                    &2u32.to_be_bytes(),
                    &s(b"a"),
                    &s(b"b"),
                    &s(b"c"),
                    &s(b"d"),
                ],
            ),
        ),
        ("short-init", vec![0, 0, 0, 2, packet::INIT, 0]),
    ];
    for (name, packet) in edges {
        seeds.push((name.to_owned(), [vec![3], packet].concat()));
    }
    seeds
}

// ---- keys ----

fn key_seeds(fixtures: &Path) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for entry in fs::read_dir(fixtures).expect("the key fixtures list") {
        let path = entry.expect("a fixture").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs::read(&path).expect("a fixture reads");
        if name.ends_with(".md") || name.ends_with(".tsv") || bytes.len() > 64 * 1024 {
            continue;
        }
        seeds.push((name, [vec![0], bytes].concat()));
    }
    seeds
}

// ---- CSV ----

/// Rules byte for the raw CSV seeds: profile + 5 × charset + 20 × delimiter
/// (profiles: 0 generic, 1 OneRoster users.csv, 2 OneRoster manifest.csv,
/// 3 Clever students.csv; charsets: 0 auto, 1 UTF-8, 2 US-ASCII,
/// 3 Windows-1252; delimiters: 0 `,` 1 tab 2 `;` 3 `|` 4 auto).
fn rules(profile: u8, charset: u8, delimiter: u8) -> u8 {
    profile + 5 * charset + 20 * delimiter
}

fn csv_seeds() -> Vec<(String, Vec<u8>)> {
    let users = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password";
    let files: Vec<(&str, u8, u8, Vec<u8>)> = vec![
        ("generic", rules(0, 0, 4), 0, "student_id,last_name,first_name\n1,García,Ana\n2,\"Núñez, Jr\",Bo\n".into()),
        ("crlf", rules(0, 1, 0), 7, b"id,name\r\n1,a\r\n2,b\r\n".to_vec()),
        ("cr-only", rules(0, 0, 4), 1, b"id,name\r1,a\r2,b\r".to_vec()),
        ("bom", rules(0, 3, 4), 0, b"\xEF\xBB\xBFid;name\n1;a\n".to_vec()),
        ("tab", rules(0, 2, 1), 3, b"id\tname\n1\tx\n".to_vec()),
        ("pipe", rules(0, 0, 3), 0, b"id|name|note\n1|x|\"a|b\"\n".to_vec()),
        ("oneroster-users", rules(1, 0, 4), 0, format!("{users}\nu1,active,2026-01-01,true,o1,student,ann,,Ann,Lee,,,,,,,09,\nu2,,,true,,teacher,,,,,,,,,,,,\n").into_bytes()),
        ("oneroster-manifest", rules(2, 1, 0), 0, b"propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.users,bulk\n,empty\n".to_vec()),
        ("clever-students", rules(3, 0, 4), 0, b"School_id,Student_id,Last_name,First_name,Grade\n1,100,Lee,Ann,9\n1,101,Kim,\n".to_vec()),
        ("unterminated-quote", rules(0, 0, 4), 0, b"id,name\n1,\"open\n2,b\n".to_vec()),
        ("text-after-quote", rules(0, 0, 0), 2, b"id,name\n1,\"Smith\"Jr\n".to_vec()),
        ("stray-quote", rules(0, 0, 0), 0, b"id,height\n1,5'10\"\n".to_vec()),
        ("long-quoted", rules(0, 0, 0), 0, format!("id,address\n1,\"{}\"\n", "line\n".repeat(12)).into_bytes()),
        ("blank-lines", rules(0, 0, 4), 0, b"\n\nid,name\n\n1,a\n\n".to_vec()),
        ("header-only", rules(0, 0, 4), 0, b"id,name\n".to_vec()),
        ("column-count", rules(0, 0, 0), 0, b"id,name\n1\n2,b,c\n".to_vec()),
        ("windows-1252", rules(0, 0, 4), 0, b"id,name\n1,Jos\xE9\n".to_vec()),
        ("windows-1252-as-utf8", rules(0, 1, 4), 0, b"id,name\n1,Jos\xE9\n".to_vec()),
        ("not-ascii", rules(0, 2, 0), 0, "id,name\n1,José\n".into()),
        ("utf16", rules(0, 0, 4), 0, b"\xFF\xFEi\0d\0,\0n\0\n\0".to_vec()),
        ("zip", rules(0, 0, 4), 0, b"PK\x03\x04\x14\0\0\0".to_vec()),
        ("missing-columns", rules(3, 0, 0), 0, b"School_id,Last_name\n1,Lee\n".to_vec()),
        ("duplicate-columns", rules(0, 0, 0), 0, b"id,ID,name\n1,2,3\n".to_vec()),
        ("empty", rules(0, 0, 4), 0, Vec::new()),
    ];
    files
        .into_iter()
        .map(|(name, rules, read_size, bytes)| {
            (name.to_owned(), [vec![0, rules, read_size], bytes].concat())
        })
        .collect()
}
