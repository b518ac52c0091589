//! Uploads: atomic close, events for ingest, pipelined writes, partial
//! uploads, WinSCP's `.filepart` + rename, timestamps.

mod protocol_client;

use std::fs;
use std::os::unix::fs::MetadataExt;

use ferry_sftp::protocol::codec::{Attrs, client, packet, status};
use ferry_sftp::upload::{UploadEvent, UploadFinished, UploadPartial};
use protocol_client::*;

fn finished(path: &str, size: u64) -> UploadEvent {
    UploadEvent::Finished(UploadFinished {
        account: ACCOUNT.into(),
        path: path.into(),
        size,
    })
}

#[tokio::test]
async fn upload_appears_only_at_close_and_publishes_finished() {
    bounded(async {
        let (mut client, mut server) = start().await;
        let handle = client
            .open(b"/inbound/roster.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        assert_eq!(
            client
                .write(&handle, 0, b"id,name\n1,Ada\n")
                .await
                .status()
                .0,
            status::OK
        );
        let final_path = server.root.join("inbound/roster.csv");
        assert!(
            !final_path.exists(),
            "half a file visible under its real name"
        );
        let temps: Vec<_> = fs::read_dir(&server.upload_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(temps.len(), 1);
        assert!(temps[0].to_string_lossy().ends_with(".upload"));
        assert_eq!(
            client
                .path_request(packet::STAT, b"/inbound/roster.csv")
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );

        assert_eq!(client.close(&handle).await.status().0, status::OK);
        assert_eq!(fs::read(&final_path).unwrap(), b"id,name\n1,Ada\n");
        assert_eq!(
            server.next_event().await,
            finished("/inbound/roster.csv", 14)
        );
        assert_eq!(fs::read_dir(&server.upload_dir).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test]
async fn sixty_four_pipelined_writes_are_all_answered_and_land_in_order() {
    bounded(async { sixty_four_pipelined_writes(start().await).await }).await;
}

/// The same on storage with latency, where the writes overlap on the
/// blocking pool instead of running inline.
#[tokio::test]
async fn sixty_four_pipelined_writes_overlapping_on_slow_storage() {
    bounded(async { sixty_four_pipelined_writes(start_on_slow_storage().await).await }).await;
}

/// Pipelined READs overlapping on the blocking pool each get their own
/// bytes back under their own id.
#[tokio::test]
async fn pipelined_reads_overlapping_on_slow_storage_return_their_own_bytes() {
    bounded(async {
        let (mut client, server) = start_on_slow_storage().await;
        let chunk = 32 * 1024;
        let content: Vec<u8> = (0..16 * chunk).map(|i| (i % 241) as u8).collect();
        fs::write(server.root.join("outbound/export.csv"), &content).unwrap();
        let handle = client
            .open(b"/outbound/export.csv", READ_ONLY)
            .await
            .handle();
        let mut offsets = std::collections::HashMap::new();
        for n in 0..16 {
            let mut fields = client::string(&handle);
            fields.extend_from_slice(&((n * chunk) as u64).to_be_bytes());
            fields.extend_from_slice(&(chunk as u32).to_be_bytes());
            offsets.insert(client.send(packet::READ, &fields).await, n * chunk);
        }
        for _ in 0..16 {
            let reply = client.recv().await.unwrap();
            let offset = offsets.remove(&reply.id).expect("a reply to a READ sent");
            assert_eq!(&reply.data()[..], &content[offset..offset + chunk]);
        }
        drop(server);
    })
    .await;
}

async fn sixty_four_pipelined_writes((mut client, mut server): (Client, Server)) {
    let handle = client
        .open(b"/inbound/big.bin", WRITE_CREATE_TRUNCATE)
        .await
        .handle();
    let chunk = 32 * 1024;
    let content: Vec<u8> = (0..64 * chunk).map(|i| (i % 251) as u8).collect();
    let mut ids = Vec::new();
    for (n, piece) in content.chunks(chunk).enumerate() {
        ids.push(
            client
                .send(
                    packet::WRITE,
                    &write_fields(&handle, (n * chunk) as u64, piece),
                )
                .await,
        );
    }
    let close_id = client.send(packet::CLOSE, &client::string(&handle)).await;
    let mut answered = Vec::new();
    for _ in 0..ids.len() {
        let reply = client.recv().await.unwrap();
        assert_eq!(reply.status().0, status::OK);
        answered.push(reply.id);
    }
    let close = client.recv().await.unwrap();
    assert_eq!(close.id, close_id, "CLOSE answered before its WRITEs");
    assert_eq!(close.status().0, status::OK);
    answered.sort();
    assert_eq!(answered, ids);
    assert_eq!(
        fs::read(server.root.join("inbound/big.bin")).unwrap(),
        content
    );
    assert_eq!(
        server.next_event().await,
        finished("/inbound/big.bin", content.len() as u64)
    );
}

#[tokio::test]
async fn dropped_stream_discards_the_upload_and_publishes_partial() {
    bounded(async {
        let (mut client, mut server) = start().await;
        fs::write(server.root.join("inbound/roster.csv"), b"yesterday").unwrap();
        let handle = client
            .open(b"/inbound/roster.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        assert_eq!(
            client.write(&handle, 0, b"half of today").await.status().0,
            status::OK
        );
        drop(client);
        assert!(server.finished().await.is_ok());
        let event = server.next_event().await;
        assert_eq!(
            event,
            UploadEvent::Partial(UploadPartial {
                account: ACCOUNT.into(),
                path: "/inbound/roster.csv".into(),
                size: 13,
                reason: ferry_sftp::upload::ENDED_WITHOUT_CLOSE.into(),
            })
        );
        assert_eq!(
            fs::read(server.root.join("inbound/roster.csv")).unwrap(),
            b"yesterday"
        );
        assert_eq!(fs::read_dir(&server.upload_dir).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test]
async fn dropped_stream_leaves_nothing_under_a_new_final_name() {
    bounded(async {
        let (mut client, mut server) = start().await;
        let handle = client
            .open(b"/inbound/new.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        client.write(&handle, 0, b"abc").await;
        drop(client);
        let _ = server.finished().await;
        assert!(matches!(server.next_event().await, UploadEvent::Partial(_)));
        assert!(!server.root.join("inbound/new.csv").exists());
        assert_eq!(fs::read_dir(&server.upload_dir).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test]
async fn filepart_upload_then_rename_over_an_existing_file() {
    bounded(async {
        let (mut client, mut server) = start().await;
        fs::write(server.root.join("inbound/roster.csv"), b"old").unwrap();
        let (code, _) = client
            .upload(b"/inbound/roster.csv.filepart", b"new roster")
            .await;
        assert_eq!(code, status::OK);
        assert!(
            server.no_more_events(),
            "a .filepart close must not be processed"
        );

        assert_eq!(
            client
                .rename(b"/inbound/roster.csv.filepart", b"/inbound/roster.csv")
                .await
                .status()
                .0,
            status::OK
        );
        assert_eq!(
            fs::read(server.root.join("inbound/roster.csv")).unwrap(),
            b"new roster"
        );
        assert!(!server.root.join("inbound/roster.csv.filepart").exists());
        assert_eq!(
            server.next_event().await,
            finished("/inbound/roster.csv", 10)
        );

        client.upload(b"/inbound/x.part", b"v2").await;
        assert_eq!(
            client
                .posix_rename(b"/inbound/x.part", b"/inbound/roster.csv")
                .await
                .status()
                .0,
            status::OK
        );
        assert_eq!(
            fs::read(server.root.join("inbound/roster.csv")).unwrap(),
            b"v2"
        );
        assert_eq!(
            server.next_event().await,
            finished("/inbound/roster.csv", 2)
        );
    })
    .await;
}

#[tokio::test]
async fn temp_names_produce_no_event_on_close() {
    bounded(async {
        let (mut client, mut server) = start().await;
        for name in [
            &b"/inbound/a.tmp"[..],
            b"/inbound/.hidden",
            b"/inbound/b.part",
            b"/inbound/c.filepart",
        ] {
            assert_eq!(client.upload(name, b"x").await.0, status::OK);
        }
        client.upload(b"/inbound/final.csv", b"x").await;
        assert_eq!(server.next_event().await, finished("/inbound/final.csv", 1));
    })
    .await;
}

#[tokio::test]
async fn open_without_truncate_starts_from_the_existing_content() {
    bounded(async {
        let (mut client, mut server) = start().await;
        fs::write(server.root.join("inbound/resume.bin"), b"0123456789").unwrap();
        let handle = client.open(b"/inbound/resume.bin", 0x02).await.handle();
        client.write(&handle, 10, b"abc").await;
        assert_eq!(
            fs::read(server.root.join("inbound/resume.bin")).unwrap(),
            b"0123456789"
        );
        client.close(&handle).await;
        assert_eq!(
            fs::read(server.root.join("inbound/resume.bin")).unwrap(),
            b"0123456789abc"
        );
        assert_eq!(
            server.next_event().await,
            finished("/inbound/resume.bin", 13)
        );

        let handle = client
            .open(b"/inbound/resume.bin", 0x02 | 0x04)
            .await
            .handle();
        client.write(&handle, 0, b"!").await;
        client.close(&handle).await;
        assert_eq!(
            fs::read(server.root.join("inbound/resume.bin")).unwrap(),
            b"0123456789abc!"
        );

        let missing = client.open(b"/inbound/missing.bin", 0x02).await;
        assert_eq!(missing.status().0, status::NO_SUCH_FILE);
        let exclusive = client
            .open(b"/inbound/resume.bin", 0x02 | 0x08 | 0x20)
            .await;
        assert!(exclusive.status().1.contains("already exists"));
    })
    .await;
}

#[tokio::test]
async fn read_and_write_on_one_handle_and_fstat() {
    bounded(async {
        let (mut client, _server) = start().await;
        let handle = client
            .open(b"/inbound/rw.bin", 0x01 | WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        client.write(&handle, 0, b"hello world").await;
        assert_eq!(&client.read(&handle, 6, 100).await.data()[..], b"world");
        let attrs = client.call(packet::FSTAT, &client::string(&handle)).await;
        assert_eq!(attrs.size_and_mtime().0, 11);
        client.close(&handle).await;

        let handle = client.open(b"/inbound/rw.bin", READ_ONLY).await.handle();
        let (code, message) = client.write(&handle, 0, b"x").await.status();
        assert_eq!(code, status::PERMISSION_DENIED);
        assert!(message.contains("reading only"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn timestamps_are_honoured_in_inbound_and_ignored_elsewhere() {
    bounded(async {
        let (mut client, server) = start().await;
        let times = Attrs {
            times: Some((1_600_000_000, 1_500_000_000)),
            ..Attrs::default()
        };

        let handle = client
            .open(b"/inbound/t.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        client.write(&handle, 0, b"abc").await;
        let fsetstat = [client::string(&handle), client::attrs(&times)].concat();
        assert_eq!(
            client.call(packet::FSETSTAT, &fsetstat).await.status().0,
            status::OK
        );
        client.close(&handle).await;
        assert_eq!(
            fs::metadata(server.root.join("inbound/t.csv"))
                .unwrap()
                .mtime(),
            1_500_000_000
        );

        client.upload(b"/inbound/u.csv", b"abc").await;
        assert_eq!(
            client.setstat(b"/inbound/u.csv", &times).await.status().0,
            status::OK
        );
        assert_eq!(
            fs::metadata(server.root.join("inbound/u.csv"))
                .unwrap()
                .mtime(),
            1_500_000_000
        );
        let stat = client.path_request(packet::STAT, b"/inbound/u.csv").await;
        assert_eq!(stat.size_and_mtime(), (3, 1_500_000_000));

        let chmod = Attrs {
            permissions: Some(0o777),
            uid_gid: Some((0, 0)),
            ..Attrs::default()
        };
        assert_eq!(
            client.setstat(b"/inbound/u.csv", &chmod).await.status().0,
            status::OK
        );
        assert_eq!(
            fs::metadata(server.root.join("inbound/u.csv"))
                .unwrap()
                .mode()
                & 0o777,
            0o644
        );

        fs::write(server.root.join("outbound/report.txt"), b"r").unwrap();
        let before = fs::metadata(server.root.join("outbound/report.txt"))
            .unwrap()
            .mtime();
        assert_eq!(
            client
                .setstat(b"/outbound/report.txt", &times)
                .await
                .status()
                .0,
            status::OK
        );
        assert_eq!(
            fs::metadata(server.root.join("outbound/report.txt"))
                .unwrap()
                .mtime(),
            before
        );
        assert_eq!(
            client
                .setstat(b"/outbound/missing.txt", &times)
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        let handle = client
            .open(b"/outbound/report.txt", READ_ONLY)
            .await
            .handle();
        let fsetstat = [client::string(&handle), client::attrs(&times)].concat();
        assert_eq!(
            client.call(packet::FSETSTAT, &fsetstat).await.status().0,
            status::OK
        );
        assert_eq!(
            fs::metadata(server.root.join("outbound/report.txt"))
                .unwrap()
                .mtime(),
            before
        );
    })
    .await;
}

#[tokio::test]
async fn folders_in_inbound_can_be_made_used_and_removed() {
    bounded(async {
        let (mut client, mut server) = start().await;
        assert_eq!(client.mkdir(b"/inbound/2024").await.status().0, status::OK);
        assert!(
            client
                .mkdir(b"/inbound/2024")
                .await
                .status()
                .1
                .contains("already exists")
        );
        client.upload(b"/inbound/2024/a.csv", b"a").await;
        assert_eq!(
            server.next_event().await,
            finished("/inbound/2024/a.csv", 1)
        );
        let (code, message) = client
            .path_request(packet::RMDIR, b"/inbound/2024")
            .await
            .status();
        assert_eq!(code, status::FAILURE);
        assert!(message.contains("not empty"), "{message}");
        assert!(
            client
                .path_request(packet::REMOVE, b"/inbound/2024")
                .await
                .status()
                .1
                .contains("rmdir")
        );
        assert_eq!(
            client
                .path_request(packet::REMOVE, b"/inbound/2024/a.csv")
                .await
                .status()
                .0,
            status::OK
        );
        assert_eq!(
            client
                .path_request(packet::REMOVE, b"/inbound/2024/a.csv")
                .await
                .status()
                .0,
            status::NO_SUCH_FILE
        );
        assert_eq!(
            client
                .path_request(packet::RMDIR, b"/inbound/2024")
                .await
                .status()
                .0,
            status::OK
        );
        assert!(client.mkdir(b"/inbound/a/b").await.status().0 == status::NO_SUCH_FILE);
    })
    .await;
}

#[tokio::test]
async fn fsync_extension_flushes_an_open_upload() {
    bounded(async {
        let (mut client, _server) = start().await;
        let handle = client
            .open(b"/inbound/durable.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        client.write(&handle, 0, b"abc").await;
        assert_eq!(
            client
                .extended("fsync@openssh.com", &client::string(&handle))
                .await
                .status()
                .0,
            status::OK
        );
        assert_eq!(client.close(&handle).await.status().0, status::OK);
        let statvfs = client
            .extended("statvfs@openssh.com", &client::string(b"/inbound"))
            .await;
        assert_eq!(statvfs.kind, packet::EXTENDED_REPLY);
        assert_eq!(statvfs.body.len(), 88);
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_session_still_discards_its_uploads() {
    bounded(async {
        let (mut client, mut server) = start().await;
        let handle = client
            .open(b"/inbound/cut.csv", WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        client.write(&handle, 0, b"abc").await;
        server.task.abort();
        assert!(matches!(server.next_event().await, UploadEvent::Partial(p) if p.size == 3));
        assert!(!server.root.join("inbound/cut.csv").exists());
        assert_eq!(fs::read_dir(&server.upload_dir).unwrap().count(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_read_pipelined_after_a_write_sees_the_written_bytes() {
    bounded(async {
        let (mut client, _server) = start().await;
        let handle = client
            .open(b"/inbound/rw.bin", 0x01 | WRITE_CREATE_TRUNCATE)
            .await
            .handle();
        let len = 200_000u32;
        for round in 1..=20u8 {
            let data = vec![round; len as usize];
            let write = client
                .send(packet::WRITE, &write_fields(&handle, 0, &data))
                .await;
            let read_fields = [
                client::string(&handle),
                0u64.to_be_bytes().to_vec(),
                len.to_be_bytes().to_vec(),
            ];
            let read = client.send(packet::READ, &read_fields.concat()).await;
            let mut replies = [client.recv().await.unwrap(), client.recv().await.unwrap()];
            replies.sort_by_key(|r| r.id);
            assert_eq!((replies[0].id, replies[1].id), (write, read));
            assert!(
                replies[1].data().iter().all(|&b| b == round),
                "READ overtook the WRITE before it"
            );
        }
    })
    .await;
}
