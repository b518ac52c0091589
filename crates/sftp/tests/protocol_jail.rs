//! The jail over the wire: read-only folders refuse every write with a
//! reason, escape attempts never reach outside the account's root, and a
//! missing path is NO_SUCH_FILE, never PERMISSION_DENIED.

mod protocol_client;

use std::fs;
use std::os::unix::fs::symlink;

use ferry_sftp::protocol::codec::{client, packet, status};
use protocol_client::*;

#[tokio::test]
async fn root_lists_the_layout_in_ls_style() {
    bounded(async {
        let (mut client, _server) = start().await;
        let entries = client.list(b"/").await;
        let mut names: Vec<String> = entries
            .iter()
            .map(|(n, _)| String::from_utf8(n.clone()).unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".", "..", "archive", "inbound", "outbound", "reports"]
        );
        let (_, long) = entries.iter().find(|(n, _)| n == b"inbound").unwrap();
        assert!(long.starts_with('d'), "{long}");
        assert_eq!(long.split_whitespace().count(), 9, "{long}");
        assert!(long.ends_with(" inbound"));
        assert!(long.contains(ACCOUNT));
    })
    .await;
}

#[tokio::test]
async fn writes_are_refused_outside_inbound_with_a_reason() {
    bounded(async {
        let (mut client, server) = start().await;
        for folder in ["outbound", "archive", "reports"] {
            fs::write(server.root.join(folder).join("file.txt"), b"keep").unwrap();
        }
        for (path, reason) in [
            ("/new.csv", "upload into /inbound"),
            (
                "/outbound/new.csv",
                "/outbound is read-only: upload into /inbound",
            ),
            ("/archive/new.csv", "/archive is read-only"),
            ("/reports/new.csv", "/reports is read-only"),
            ("/outbound/file.txt", "/outbound is read-only"),
        ] {
            let (code, message) = client.upload(path.as_bytes(), b"x").await;
            assert_eq!(code, status::PERMISSION_DENIED, "{path}");
            assert!(message.contains(reason), "{path}: {message}");
        }
        for folder in ["/", "/outbound", "/archive", "/reports"] {
            let sub = format!("{}/sub", folder.trim_end_matches('/'));
            assert_eq!(
                client.mkdir(sub.as_bytes()).await.status().0,
                status::PERMISSION_DENIED,
                "{sub}"
            );
            let file = format!("{}/file.txt", folder.trim_end_matches('/'));
            if folder != "/" {
                assert_eq!(
                    client
                        .path_request(packet::REMOVE, file.as_bytes())
                        .await
                        .status()
                        .0,
                    status::PERMISSION_DENIED
                );
                let target = b"/inbound/stolen.txt";
                assert_eq!(
                    client.rename(file.as_bytes(), target).await.status().0,
                    status::PERMISSION_DENIED
                );
                assert_eq!(
                    client
                        .rename(b"/inbound", folder.as_bytes())
                        .await
                        .status()
                        .0,
                    status::PERMISSION_DENIED
                );
            }
        }
        for folder in ["outbound", "archive", "reports"] {
            assert_eq!(
                fs::read(server.root.join(folder).join("file.txt")).unwrap(),
                b"keep"
            );
        }
        assert!(!server.root.join("new.csv").exists());
        for top in ["/inbound", "/outbound", "/archive", "/reports"] {
            assert_eq!(
                client
                    .path_request(packet::RMDIR, top.as_bytes())
                    .await
                    .status()
                    .0,
                status::PERMISSION_DENIED
            );
        }
        let (code, message) = client.rename(b"/inbound", b"/inbox").await.status();
        assert_eq!(code, status::PERMISSION_DENIED);
        assert_eq!(message, "/inbound cannot be removed or renamed");
        client.upload(b"/inbound/mine.csv", b"m").await;
        assert_eq!(
            client
                .rename(b"/inbound/mine.csv", b"/outbound/mine.csv")
                .await
                .status()
                .0,
            status::PERMISSION_DENIED
        );
        assert!(server.root.join("inbound").is_dir());
    })
    .await;
}

#[tokio::test]
async fn missing_paths_are_no_such_file_even_where_writes_are_forbidden() {
    bounded(async {
        let (mut client, _server) = start().await;
        for path in [
            "/outbound/missing.txt",
            "/archive/missing",
            "/missing",
            "/inbound/missing",
        ] {
            assert_eq!(
                client
                    .path_request(packet::REMOVE, path.as_bytes())
                    .await
                    .status()
                    .0,
                status::NO_SUCH_FILE,
                "{path}"
            );
            assert_eq!(
                client
                    .path_request(packet::STAT, path.as_bytes())
                    .await
                    .status()
                    .0,
                status::NO_SUCH_FILE,
                "{path}"
            );
            assert_eq!(
                client.open(path.as_bytes(), READ_ONLY).await.status().0,
                status::NO_SUCH_FILE,
                "{path}"
            );
        }
        assert_eq!(
            client
                .rename(b"/outbound/missing", b"/inbound/x")
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            client.upload(b"/outbound/no/such/folder.csv", b"x").await.0,
            status::NO_SUCH_FILE
        );
        let (code, message) = client
            .path_request(packet::OPENDIR, b"/nowhere")
            .await
            .status();
        assert_eq!(code, status::NO_SUCH_FILE);
        assert!(message.contains("/nowhere"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_stay_inside_the_root() {
    bounded(async {
        let (mut client, server) = start().await;
        fs::write(server.data.path().join("outside.txt"), b"secret").unwrap();
        for path in [
            &b"../../etc/passwd"[..],
            b"/etc/passwd",
            b"/../../../../etc/passwd",
            b"/inbound/../../outside.txt",
            b"../outside.txt",
            b"../../outside.txt",
            b"..//..//accounts",
        ] {
            let reply = client.open(path, READ_ONLY).await;
            assert_eq!(
                reply.status().0,
                status::NO_SUCH_FILE,
                "{}",
                String::from_utf8_lossy(path)
            );
        }
        for (raw, expected) in [
            (&b"."[..], "/"),
            (b"", "/"),
            (b"/../..", "/"),
            (b"inbound/../inbound//x/./", "/inbound/x"),
        ] {
            let names = client.path_request(packet::REALPATH, raw).await.names();
            assert_eq!(names[0].0, expected.as_bytes());
        }
        let (code, _) = client.upload(b"/inbound/../../escape.csv", b"x").await;
        assert_eq!(code, status::PERMISSION_DENIED);
        assert!(!server.data.path().join("escape.csv").exists());
        assert_eq!(
            client.upload(b"../inbound/../inbound/ok.csv", b"x").await.0,
            status::OK
        );
        assert!(server.root.join("inbound/ok.csv").exists());
    })
    .await;
}

#[tokio::test]
async fn symlinks_planted_on_disk_are_never_followed() {
    bounded(async {
        let (mut client, server) = start().await;
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
        symlink(outside.path(), server.root.join("inbound/escape")).unwrap();
        symlink(
            outside.path().join("secret.txt"),
            server.root.join("outbound/secret.txt"),
        )
        .unwrap();

        assert_eq!(
            client
                .open(b"/outbound/secret.txt", READ_ONLY)
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            client
                .open(b"/inbound/escape/secret.txt", READ_ONLY)
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            client
                .path_request(packet::STAT, b"/inbound/escape")
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            client
                .path_request(packet::OPENDIR, b"/inbound/escape")
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            client.upload(b"/inbound/escape/planted.csv", b"x").await.0,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            client
                .path_request(packet::READLINK, b"/outbound/secret.txt")
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        let listed = client.list(b"/inbound").await;
        assert!(listed.iter().all(|(name, _)| name != b"escape"));
        assert!(!outside.path().join("planted.csv").exists());

        let symlink_request = [
            client::string(b"/inbound/l"),
            client::string(b"/etc/passwd"),
        ]
        .concat();
        let (code, message) = client
            .call(packet::SYMLINK, &symlink_request)
            .await
            .status();
        assert_eq!(code, status::PERMISSION_DENIED);
        assert!(message.contains("symbolic links"), "{message}");
        let hardlink = [
            client::string(b"/inbound/ok"),
            client::string(b"/inbound/l"),
        ]
        .concat();
        assert_eq!(
            client
                .extended("hardlink@openssh.com", &hardlink)
                .await
                .status()
                .0,
            status::PERMISSION_DENIED
        );
        assert_eq!(
            fs::read(outside.path().join("secret.txt")).unwrap(),
            b"secret"
        );
    })
    .await;
}

#[tokio::test]
async fn nul_invalid_utf8_and_long_names_get_clear_answers() {
    bounded(async {
        let (mut client, server) = start().await;
        let (code, message) = client.upload(b"/inbound/a\0b.csv", b"x").await;
        assert_eq!(code, status::FAILURE);
        assert!(message.contains("NUL"), "{message}");

        let (code, message) = client.upload(b"/inbound/bad\xff\xfename.txt", b"x").await;
        assert_eq!(code, status::PERMISSION_DENIED);
        assert!(
            message.contains("UTF-8") && message.contains("\\xff"),
            "{message}"
        );
        assert_eq!(
            fs::read_dir(server.root.join("inbound")).unwrap().count(),
            0
        );

        let long = format!("/inbound/{}.csv", "n".repeat(300));
        let (code, message) = client.upload(long.as_bytes(), b"x").await;
        assert_eq!(code, status::FAILURE);
        assert!(message.contains("at most 255 bytes"), "{message}");

        let fine = format!("/inbound/{}", "é".repeat(100));
        assert_eq!(client.upload(fine.as_bytes(), b"x").await.0, status::OK);
    })
    .await;
}

#[tokio::test]
async fn downloads_work_from_read_only_folders() {
    bounded(async {
        let (mut client, server) = start().await;
        fs::create_dir(server.root.join("archive/2024-01-02")).unwrap();
        fs::write(
            server.root.join("archive/2024-01-02/roster.csv"),
            b"archived",
        )
        .unwrap();
        let handle = client
            .open(b"/archive/2024-01-02/roster.csv", READ_ONLY)
            .await
            .handle();
        assert_eq!(&client.read(&handle, 0, 1000).await.data()[..], b"archived");
        assert_eq!(client.read(&handle, 8, 1000).await.status().0, status::EOF);
        assert_eq!(client.close(&handle).await.status().0, status::OK);
        let (code, message) = client.open(b"/archive", READ_ONLY).await.status();
        assert_eq!(code, status::FAILURE);
        assert!(message.contains("folder"), "{message}");
        let listed = client.list(b"/archive/2024-01-02").await;
        assert!(
            listed
                .iter()
                .any(|(name, long)| name == b"roster.csv" && long.starts_with("-rw"))
        );
    })
    .await;
}

#[tokio::test]
async fn large_folders_are_listed_in_several_batches() {
    bounded(async {
        let (mut client, server) = start().await;
        for i in 0..250 {
            fs::write(server.root.join(format!("outbound/f{i:03}.csv")), b"x").unwrap();
        }
        let listed = client.list(b"/outbound").await;
        assert_eq!(listed.len(), 252);
        for i in 0..250 {
            let name = format!("f{i:03}.csv");
            assert!(
                listed.iter().any(|(n, _)| n == name.as_bytes()),
                "{name} missing"
            );
        }
    })
    .await;
}
