//! SFTP framing and request decoding: arbitrary bytes from a client, cut into
//! reads of a fuzzer-chosen size (the first byte chooses; with its bit 2 set,
//! the first packet is inflated to the length it claims, up to the cap),
//! through `PacketReader` and `decode`.
//!
//! Properties:
//! - never a panic;
//! - no packet body over `MAX_PACKET_LEN` is ever handed out, and reading and
//!   decoding never make an allocation larger than one packet at the cap plus
//!   the reader's 32 KiB read-ahead ([`ALLOCATION_CAP`]), whatever length a
//!   client claims or however the bytes trickle in;
//! - every request that decodes, encoded again by the test client's encoder
//!   (`ferry_fuzz::sftp_wire`), decodes to the same request with the same id;
//! - the framing is exact: the packets handed out plus their length fields
//!   account for every byte read before the reader stops.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use ferry_fuzz::alloc_meter::{Meter, measure};
use ferry_fuzz::block_on_ready;
use ferry_fuzz::sftp_wire::{encode_init, encode_request};
use ferry_sftp::protocol::codec::{
    DecodeError, Incoming, MAX_PACKET_LEN, PacketError, PacketReader, Request, decode,
};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

#[global_allocator]
static ALLOCATOR: Meter = Meter;

/// The largest allocation reading and decoding may make: a framing buffer
/// holding one packet at the cap (and its length) plus the 32 KiB the reader
/// reads ahead.
const ALLOCATION_CAP: usize = MAX_PACKET_LEN + 4 + 32 * 1024;

/// Hands out the input in reads of at most `step` bytes, as a network does.
struct Chunked<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.step.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, stream)) = input.split_first() else {
        return;
    };
    let step = match selector % 4 {
        0 => 1,
        1 => 7,
        2 => 4096,
        _ => usize::MAX,
    };
    let inflated;
    let stream = match selector & 4 {
        0 => stream,
        _ => {
            inflated = inflate(stream);
            &inflated[..]
        }
    };
    let (bodies, usage) = measure(|| read_all(stream, step));
    // The bodies handed out are kept (as WRITE data in flight is); beyond
    // them, the reader holds at most its buffer and, while it moves to a
    // bigger one, the old one.
    assert!(
        usage.largest <= ALLOCATION_CAP && usage.peak_live <= stream.len() + 2 * ALLOCATION_CAP,
        "reading {} bytes allocated {usage:?} (largest allowed {ALLOCATION_CAP})",
        stream.len()
    );
    let mut framed = 0;
    for body in &bodies {
        assert!(!body.is_empty() && body.len() <= MAX_PACKET_LEN);
        assert_eq!(&stream[framed + 4..framed + 4 + body.len()], &body[..]);
        framed += 4 + body.len();
        check_round_trip(body.clone());
    }
});

/// Inputs are small (libFuzzer's 4 KiB), packets go up to 256 KiB: the first
/// packet's body is repeated up to the length its header claims (when that
/// is within the cap), then the rest of the input follows.
fn inflate(stream: &[u8]) -> Vec<u8> {
    let Some((head, rest)) = stream.split_first_chunk::<4>() else {
        return stream.to_vec();
    };
    let claimed = u32::from_be_bytes(*head) as usize;
    if claimed > MAX_PACKET_LEN || rest.is_empty() || rest.len() >= claimed {
        return stream.to_vec();
    }
    let mut out = head.to_vec();
    out.extend(rest.iter().cycle().take(claimed));
    out.extend_from_slice(rest);
    out
}

/// Every packet the reader hands out, until the stream ends or is refused.
fn read_all(stream: &[u8], step: usize) -> Vec<Bytes> {
    let mut reader = PacketReader::new(Chunked { data: stream, step });
    let mut bodies = Vec::new();
    block_on_ready(async {
        loop {
            match reader.next_packet().await {
                Ok(Some(body)) => {
                    let _ = decode(body.clone());
                    bodies.push(body);
                }
                Ok(None) => break,
                Err(PacketError::Invalid(
                    DecodeError::TooLong(_) | DecodeError::TooShort(0) | DecodeError::Truncated,
                )) => break,
                Err(other) => panic!("unexpected framing error {other:?}"),
            }
        }
    });
    bodies
}

fn check_round_trip(body: Bytes) {
    let Ok(incoming) = decode(body) else { return };
    let packet = match &incoming {
        Incoming::Init { version } => encode_init(*version),
        Incoming::Request { id, request } => match encode_request(*id, request) {
            Some(packet) => packet,
            None => {
                assert!(matches!(request, Request::Unsupported { .. }));
                return;
            }
        },
    };
    let again = decode(packet.slice(4..)).expect("an encoded request decodes");
    assert_eq!(again, incoming, "encode then decode changed the request");
}
