//! The session budget at the protocol level: open handles per session and
//! per account, the largest file (WRITE, SETSTAT, FSETSTAT), the quota, a
//! sparse file reopened, and names with control characters. Each limit is
//! set low; the end-to-end tests (tests/sftp_limits.rs) repeat the main ones
//! against a real `ferry serve`.

mod protocol_client;

use std::fs;
use std::os::unix::fs::MetadataExt;

use ferry_sftp::protocol::budget::{Budget, Limits};
use ferry_sftp::protocol::codec::{Attrs, client, packet, status};
use ferry_sftp::upload::UploadEvent;
use protocol_client::*;

fn limits(handles_per_session: usize, handles_per_account: usize) -> Limits {
    Limits {
        handles_per_session,
        handles_per_account,
        ..Limits::default()
    }
}

fn sized(size: u64) -> Attrs {
    Attrs {
        size: Some(size),
        ..Attrs::default()
    }
}

async fn fsetstat(client: &mut Client, handle: &[u8], attrs: &Attrs) -> Reply {
    client
        .call(
            packet::FSETSTAT,
            &[client::string(handle), client::attrs(attrs)].concat(),
        )
        .await
}

#[tokio::test]
async fn handles_are_capped_per_session_and_per_account_and_given_back() {
    bounded(async {
        let data = tempfile::tempdir().unwrap();
        let budget = Budget::standalone(limits(3, 4));
        let (mut one, _server_one) = start_in(data, budget.clone()).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(one.path_request(packet::OPENDIR, b"/").await.handle());
        }
        let (code, message) = one.path_request(packet::OPENDIR, b"/").await.status();
        assert_eq!(code, status::FAILURE);
        assert_eq!(
            message,
            "too many open files and folders in this session (at most 3): close some first"
        );
        let (code, _) = one
            .open(b"/inbound/x.csv", WRITE_CREATE_TRUNCATE)
            .await
            .status();
        assert_eq!(code, status::FAILURE, "OPEN counts too");

        // A second session of the same account: one more handle, then the
        // account's cap.
        let (mut two, _server_two) = start_in(tempfile::tempdir().unwrap(), budget.clone()).await;
        let fourth = two.path_request(packet::OPENDIR, b"/").await.handle();
        let (_, message) = two
            .path_request(packet::OPENDIR, b"/inbound")
            .await
            .status();
        assert!(
            message.contains("this account may have at most 4 open at once"),
            "{message}"
        );
        assert_eq!(budget.usage.open_handles(), 4);

        assert_eq!(one.close(&held.pop().unwrap()).await.status().0, status::OK);
        let again = two.path_request(packet::OPENDIR, b"/inbound").await;
        assert_eq!(
            again.kind,
            packet::HANDLE,
            "a closed handle's place is free"
        );
        drop((fourth, again));
        drop(one);
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while budget.usage.open_handles() > 2 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("an ended session gives its handles back");
    })
    .await;
}

#[tokio::test]
async fn a_write_past_the_largest_file_is_refused_and_nothing_is_saved() {
    bounded(async {
        let budget = Budget::standalone(Limits {
            max_file_size: 1000,
            ..Limits::default()
        });
        let (mut client, mut server) = start_in(tempfile::tempdir().unwrap(), budget).await;
        let handle = client
            .open(b"/inbound/big.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        assert_eq!(client.write(&handle, 0, &[b'a'; 990]).await.status().0, status::OK);
        let (code, message) = client.write(&handle, 990, &[b'b'; 20]).await.status();
        assert_eq!(code, status::FAILURE);
        assert_eq!(
            message,
            "/inbound/big.csv would be larger than the largest file this server accepts (1000 B); split the file or ask the vendor to raise the limit"
        );
        let (code, message) = client.write(&handle, 0, b"fine").await.status();
        assert_eq!(code, status::FAILURE, "the upload stays failed");
        assert!(message.contains("nothing was saved as big.csv"), "{message}");
        let (code, message) = client.close(&handle).await.status();
        assert_eq!(code, status::FAILURE);
        assert_eq!(
            message,
            "/inbound/big.csv would be larger than the largest file this server accepts (1000 B); nothing was saved as big.csv; split the file or ask the vendor to raise the limit"
        );
        assert!(!server.root.join("inbound/big.csv").exists());
        assert_eq!(fs::read_dir(&server.upload_dir).unwrap().count(), 0);
        match server.next_event().await {
            UploadEvent::Partial(p) => assert_eq!(p.reason, message),
            other => panic!("expected a partial upload, got {other:?}"),
        }
        assert!(server.no_more_events(), "no finished event");

        // SETSTAT and FSETSTAT to a size past it are refused too.
        assert_eq!(client.upload(b"/inbound/small.csv", b"x").await.0, status::OK);
        let (code, message) = client.setstat(b"/inbound/small.csv", &sized(1 << 40)).await.status();
        assert_eq!(code, status::FAILURE);
        assert!(message.starts_with("/inbound/small.csv would be larger"), "{message}");
        assert_eq!(fs::metadata(server.root.join("inbound/small.csv")).unwrap().len(), 1);
        assert_eq!(client.setstat(b"/inbound/small.csv", &sized(500)).await.status().0, status::OK);
        let handle = client
            .open(b"/inbound/other.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        let (code, message) = fsetstat(&mut client, &handle, &sized(1001)).await.status();
        assert_eq!(code, status::FAILURE);
        assert!(message.starts_with("/inbound/other.csv would be larger"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn the_quota_counts_inbound_and_uploads_in_progress() {
    bounded(async {
        let data = tempfile::tempdir().unwrap();
        let root = ferry_sftp::jail::Jail::create_layout(data.path(), ACCOUNT).unwrap();
        fs::write(root.join("inbound/already.csv"), [b'x'; 300]).unwrap();
        let budget = Budget::standalone(Limits {
            quota: 1000,
            ..Limits::default()
        });
        budget.usage.recount(&root.join("inbound")).unwrap();
        let (mut client, mut server) = start_in(data, budget.clone()).await;
        assert_eq!(client.upload(b"/inbound/a.csv", &[b'a'; 600]).await.0, status::OK);
        assert_eq!(budget.usage.used(), 900);

        let handle = client
            .open(b"/inbound/b.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        let (code, message) = client.write(&handle, 0, &[b'b'; 200]).await.status();
        assert_eq!(code, status::FAILURE);
        assert_eq!(
            message,
            "this account's storage is full: 900 B of 1000 B used; remove files from /inbound or ask the vendor to raise the quota"
        );
        let (code, message) = client.close(&handle).await.status();
        assert_eq!(code, status::FAILURE);
        assert!(message.contains("; nothing was saved as b.csv; "), "{message}");
        assert!(!server.root.join("inbound/b.csv").exists());
        assert!(matches!(server.next_event().await, UploadEvent::Finished(_)));
        assert!(matches!(server.next_event().await, UploadEvent::Partial(_)));
        assert_eq!(budget.usage.used(), 900, "the failed upload's bytes are given back");

        // Removing a file makes room. While a file is replaced, both count
        // (the old one stays until the new one is closed); after, only the new.
        assert_eq!(
            client.path_request(packet::REMOVE, b"/inbound/a.csv").await.status().0,
            status::OK
        );
        assert_eq!(budget.usage.used(), 300);
        assert_eq!(client.upload(b"/inbound/b.csv", &[b'b'; 500]).await.0, status::OK);
        assert_eq!(client.upload(b"/inbound/b.csv", &[b'c'; 150]).await.0, status::OK);
        assert_eq!(budget.usage.used(), 450);
        assert_eq!(
            client.rename(b"/inbound/b.csv", b"/inbound/already.csv").await.status().0,
            status::OK
        );
        assert_eq!(budget.usage.used(), 150, "the replaced file no longer counts");
    })
    .await;
}

#[tokio::test]
async fn reopening_a_sparse_file_keeps_its_holes_and_counts_against_the_quota() {
    bounded(async {
        let budget = Budget::standalone(Limits {
            quota: 1 << 30,
            ..Limits::default()
        });
        let (mut client, server) = start_in(tempfile::tempdir().unwrap(), budget.clone()).await;
        assert_eq!(
            client.upload(b"/inbound/sparse.bin", b"x").await.0,
            status::OK
        );
        let half = 512 << 20;
        assert_eq!(
            client
                .setstat(b"/inbound/sparse.bin", &sized(half))
                .await
                .status()
                .0,
            status::OK
        );
        assert_eq!(budget.usage.used(), half);

        // Reopened without TRUNC: the upload starts from a copy.
        let handle = client.open(b"/inbound/sparse.bin", 0x02).await.handle();
        let temp = fs::read_dir(&server.upload_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let meta = temp.metadata().unwrap();
        assert_eq!(meta.len(), half);
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "the copy holds {} blocks",
            meta.blocks()
        );
        assert_eq!(budget.usage.used(), 2 * half, "the copy counts");

        let (code, message) = client.open(b"/inbound/sparse.bin", 0x02).await.status();
        assert_eq!(code, status::FAILURE);
        assert!(
            message.starts_with("this account's storage is full: 1.0 GiB of 1.0 GiB used"),
            "{message}"
        );
        assert_eq!(
            fs::read_dir(&server.upload_dir).unwrap().count(),
            1,
            "the refused copy is gone"
        );
        assert_eq!(client.close(&handle).await.status().0, status::OK);
        assert_eq!(budget.usage.used(), half);
    })
    .await;
}

#[tokio::test]
async fn new_names_with_control_characters_are_refused() {
    bounded(async {
        let (mut client, server) = start().await;
        let expected = |name: &str| {
            format!("/inbound/{name}: file names may not contain control characters; choose a name without them")
        };
        let (code, message) = client.mkdir(b"/inbound/a\nb").await.status();
        assert_eq!(code, status::FAILURE);
        assert_eq!(message, expected("a\\nb"));
        let (_, message) = client.open(b"/inbound/x\x1b[31m.csv", WRITE_CREATE_TRUNCATE).await.status();
        assert_eq!(message, expected("x\\x1b[31m.csv"));
        assert_eq!(client.upload(b"/inbound/ok.csv", b"1").await.0, status::OK);
        let (_, message) = client.rename(b"/inbound/ok.csv", b"/inbound/ok\r.csv").await.status();
        assert_eq!(message, expected("ok\\r.csv"));
        let (_, message) = client.posix_rename(b"/inbound/ok.csv", b"/inbound/\x7f").await.status();
        assert_eq!(message, expected("\\x7f"));
        let symlink = [client::string(b"/inbound/l\tink"), client::string(b"/inbound/ok.csv")].concat();
        let (_, message) = client.call(packet::SYMLINK, &symlink).await.status();
        assert_eq!(message, expected("l\\tink"));
        let hardlink = [client::string(b"/inbound/ok.csv"), client::string(b"/inbound/h\n")].concat();
        let (_, message) = client.extended("hardlink@openssh.com", &hardlink).await.status();
        assert_eq!(message, expected("h\\n"));
        let mut names: Vec<_> = fs::read_dir(server.root.join("inbound"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["ok.csv"]);

        // A name that already has one (copied in by other means) can still
        // be read, renamed to a clean name, and removed.
        fs::write(server.root.join("inbound/old\nname.csv"), b"x").unwrap();
        assert_eq!(
            client.rename(b"/inbound/old\nname.csv", b"/inbound/clean.csv").await.status().0,
            status::OK
        );
    })
    .await;
}
