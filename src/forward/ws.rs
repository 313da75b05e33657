//! A minimal client side of RFC 6455 framing for the API server's `v4.channel.k8s.io`
//! port-forward protocol, on the raw upgraded connection kube's `Client::connect` hands back.
//! It writes large masked frames straight from the read buffer and streams received payloads
//! without reassembling messages. It knows nothing about pods, listeners or retries.

use std::hash::{BuildHasher, Hasher};
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame header a client writes: 2 bytes, 8 bytes of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
/// Control frames carry at most 125 bytes (RFC 6455 5.5).
const MAX_CONTROL: usize = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Room a caller leaves before the payload in a buffer given to [`FrameWriter::send_in_place`]:
/// the largest header and the channel byte.
pub(super) const HEADROOM: usize = MAX_HEADER + 1;

/// Writes binary messages, each one frame, with the channel byte first.
pub(super) struct FrameWriter<W> {
    io: W,
    mask: MaskKeys,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(super) fn new(io: W) -> Self {
        Self { io, mask: MaskKeys::new() }
    }

    /// Sends `frame[HEADROOM..HEADROOM + n]` as one message on `channel`, in one write: the
    /// header and channel byte go into the headroom and the payload is masked in place, so the
    /// bytes read from the local socket are never copied.
    pub(super) async fn send_in_place(
        &mut self,
        frame: &mut [u8],
        channel: u8,
        n: usize,
    ) -> io::Result<()> {
        let body_start = MAX_HEADER;
        let body_end = HEADROOM + n;
        frame[body_start] = channel;
        let key = self.mask.next_key();
        let header = encode_header(OP_BINARY, body_end - body_start, key);
        let start = body_start - header.len();
        frame[start..body_start].copy_from_slice(&header);
        apply_mask(&mut frame[body_start..body_end], key, 0);
        self.io.write_all(&frame[start..body_end]).await?;
        // Over TLS the record may sit in the session buffer until flushed.
        self.io.flush().await
    }

    /// Sends `data` on `channel`, in messages of at most `max_payload` bytes (copies it).
    pub(super) async fn send(
        &mut self,
        channel: u8,
        data: &[u8],
        max_payload: usize,
    ) -> io::Result<()> {
        let mut frame = vec![0u8; HEADROOM + max_payload.min(data.len())];
        for chunk in data.chunks(max_payload.max(1)) {
            frame[HEADROOM..HEADROOM + chunk.len()].copy_from_slice(chunk);
            self.send_in_place(&mut frame, channel, chunk.len()).await?;
        }
        Ok(())
    }

    pub(super) async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.control(OP_PONG, payload).await
    }

    /// Starts the close handshake (normal closure).
    pub(super) async fn close(&mut self) -> io::Result<()> {
        self.control(OP_CLOSE, &1000u16.to_be_bytes()).await
    }

    async fn control(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let payload = &payload[..payload.len().min(MAX_CONTROL)];
        let key = self.mask.next_key();
        let mut frame = encode_header(opcode, payload.len(), key);
        let start = frame.len();
        frame.extend_from_slice(payload);
        apply_mask(&mut frame[start..], key, 0);
        self.io.write_all(&frame).await?;
        self.io.flush().await
    }
}

fn encode_header(opcode: u8, len: usize, key: [u8; 4]) -> Vec<u8> {
    let mut h = Vec::with_capacity(MAX_HEADER);
    h.push(0x80 | opcode);
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xFFFF => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    h.extend_from_slice(&key);
    h
}

/// XORs `data` with the mask `key`, starting at byte `offset` of the frame's payload.
pub(super) fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Mask keys from a small xorshift generator seeded by the standard library's per-process
/// random hasher keys. Masking only defeats proxy cache poisoning; it is not a secret.
struct MaskKeys(u64);

impl MaskKeys {
    fn new() -> Self {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Self(seed | 1)
    }

    fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        let bytes = x.to_le_bytes();
        [bytes[0], bytes[1], bytes[2], bytes[3]]
    }
}

/// What the server sent, as it arrives. Data is streamed: one message may come as many events.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event<'a> {
    Data {
        channel: u8,
        data: &'a [u8],
    },
    Ping(Vec<u8>),
    /// A close frame, or the connection ended cleanly between frames.
    Closed,
}

/// Reads frames and yields their payloads without copying them out of its buffer.
pub(super) struct FrameReader<R> {
    io: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Payload bytes of the current frame not yet handed out.
    remaining: u64,
    frame_opcode: u8,
    frame_fin: bool,
    frame_mask: Option<[u8; 4]>,
    frame_offset: usize,
    /// Channel of the data message in progress; `None` until its first payload byte.
    channel: Option<u8>,
    in_message: bool,
    control: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(super) fn new(io: R, buffer: usize) -> Self {
        Self {
            io,
            buf: vec![0; buffer.max(MAX_HEADER * 2)],
            start: 0,
            end: 0,
            remaining: 0,
            frame_opcode: 0,
            frame_fin: true,
            frame_mask: None,
            frame_offset: 0,
            channel: None,
            in_message: false,
            control: Vec::new(),
        }
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }

    pub(super) async fn next(&mut self) -> io::Result<Event<'_>> {
        loop {
            if self.remaining == 0 && !self.is_control() {
                if self.frame_fin && self.in_message && self.frame_opcode != u8::MAX {
                    self.in_message = false;
                    self.channel = None;
                }
                if !self.read_header().await? {
                    return Ok(Event::Closed);
                }
                if self.is_control() && self.remaining == 0 {
                    if let Some(event) = self.finish_control() {
                        return Ok(event);
                    }
                    continue;
                }
                continue;
            }
            if self.start == self.end && !self.fill().await? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "frame cut short"));
            }
            let avail = (self.end - self.start) as u64;
            let take = avail.min(self.remaining) as usize;
            let (a, b) = (self.start, self.start + take);
            if let Some(key) = self.frame_mask {
                apply_mask(&mut self.buf[a..b], key, self.frame_offset);
            }
            self.start = b;
            self.remaining -= take as u64;
            self.frame_offset += take;
            if self.is_control() {
                self.control.extend_from_slice(&self.buf[a..b]);
                if self.remaining == 0
                    && let Some(event) = self.finish_control()
                {
                    return Ok(event);
                }
                continue;
            }
            let mut a = a;
            let channel = match self.channel {
                Some(c) => c,
                None => {
                    let c = self.buf[a];
                    a += 1;
                    self.channel = Some(c);
                    c
                }
            };
            if a < b {
                return Ok(Event::Data { channel, data: &self.buf[a..b] });
            }
        }
    }

    fn is_control(&self) -> bool {
        self.frame_opcode >= OP_CLOSE && self.frame_opcode != u8::MAX
    }

    /// Handles a complete control frame; `None` for one the caller need not see (pong).
    fn finish_control(&mut self) -> Option<Event<'static>> {
        let opcode = self.frame_opcode;
        // Mark the control frame consumed so the next call reads a header.
        self.frame_opcode = u8::MAX;
        let payload = std::mem::take(&mut self.control);
        match opcode {
            OP_CLOSE => Some(Event::Closed),
            OP_PING => Some(Event::Ping(payload)),
            _ => None,
        }
    }

    /// Parses the next frame header; `Ok(false)` when the stream ended cleanly before one.
    async fn read_header(&mut self) -> io::Result<bool> {
        while self.end - self.start < 2 {
            if !self.fill().await? {
                if self.end == self.start {
                    return Ok(false);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "frame header cut short"));
            }
        }
        let b0 = self.buf[self.start];
        let b1 = self.buf[self.start + 1];
        let masked = b1 & 0x80 != 0;
        let len_code = b1 & 0x7F;
        let len_bytes = match len_code {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        while self.end - self.start < header_len {
            if !self.fill().await? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "frame header cut short"));
            }
        }
        let h = &self.buf[self.start..self.start + header_len];
        let len = match len_code {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        self.frame_mask = masked.then(|| {
            let m = &h[2 + len_bytes..header_len];
            [m[0], m[1], m[2], m[3]]
        });
        self.start += header_len;
        let opcode = b0 & 0x0F;
        self.frame_fin = b0 & 0x80 != 0;
        self.frame_offset = 0;
        self.remaining = len;
        match opcode {
            OP_TEXT | OP_BINARY => {
                if self.in_message {
                    return Err(protocol_error("new message inside a fragmented one"));
                }
                self.in_message = true;
                self.channel = None;
            }
            OP_CONTINUATION => {
                if !self.in_message {
                    return Err(protocol_error("continuation frame without a message"));
                }
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if len > MAX_CONTROL as u64 || !self.frame_fin {
                    return Err(protocol_error("oversized or fragmented control frame"));
                }
                self.control.clear();
            }
            _ => return Err(protocol_error("unknown opcode")),
        }
        // A control frame does not end the data message it interrupts.
        self.frame_opcode = if opcode == OP_CONTINUATION { OP_BINARY } else { opcode };
        Ok(true)
    }
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("websocket protocol error: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n @ 126..=0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    async fn collect(bytes: Vec<u8>, buffer: usize) -> (Vec<(u8, Vec<u8>)>, usize) {
        let mut reader = FrameReader::new(&bytes[..], buffer);
        let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut pings = 0;
        loop {
            match reader.next().await.unwrap() {
                Event::Data { channel, data } => match out.last_mut() {
                    Some((c, d)) if *c == channel => d.extend_from_slice(data),
                    _ => out.push((channel, data.to_vec())),
                },
                Event::Ping(_) => pings += 1,
                Event::Closed => return (out, pings),
            }
        }
    }

    #[tokio::test]
    async fn reads_messages_across_small_buffers_and_fragments() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = server_frame(true, OP_BINARY, &[0, 0x20, 0xFB]);
        wire.extend(server_frame(true, OP_BINARY, &[1, 0x20, 0xFB]));
        let mut msg = vec![0u8];
        msg.extend_from_slice(&big);
        wire.extend(server_frame(false, OP_BINARY, &msg[..1000]));
        wire.extend(server_frame(true, OP_PING, b"hi"));
        wire.extend(server_frame(true, OP_CONTINUATION, &msg[1000..]));
        wire.extend(server_frame(true, OP_BINARY, b"\x01oops"));
        wire.extend(server_frame(true, OP_CLOSE, &1000u16.to_be_bytes()));
        for buffer in [28, 100, 4096, 1 << 20] {
            let (out, pings) = collect(wire.clone(), buffer).await;
            assert_eq!(pings, 1);
            assert_eq!(out.len(), 4, "buffer {buffer}");
            assert_eq!(out[0], (0, vec![0x20, 0xFB]));
            assert_eq!(out[1], (1, vec![0x20, 0xFB]));
            assert_eq!(out[2], (0, big.clone()));
            assert_eq!(out[3], (1, b"oops".to_vec()));
        }
    }

    #[tokio::test]
    async fn channel_byte_is_taken_once_per_message() {
        let mut wire = server_frame(true, OP_BINARY, &[0, 1, 2]);
        wire.extend(server_frame(true, OP_BINARY, &[0, 3]));
        let mut reader = FrameReader::new(&wire[..], 64);
        let mut got = Vec::new();
        while let Event::Data { channel, data } = reader.next().await.unwrap() {
            got.push((channel, data.to_vec()));
        }
        assert_eq!(got, vec![(0, vec![1, 2]), (0, vec![3])]);
    }

    #[tokio::test]
    async fn clean_end_of_stream_is_closed_and_cut_frame_is_error() {
        let wire = server_frame(true, OP_BINARY, &[0, 1, 2, 3]);
        let mut reader = FrameReader::new(&wire[..wire.len() - 1], 64);
        assert!(matches!(reader.next().await, Ok(Event::Data { .. })));
        assert!(reader.next().await.is_err());
        let mut reader = FrameReader::new(&[][..], 64);
        assert_eq!(reader.next().await.unwrap(), Event::Closed);
    }

    #[tokio::test]
    async fn writer_frames_are_masked_and_readable() {
        let mut wire = Vec::new();
        {
            let mut w = FrameWriter::new(&mut wire);
            w.send(0, &[7u8; 3], 100_000).await.unwrap();
            w.send(0, &vec![9u8; 300], 100_000).await.unwrap();
            w.send(0, &vec![5u8; 70_000], 100_000).await.unwrap();
            w.pong(b"x").await.unwrap();
        }
        // Masked frames: the reader unmasks them as a server would.
        let (out, _) = collect(wire.clone(), 512).await;
        let data = &out[0];
        assert_eq!(data.0, 0);
        assert_eq!(data.1.len(), 3 + 300 + 70_000);
        assert!(data.1[..3].iter().all(|b| *b == 7));
        assert!(data.1[3..303].iter().all(|b| *b == 9));
        assert!(data.1[303..].iter().all(|b| *b == 5));
        assert_eq!(wire[0], 0x82);
        assert_eq!(wire[1], 0x80 | 4);
    }

    #[test]
    fn mask_matches_bytewise_definition_at_any_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for offset in 0..4 {
            let mut data: Vec<u8> = (0..37).collect();
            apply_mask(&mut data, key, offset);
            for (i, b) in data.iter().enumerate() {
                assert_eq!(*b, (i as u8) ^ key[(i + offset) % 4]);
            }
        }
    }
}
