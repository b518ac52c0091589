//! Hostile or broken input on the wire: the server answers or closes cleanly,
//! logs one line, and never lets a packet desynchronise the stream.

mod protocol_client;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_sftp::protocol::codec::{MAX_PACKET_LEN, client, packet, status};
use ferry_sftp::protocol::{ProtocolError, READ_AHEAD_BYTES};
use protocol_client::*;

/// Counts WARN and ERROR events on this thread (the tests run on a
/// current-thread runtime, where `serve` logs).
struct CountWarnings(Arc<AtomicUsize>);

impl tracing::Subscriber for CountWarnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() <= tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn count_warnings() -> (Arc<AtomicUsize>, tracing::subscriber::DefaultGuard) {
    let count = Arc::new(AtomicUsize::new(0));
    let guard = tracing::subscriber::set_default(CountWarnings(count.clone()));
    (count, guard)
}

#[tokio::test]
async fn request_before_init_closes_the_session_with_one_warning() {
    let (warnings, _guard) = count_warnings();
    bounded(async {
        let (mut client, mut server) = start_without_init().await;
        client.send(packet::OPENDIR, &client::string(b"/")).await;
        assert!(
            client.closed_by_server().await,
            "the server answered a request sent before INIT"
        );
        assert!(matches!(
            server.finished().await,
            Err(ProtocolError::NotInitialized(packet::OPENDIR))
        ));
    })
    .await;
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn version_announces_the_extensions() {
    bounded(async {
        let (mut client, _server) = start_without_init().await;
        client
            .send_raw(&[0, 0, 0, 5, packet::INIT, 0, 0, 0, 6])
            .await;
        let version = client.recv().await.unwrap();
        assert_eq!(version.kind, packet::VERSION);
        assert_eq!(&version.body[..4], &3u32.to_be_bytes());
        let text = String::from_utf8_lossy(&version.body);
        for extension in [
            "posix-rename@openssh.com",
            "limits@openssh.com",
            "fsync@openssh.com",
            "statvfs@openssh.com",
        ] {
            assert!(text.contains(extension), "{extension} not announced");
        }
        assert!(!text.contains("hardlink"));
    })
    .await;
}

#[tokio::test]
async fn oversized_length_closes_the_channel_with_one_warning() {
    let (warnings, _guard) = count_warnings();
    bounded(async {
        let (mut client, mut server) = start().await;
        client.send_raw(&[0xff, 0xff, 0xff, 0xff]).await;
        client.send_raw(&[0x41; 65]).await;
        assert!(client.closed_by_server().await);
        assert!(matches!(
            server.finished().await,
            Err(ProtocolError::InvalidPacket(_))
        ));
    })
    .await;
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_300_kb_write_is_refused_as_one_packet_not_parsed_in_pieces() {
    let (warnings, _guard) = count_warnings();
    bounded(async {
        let (mut client, mut server) = start().await;
        let write = client::request(
            packet::WRITE,
            7,
            &write_fields(b"\0\0\0\0", 0, &vec![7u8; 300_000]),
        );
        assert!(write.len() > MAX_PACKET_LEN);
        let _ = tokio::io::AsyncWriteExt::write_all(&mut client.stream, &write).await;
        assert!(client.closed_by_server().await);
        assert!(server.finished().await.is_err());
    })
    .await;
    assert_eq!(warnings.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn truncated_packet_then_end_of_stream_ends_the_session() {
    bounded(async {
        let (mut client, mut server) = start().await;
        let stat = client::request(packet::STAT, 5, &client::string(b"/inbound"));
        client.send_raw(&stat[..stat.len() - 3]).await;
        tokio::io::AsyncWriteExt::shutdown(&mut client.stream)
            .await
            .unwrap();
        assert!(client.closed_by_server().await);
        assert!(matches!(
            server.finished().await,
            Err(ProtocolError::InvalidPacket(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn field_longer_than_its_packet_closes_the_channel() {
    bounded(async {
        let (mut client, mut server) = start().await;
        client
            .send(packet::STAT, &0x7fff_ffffu32.to_be_bytes())
            .await;
        assert!(client.closed_by_server().await);
        assert!(matches!(
            server.finished().await,
            Err(ProtocolError::InvalidPacket(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn zero_length_packet_closes_the_channel() {
    bounded(async {
        let (mut client, mut server) = start().await;
        client.send_raw(&[0, 0, 0, 0]).await;
        assert!(client.closed_by_server().await);
        assert!(server.finished().await.is_err());
    })
    .await;
}

#[tokio::test]
async fn second_init_closes_the_channel() {
    bounded(async {
        let (mut client, mut server) = start().await;
        client
            .send_raw(&[0, 0, 0, 5, packet::INIT, 0, 0, 0, 3])
            .await;
        assert!(client.closed_by_server().await);
        assert!(matches!(
            server.finished().await,
            Err(ProtocolError::RepeatedInit)
        ));
    })
    .await;
}

#[tokio::test]
async fn read_of_0xffffffff_bytes_is_capped_below_256_kib() {
    bounded(async {
        let (mut client, server) = start().await;
        std::fs::write(server.root.join("outbound/big.bin"), vec![9u8; 1 << 20]).unwrap();
        let handle = client.open(b"/outbound/big.bin", READ_ONLY).await.handle();
        let id = client
            .send(
                packet::READ,
                &[
                    client::string(&handle),
                    0u64.to_be_bytes().to_vec(),
                    u32::MAX.to_be_bytes().to_vec(),
                ]
                .concat(),
            )
            .await;
        let reply = client.recv().await.unwrap();
        assert_eq!(reply.id, id);
        let data = reply.data();
        assert!(!data.is_empty());
        assert!(
            4 + 1 + reply.body.len() + 4 <= MAX_PACKET_LEN,
            "reply of {} bytes",
            reply.body.len()
        );
        assert!(data.iter().all(|&b| b == 9));
        let end = client.read(&handle, 1 << 20, 100).await;
        assert_eq!(end.status().0, status::EOF);
    })
    .await;
}

#[tokio::test]
async fn unknown_request_type_answers_op_unsupported_with_its_id_and_the_session_goes_on() {
    bounded(async {
        let (mut client, _server) = start().await;
        let reply = client.call(99, b"some payload").await;
        let (code, message) = reply.status();
        assert_eq!(code, status::OP_UNSUPPORTED);
        assert!(message.contains("99"), "{message}");
        let reply = client.extended("frobnicate@example.com", b"").await;
        assert_eq!(reply.status().0, status::OP_UNSUPPORTED);
        let reply = client.path_request(packet::STAT, b"/inbound").await;
        assert_eq!(reply.kind, packet::ATTRS);
    })
    .await;
}

#[tokio::test]
async fn every_reply_carries_its_own_request_id() {
    bounded(async {
        let (mut client, _server) = start().await;
        let mut ids = Vec::new();
        for path in [
            &b"/"[..],
            b"/inbound",
            b"/missing",
            b"/outbound",
            b"/nope/nope",
        ] {
            ids.push(client.send(packet::STAT, &client::string(path)).await);
        }
        ids.push(client.send(77, b"").await);
        ids.push(client.send(packet::REALPATH, &client::string(b".")).await);
        let mut seen = Vec::new();
        for _ in 0..ids.len() {
            seen.push(client.recv().await.unwrap().id);
        }
        seen.sort();
        assert_eq!(seen, ids);
    })
    .await;
}

#[tokio::test]
async fn limits_extension_reports_the_caps() {
    bounded(async {
        let (mut client, _server) = start().await;
        let reply = client.extended("limits@openssh.com", b"").await;
        assert_eq!(reply.kind, packet::EXTENDED_REPLY);
        let values: Vec<u64> = reply
            .body
            .chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values[..3], [262_144, 261_120, 261_120]);
        assert!(values[3] >= 64);
    })
    .await;
}

#[tokio::test]
async fn invalid_handles_are_refused_with_a_message() {
    bounded(async {
        let (mut client, _server) = start().await;
        for handle in [&b""[..], b"\0\0\0\x09", b"way too long a handle"] {
            let (code, message) = client.read(handle, 0, 10).await.status();
            assert_eq!(code, status::FAILURE);
            assert!(message.contains("invalid handle"), "{message}");
        }
        let (code, _) = client.close(b"\0\0\0\x09").await.status();
        assert_eq!(code, status::FAILURE);
    })
    .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_replies_stops_being_read() {
    bounded(async {
        let (mut client, server) = start().await;
        std::fs::write(server.root.join("outbound/small.bin"), vec![1u8; 16]).unwrap();
        let handle = client
            .open(b"/outbound/small.bin", READ_ONLY)
            .await
            .handle();
        let read = |id: u32| {
            let fields = [
                client::string(&handle),
                0u64.to_be_bytes().to_vec(),
                u32::MAX.to_be_bytes().to_vec(),
            ];
            client::request(packet::READ, id, &fields.concat())
        };
        let mut sent = 0u32;
        loop {
            let packet = read(sent);
            let write = tokio::io::AsyncWriteExt::write_all(&mut client.stream, &packet);
            match tokio::time::timeout(std::time::Duration::from_millis(300), write).await {
                Ok(result) => result.unwrap(),
                Err(_) => break,
            }
            sent += 1;
            // Requests are read ahead of the pipeline (so window adjustments
            // keep flowing), but only up to READ_AHEAD_BYTES.
            assert!(
                sent as usize * packet.len() < 2 * READ_AHEAD_BYTES,
                "the server kept reading requests it could not answer"
            );
        }
        for _ in 0..sent {
            let reply = client.recv().await.expect("a request went unanswered");
            assert_eq!(reply.data().len(), 16);
        }
    })
    .await;
}
