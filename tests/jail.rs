//! Escape attempts against the jail: absolute paths, `..`, symlinks planted
//! on disk, NUL bytes, invalid UTF-8 and very long names. Whatever the client
//! sends, nothing outside data_dir/accounts/NAME is read or changed.

mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::raw::*;
use common::*;

const ACCOUNT: &str = "district_jail";
const NEIGHBOR: &str = "district_neighbor";
const SECRET: &str = "outside-the-jail-secret-7f3a9c";

/// A jail test setup: the account, a neighbouring account with a file, and a
/// directory outside data_dir holding a secret.
struct Jail {
    server: Server,
    login: Login,
    outside: PathBuf,
    env: Env,
}

fn jail_setup() -> Jail {
    let env = Env::new();
    env.create_account(ACCOUNT);
    env.create_account(NEIGHBOR);
    std::fs::write(env.inbound(NEIGHBOR).join("neighbor.csv"), SECRET).unwrap();
    let outside = env.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    let key = env.new_key(ACCOUNT);
    env.install_key(ACCOUNT, &key);
    let server = env.start();
    let login = env.login(&server, ACCOUNT, &key);
    Jail {
        env,
        server,
        login,
        outside,
    }
}

/// Everything that must not change: the test's temp tree except the
/// account's own root, its upload area, the database files and the
/// clients' working directories; plus /etc/passwd.
fn outside_state(j: &Jail) -> BTreeMap<PathBuf, Entry> {
    let env = &j.env;
    let account_root = env.account_root(ACCOUNT);
    let uploading = env.uploading(ACCOUNT);
    let skip: Vec<&Path> = vec![
        account_root.as_path(),
        uploading.as_path(),
        env.work.as_path(),
        env.home.as_path(),
    ];
    let mut state = snapshot(env.root(), &skip);
    // The database is written by every login attempt.
    state.retain(|p, _| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ferry.db"))
    });
    // known_hosts files are written when a login is described.
    state.retain(|p, _| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("known_hosts"))
    });
    // Not created by the jail when uploading/ did not exist before.
    state.retain(|p, _| p != &env.data_dir.join("uploading"));
    state.extend(snapshot(Path::new("/etc/passwd"), &[]));
    state
}

fn assert_no_leak(what: &str, text: &str) {
    let marker = passwd_marker();
    assert!(
        !text.contains(&marker),
        "{what}: the content of /etc/passwd came back:\n{text}"
    );
    assert!(
        !text.contains(SECRET),
        "{what}: a file outside the jail came back:\n{text}"
    );
}

/// Every file the client wrote locally must be free of outside content.
fn assert_local_files_clean(work: &Path) {
    for entry in std::fs::read_dir(work).unwrap().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            assert_no_leak(
                &format!("downloaded file {}", entry.path().display()),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}

#[test]
fn absolute_and_dotdot_paths_stay_in_the_jail() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let j = jail_setup();
    let before = outside_state(&j);
    for (i, path) in [
        "/etc/passwd",
        "../../etc/passwd",
        "/../../../../../../etc/passwd",
        "/inbound/../../../etc/passwd",
        "inbound/../../../../etc/passwd",
        "/inbound/..%2f..%2f..%2fetc%2fpasswd",
        "..\\..\\..\\etc\\passwd",
        "../../district_neighbor/inbound/neighbor.csv",
        "/../district_neighbor/inbound/neighbor.csv",
        "../../../outside/secret.txt",
    ]
    .iter()
    .enumerate()
    {
        let r = j.login.sftp_batch(&format!("get \"{path}\" got{i}.out\n"));
        assert!(!r.timed_out, "{r}");
        assert!(!r.success(), "`get {path}` must fail inside the jail: {r}");
        assert_no_leak(&format!("get {path}"), &r.output());
    }
    assert_local_files_clean(&j.login.work);

    // `cd ..` from / and from deep inside stays at the root layout.
    for cd in [
        "..",
        "/..",
        "../../..",
        "/inbound/../..",
        "/inbound/../../../../..",
    ] {
        let r = j.login.sftp_batch(&format!("cd {cd}\npwd\nls -1\n"));
        r.assert_success();
        let s = sections(&r.stdout, "sftp>");
        assert_eq!(
            ls_names(section(&s, "ls -1")),
            LAYOUT,
            "after `cd {cd}` the client must see the root layout: {r}"
        );
        assert!(
            section(&s, "pwd")
                .iter()
                .any(|l| l.trim_end().ends_with(": /")),
            "after `cd {cd}` the remote working directory must be /: {r}"
        );
    }

    // Writes aimed outside.
    write_random(&j.login.work.join("up.bin"), 4096);
    for cmd in [
        "put up.bin ../../escaped.bin",
        "put up.bin /../../../outside/escaped.bin",
        "put up.bin ../../../outside/secret.txt",
        "put up.bin ../district_neighbor/inbound/neighbor.csv",
        "mkdir ../../escaped_dir",
        "rename /inbound/../../../outside/secret.txt /inbound/stolen.txt",
        "rm ../../../outside/secret.txt",
    ] {
        let r = j.login.sftp_batch(&format!("{cmd}\n"));
        assert!(!r.timed_out, "{r}");
        assert!(!r.success(), "`{cmd}` must fail: {r}");
    }
    let after = outside_state(&j);
    let diff = snapshot_diff(&before, &after);
    assert!(
        diff.is_empty(),
        "escape attempts changed files outside the account: {diff:#?}"
    );
    assert!(
        !j.env.inbound(ACCOUNT).join("stolen.txt").exists(),
        "a file from outside the jail was moved in"
    );
}

#[test]
fn symlinks_planted_on_disk_are_not_followed() {
    if !require(&[SSH_KEYGEN, SFTP]) {
        return;
    }
    let j = jail_setup();
    let inbound = j.env.inbound(ACCOUNT);
    let links = [
        ("etc_link", PathBuf::from("/etc")),
        ("passwd_link", PathBuf::from("/etc/passwd")),
        ("outside_link", j.outside.clone()),
        ("secret_link", j.outside.join("secret.txt")),
        ("neighbor_link", j.env.inbound(NEIGHBOR)),
        ("relative_link", PathBuf::from("../../../../outside")),
    ];
    for (name, target) in &links {
        std::os::unix::fs::symlink(target, inbound.join(name)).unwrap();
    }
    // A symlink planted right in the account's root, too.
    std::os::unix::fs::symlink("/etc", j.env.account_root(ACCOUNT).join("etc")).unwrap();
    let before = outside_state(&j);

    let reads = [
        "get /inbound/passwd_link p1.out",
        "get /inbound/etc_link/passwd p2.out",
        "get /etc/passwd p3.out",
        "get /inbound/secret_link s1.out",
        "get /inbound/outside_link/secret.txt s2.out",
        "get /inbound/relative_link/secret.txt s3.out",
        "get /inbound/neighbor_link/neighbor.csv n1.out",
        "ls -l /inbound/etc_link/",
        "ls -l /inbound/outside_link/",
        "ls -l /inbound/neighbor_link/",
        "ls -l /etc/",
    ];
    for cmd in reads {
        let r = j.login.sftp_batch(&format!("{cmd}\n"));
        assert!(!r.timed_out, "{r}");
        assert_no_leak(cmd, &r.output());
        if cmd.starts_with("ls") {
            for etc_name in ["passwd", "hostname", "secret.txt", "neighbor.csv"] {
                assert!(
                    !r.stdout.lines().any(|l| l.trim_end().ends_with(etc_name)),
                    "`{cmd}` listed `{etc_name}` from outside the jail: {r}"
                );
            }
        }
    }
    assert_local_files_clean(&j.login.work);

    write_random(&j.login.work.join("up.bin"), 4096);
    for cmd in [
        "put up.bin /inbound/outside_link/evil.txt",
        "put up.bin /inbound/secret_link",
        "put up.bin /inbound/neighbor_link/evil.csv",
        "put up.bin /inbound/neighbor_link/neighbor.csv",
        "mkdir /inbound/outside_link/newdir",
        "rm /inbound/outside_link/secret.txt",
        "rename /inbound/outside_link/secret.txt /inbound/stolen.txt",
        "rename /inbound/neighbor_link/neighbor.csv /inbound/stolen.csv",
        "rmdir /inbound/outside_link/",
        "chmod 000 /inbound/secret_link",
    ] {
        let r = j.login.sftp_batch(&format!("{cmd}\n"));
        assert!(!r.timed_out, "{r}");
        let after = outside_state(&j);
        let diff = snapshot_diff(&before, &after);
        assert!(
            diff.is_empty(),
            "`{cmd}` changed files outside the account: {diff:#?}\n{r}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(j.outside.join("secret.txt")).unwrap(),
        SECRET
    );
    for stolen in ["stolen.txt", "stolen.csv"] {
        if let Ok(bytes) = std::fs::read(inbound.join(stolen)) {
            assert_no_leak(stolen, &String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn nul_invalid_utf8_and_long_names_stay_in_the_jail() {
    if !require(&[SSH_KEYGEN]) {
        return;
    }
    let mut j = jail_setup();
    let inbound = j.env.inbound(ACCOUNT);
    let before = outside_state(&j);
    let marker = passwd_marker();
    let port = j.login.port;
    let key = j.login.key.private.clone();

    block_on(Duration::from_secs(180), async {
        let handle = login(port, ACCOUNT, &key).await;
        let mut sftp = RawSftp::start(&handle).await;
        assert_eq!(sftp.init().await, 3);

        // Reads with NUL bytes or invalid UTF-8 aimed at /etc/passwd.
        let sneaky: Vec<&[u8]> = vec![
            b"/etc/passwd\0",
            b"/etc/passwd\0/inbound/x",
            b"/inbound/\0/../../../../etc/passwd",
            b"/inbound/x\0/../../../../../etc/passwd",
            b"\0/etc/passwd",
            b"/inbound/\xff/../../../etc/passwd",
            b"/inbound/\xff\xfe/../../../../etc/passwd",
            b"/\xc0\xae\xc0\xae/\xc0\xae\xc0\xae/etc/passwd",
            b"/inbound/..\xff/..\xff/etc/passwd",
            b"../../../outside/secret.txt\0",
        ];
        for path in &sneaky {
            let shown = String::from_utf8_lossy(path).into_owned();
            let opened = sftp.open(path, SSH_FXF_READ).await;
            if let Some(handle) = opened.handle() {
                let content = sftp.read_all(&handle).await.unwrap_or_default();
                let text = String::from_utf8_lossy(&content);
                assert!(
                    !text.contains(&marker),
                    "OPEN {shown:?} returned /etc/passwd"
                );
                assert!(
                    !text.contains(SECRET),
                    "OPEN {shown:?} returned a file outside the jail"
                );
                sftp.close(&handle).await;
            } else {
                let (_, code, _) = opened.status().unwrap_or_else(|| {
                    panic!("OPEN {shown:?}: expected HANDLE or STATUS, got {opened:?}")
                });
                assert_ne!(
                    code, SSH_FX_OK,
                    "OPEN {shown:?} answered OK without a handle"
                );
            }
            for reply in [
                sftp.stat(path).await,
                sftp.lstat(path).await,
                sftp.realpath(path).await,
            ] {
                assert!(
                    matches!(
                        reply.ty(),
                        Some(SSH_FXP_STATUS | SSH_FXP_ATTRS | SSH_FXP_NAME)
                    ),
                    "{shown:?}: unexpected reply {reply:?}"
                );
                if let Some(names) = reply.names() {
                    for n in names {
                        assert!(
                            n.starts_with(b"/"),
                            "REALPATH {shown:?} returned a relative path {n:?}"
                        );
                        assert!(
                            !n.split(|b| *b == b'/').any(|c| c == b".."),
                            "REALPATH {shown:?} returned a path with `..`: {:?}",
                            String::from_utf8_lossy(&n)
                        );
                    }
                }
            }
            let listed = sftp.list(path).await;
            if let Ok(names) = listed {
                for n in names {
                    let n = String::from_utf8_lossy(&n).into_owned();
                    assert!(
                        !["passwd", "hostname", "secret.txt", "shadow"].contains(&n.as_str()),
                        "OPENDIR {shown:?} listed {n} from outside the jail"
                    );
                }
            }
        }

        // REALPATH of `..` past the root is the root.
        for path in [
            &b"/inbound/\xff/../../.."[..],
            b"/../../..",
            b"..",
            b"/inbound/../../../..",
        ] {
            let r = sftp.realpath(path).await;
            if let Some(names) = r.names() {
                assert_eq!(
                    names,
                    vec![b"/".to_vec()],
                    "REALPATH {:?}",
                    String::from_utf8_lossy(path)
                );
            }
        }

        // Names with NUL cannot exist on disk: creating one is refused.
        for path in [
            &b"/inbound/nul\0name.txt"[..],
            b"/inbound/nul\0",
            b"/inbound/\0",
        ] {
            let shown = String::from_utf8_lossy(path).into_owned();
            let opened = sftp
                .open(path, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC)
                .await;
            let status = opened.status();
            assert!(
                matches!(status, Some((_, code, _)) if code != SSH_FX_OK),
                "OPEN for write {shown:?} must be refused with a status, got {opened:?}"
            );
            let made = sftp.mkdir(path).await;
            assert!(
                matches!(made.status(), Some((_, code, _)) if code != SSH_FX_OK),
                "MKDIR {shown:?} must be refused, got {made:?}"
            );
        }
        let names = dir_names(&inbound);
        assert!(
            names.is_empty(),
            "NUL names created files in inbound: {names:?}"
        );

        // Invalid UTF-8 in a name: either refused, or kept byte for byte —
        // never rewritten into U+FFFD.
        let name: &[u8] = b"bad\xff\xfename.txt";
        let mut full = b"/inbound/".to_vec();
        full.extend_from_slice(name);
        let opened = sftp
            .open(&full, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC)
            .await;
        if let Some(h) = opened.handle() {
            eprintln!("invalid UTF-8 name: accepted and kept byte for byte");
            let w = sftp.write(&h, 0, b"hello").await;
            assert_eq!(w.status().map(|s| s.1), Some(SSH_FX_OK), "WRITE {w:?}");
            let c = sftp.close(&h).await;
            assert_eq!(c.status().map(|s| s.1), Some(SSH_FX_OK), "CLOSE {c:?}");
            let on_disk = dir_names(&inbound);
            let exact = inbound.join(std::ffi::OsStr::from_bytes(name));
            assert!(
                exact.is_file(),
                "an upload named bad\\xff\\xfename.txt must keep its bytes; inbound holds {on_disk:?}"
            );
            assert_eq!(std::fs::read(&exact).unwrap(), b"hello");
            let listed = sftp.list(b"/inbound").await.expect("list /inbound");
            assert!(
                listed.iter().any(|n| n == name),
                "READDIR must return the name's exact bytes: {:?}",
                listed
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect::<Vec<_>>()
            );
            let removed = sftp.remove(&full).await;
            assert_eq!(
                removed.status().map(|s| s.1),
                Some(SSH_FX_OK),
                "REMOVE {removed:?}"
            );
            assert!(!exact.exists(), "REMOVE by exact bytes left the file");
        } else {
            eprintln!("invalid UTF-8 name: refused with {:?}", opened.status());
            assert!(
                matches!(opened.status(), Some((_, code, _)) if code != SSH_FX_OK),
                "OPEN of an invalid UTF-8 name: expected HANDLE or an error STATUS, got {opened:?}"
            );
            assert!(
                dir_names(&inbound).is_empty(),
                "a refused name still created a file"
            );
        }
        assert!(
            !dir_names(&inbound).iter().any(|n| n.contains('\u{FFFD}')),
            "a name was rewritten lossily: {:?}",
            dir_names(&inbound)
        );

        // Very long names and paths: refused or handled, never a crash.
        let long_name = vec![b'a'; 5000];
        let mut long_path = b"/inbound/".to_vec();
        long_path.extend_from_slice(&long_name);
        let deep: Vec<u8> = b"/inbound"
            .iter()
            .copied()
            .chain(b"/..".repeat(5000))
            .chain(*b"/etc/passwd")
            .collect();
        for path in [long_path.as_slice(), deep.as_slice()] {
            let r = sftp
                .open(path, SSH_FXF_WRITE | SSH_FXF_CREAT | SSH_FXF_TRUNC)
                .await;
            assert!(
                r.ty().is_some(),
                "OPEN of a {}-byte path: no reply: {r:?}",
                path.len()
            );
            if let Some(h) = r.handle() {
                sftp.close(&h).await;
            }
            let r = sftp.open(path, SSH_FXF_READ).await;
            if let Some(h) = r.handle() {
                let content = sftp.read_all(&h).await.unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&content).contains(&marker),
                    "a long path returned /etc/passwd"
                );
                sftp.close(&h).await;
            }
        }

        // The session still works.
        let listed = sftp
            .list(b"/")
            .await
            .expect("list / after the escape attempts");
        let mut names: Vec<String> = listed
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        assert_eq!(names, LAYOUT);
    });

    assert!(
        j.server.is_running(),
        "the server died during the escape attempts"
    );
    let after = outside_state(&j);
    let diff = snapshot_diff(&before, &after);
    assert!(
        diff.is_empty(),
        "escape attempts changed files outside the account: {diff:#?}"
    );
}
