//! libpcap capture files: a writer, so Wireshark / tcpdump / tshark can show what crossed the
//! device (`tunstack serve --pcap FILE`), and a reader ([`PcapReader`]) of any IPv4 capture,
//! so `tunstack diagram` can draw what a capture holds.
//!
//! The classic format (<https://wiki.wireshark.org/Development/LibpcapFileFormat>): one
//! 24-byte global header, then per packet a 16-byte record header and the bytes. We write
//! every field little-endian; readers recognise the byte order from the magic number.
//!
//! ```text
//! global header: magic a1b2c3d4 | major 2 | minor 4 | thiszone 0 | sigfigs 0
//!                | snaplen 65535 | linktype 101 (LINKTYPE_RAW: bare IPv4/IPv6, as on a TUN)
//! record header: ts_sec | ts_usec | incl_len (bytes stored) | orig_len (bytes on the wire)
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::offload::{Offloads, RxMeta, TxMeta};
use super::{gso, Device, Medium};
use crate::time::Instant;

/// Magic number of a microsecond-resolution pcap file.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// Largest number of bytes stored per packet.
pub const SNAPLEN: u32 = 65_535;
/// Link type for packets that start directly with an IP header (no link-layer header).
pub const LINKTYPE_RAW: u32 = 101;

/// Writes packets to a pcap stream. Nothing is written after an I/O error is returned,
/// but the writer stays usable (a full disk must not kill the stack).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (truncates) the file at `path` and writes the global header.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create pcap file {}: {e}", path.display()),
            )
        })?;
        PcapWriter::new(BufWriter::new(file))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Wraps `out` and writes the global header (magic 0xa1b2c3d4, version 2.4, snaplen
    /// 65535, LINKTYPE_RAW).
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_linktype(out, LINKTYPE_RAW)
    }

    /// Like [`PcapWriter::new`] with another link type, e.g. [`LINKTYPE_ETHERNET`] for the
    /// frames of a TAP device.
    pub fn with_linktype(mut out: W, linktype: u32) -> io::Result<Self> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone: timestamps are UTC
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs: always 0 in practice
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        header.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out })
    }

    /// Appends one packet captured at `ts`. Packets longer than [`SNAPLEN`] are cut to it
    /// (the record keeps the original length). Times before 1970 are recorded as 0, and
    /// seconds saturate at the u32 limit (year 2106).
    pub fn write_packet(&mut self, ts: SystemTime, pkt: &[u8]) -> io::Result<()> {
        let since_epoch = ts.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX);
        let micros = since_epoch.subsec_micros();
        let stored = pkt.get(..SNAPLEN as usize).unwrap_or(pkt);
        let incl_len = u32::try_from(stored.len()).unwrap_or(SNAPLEN);
        let orig_len = u32::try_from(pkt.len()).unwrap_or(u32::MAX);
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&secs.to_le_bytes());
        record[4..8].copy_from_slice(&micros.to_le_bytes());
        record[8..12].copy_from_slice(&incl_len.to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(stored)
    }

    /// Flushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Returns the underlying writer (not flushed: call [`PcapWriter::flush`] first if it
    /// buffers).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// A reference to the underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

/// One capture file shared by several devices (the queues of a multi-queue TUN): each
/// record is written whole under the lock, so records of different queues never mix.
pub type SharedPcap<W> = Arc<Mutex<PcapWriter<W>>>;

/// Middleware: a [`Device`] that records every packet received from and sent to the wrapped
/// device into a pcap stream (as smoltcp's `phy::PcapWriter` device does), timestamped with
/// the wall clock, and flushed after each packet so that the file can be read while the
/// stack runs. Capture write errors are logged once, counted, and do not disturb traffic.
///
/// **It keeps offloads.** A capture only looks: the device below keeps whatever offloads it
/// accepted, and a super-segment is recorded as the MSS-sized segments it stands for, with
/// complete checksums ([`gso::wire_view`]) — what a capture on an ordinary wire shows, the
/// same with offloads on or off.
///
/// Where it sits in a chain decides what it sees: outside a fault injector
/// (`PcapDevice<FaultDevice<D>>`) it records what the stack sends and receives; inside
/// (`FaultDevice<PcapDevice<D>>`, what `serve` builds) it records the wire, with the losses
/// missing and the corruptions in place.
#[derive(Debug)]
pub struct PcapDevice<D, W: Write> {
    inner: D,
    writer: SharedPcap<W>,
    write_errors: u64,
}

impl<D: Device, W: Write + Send> PcapDevice<D, W> {
    /// Wraps `inner`, capturing into `writer`.
    pub fn new(inner: D, writer: PcapWriter<W>) -> Self {
        Self::shared(inner, Arc::new(Mutex::new(writer)))
    }

    /// Wraps `inner`, capturing into a writer other devices may share.
    pub fn shared(inner: D, writer: SharedPcap<W>) -> Self {
        PcapDevice {
            inner,
            writer,
            write_errors: 0,
        }
    }

    /// How many packets could not be written to the capture.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Returns the wrapped device and the capture writer.
    pub fn into_parts(self) -> (D, SharedPcap<W>) {
        (self.inner, self.writer)
    }

    /// Records one packet as the wire carries it (`gso_size`, `csum`: its offload metadata).
    fn record(&mut self, packet: &[u8], gso_size: u16, csum: bool) {
        let now = SystemTime::now();
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut result = Ok(());
        gso::wire_view(self.inner.medium(), packet, gso_size, csum, &mut |p| {
            if result.is_ok() {
                result = writer.write_packet(now, p);
            }
        });
        if let Err(e) = result.and_then(|()| writer.flush()) {
            // Warn once; a full disk must not flood the log or stop the stack.
            if self.write_errors == 0 {
                log::warn!("pcap capture failed, further errors are only counted: {e}");
            }
            self.write_errors = self.write_errors.saturating_add(1);
        }
    }
}

impl<D: Device, W: Write + Send> Device for PcapDevice<D, W> {
    fn recv(&mut self, buf: &mut [u8], now: Instant) -> io::Result<Option<(usize, RxMeta)>> {
        let got = self.inner.recv(buf, now)?;
        if let Some((n, meta)) = got {
            self.record(
                buf.get(..n).unwrap_or_default(),
                meta.gso_size,
                meta.csum_trusted,
            );
        }
        Ok(got)
    }

    fn send(&mut self, packet: &[u8], meta: TxMeta, now: Instant) -> io::Result<()> {
        self.inner.send(packet, meta, now)?;
        // Recorded only once the device took it, like a capture on the interface.
        self.record(packet, meta.gso_size, meta.csum_partial);
        Ok(())
    }

    // send_gather: the default joins the pieces, as the capture needs the packet whole.

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.raw_fd()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn offloads(&self) -> Offloads {
        self.inner.offloads()
    }

    fn medium(&self) -> Medium {
        self.inner.medium()
    }

    fn recv_buf_len(&self) -> usize {
        self.inner.recv_buf_len()
    }

    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }

    fn release(&mut self, now: Instant) -> io::Result<()> {
        self.inner.release(now)
    }

    fn fault_stats(&self) -> Option<super::fault::FaultStats> {
        self.inner.fault_stats()
    }
}

/// Magic number of a nanosecond-resolution pcap file (same layout, `ts_usec` holds ns).
pub const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Link type: Ethernet II frames (14-byte header, optionally 802.1Q-tagged).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Link type: Linux "cooked" capture v1 (16-byte header; `tcpdump -i any`).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Link type: bare IPv4 packets.
pub const LINKTYPE_IPV4: u32 = 228;
/// Link type: Linux "cooked" capture v2 (20-byte header).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Largest record we accept. Real captures stay far below; a bigger length means a
/// corrupt file, and refusing it keeps a bad header from making us allocate gigabytes.
const MAX_RECORD: u32 = 256 * 1024;

/// Why a capture file cannot be read (or stops being readable part-way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcapError {
    /// Fewer than 24 bytes: not even a global header.
    TooShort,
    /// A pcapng file (`tshark -F pcap` or `editcap -F pcap` converts it).
    Pcapng,
    /// The first four bytes are not a pcap magic number.
    BadMagic(u32),
    /// A link type we cannot strip to an IPv4 packet.
    UnsupportedLinkType(u32),
    /// A record header or its data runs past the end of the file (a capture cut short,
    /// e.g. the writer was killed).
    Truncated {
        /// Index of the incomplete record.
        record: usize,
    },
    /// A record claims an impossible length.
    BadRecordLength {
        /// Index of the record.
        record: usize,
        /// The `incl_len` field.
        len: u32,
    },
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::TooShort => write!(f, "not a pcap file: shorter than its 24-byte header"),
            PcapError::Pcapng => write!(
                f,
                "a pcapng file; convert it first: tshark -r IN -F pcap -w OUT.pcap"
            ),
            PcapError::BadMagic(m) => write!(f, "not a pcap file: magic {m:#010x}"),
            PcapError::UnsupportedLinkType(t) => write!(
                f,
                "link type {t} is not supported (raw IP 101/228, Ethernet 1, Linux SLL 113/276)"
            ),
            PcapError::Truncated { record } => {
                write!(f, "capture cut short in record {record}")
            }
            PcapError::BadRecordLength { record, len } => {
                write!(f, "record {record} claims an impossible length {len}")
            }
        }
    }
}

impl std::error::Error for PcapError {}

/// One packet read from a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapPacket<'a> {
    /// Capture time since the Unix epoch (as recorded; `thiszone` is ignored, it is 0 in
    /// practice).
    pub ts: Duration,
    /// The link-layer payload when it is an IPv4 packet (the link header stripped), or
    /// `None` for anything else (IPv6, ARP, ...).
    pub ipv4: Option<&'a [u8]>,
    /// The link-layer payload when it is an IPv4 or IPv6 packet, or `None` (ARP, ...).
    pub ip: Option<&'a [u8]>,
    /// The record's bytes as stored (possibly cut to the snap length).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub orig_len: u32,
}

/// Reads a classic libpcap file held in memory: either byte order, microsecond or
/// nanosecond timestamps, and the link types a Linux capture of IPv4 traffic uses.
///
/// Never panics on any input: every field is read with checked slicing, and a broken
/// record ends the iteration with an error after the good records before it.
#[derive(Clone, Debug)]
pub struct PcapReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
    nanos: bool,
    linktype: u32,
    record: usize,
    failed: bool,
}

impl<'a> PcapReader<'a> {
    /// Checks the global header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, PcapError> {
        let magic_bytes: [u8; 4] = bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(PcapError::TooShort)?;
        if u32::from_le_bytes(magic_bytes) == 0x0a0d_0d0a {
            return Err(PcapError::Pcapng);
        }
        let (big_endian, nanos) = match (
            u32::from_le_bytes(magic_bytes),
            u32::from_be_bytes(magic_bytes),
        ) {
            (MAGIC, _) => (false, false),
            (MAGIC_NANOS, _) => (false, true),
            (_, MAGIC) => (true, false),
            (_, MAGIC_NANOS) => (true, true),
            (m, _) => return Err(PcapError::BadMagic(m)),
        };
        if bytes.len() < 24 {
            return Err(PcapError::TooShort);
        }
        let mut reader = PcapReader {
            bytes,
            pos: 24,
            big_endian,
            nanos,
            linktype: 0,
            record: 0,
            failed: false,
        };
        // The link type's upper bits carry an FCS length flag (pcap-linktype(7)).
        let linktype = reader.u32_at(20).unwrap_or(0) & 0x0fff_ffff;
        match linktype {
            LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_ETHERNET | LINKTYPE_LINUX_SLL
            | LINKTYPE_LINUX_SLL2 => {}
            other => return Err(PcapError::UnsupportedLinkType(other)),
        }
        reader.linktype = linktype;
        Ok(reader)
    }

    /// The file's link type.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Whether timestamps have nanosecond resolution.
    pub fn is_nanosecond(&self) -> bool {
        self.nanos
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn next_record(&mut self) -> Result<PcapPacket<'a>, PcapError> {
        let record = self.record;
        let at = self.pos;
        let truncated = PcapError::Truncated { record };
        let secs = self.u32_at(at).ok_or(truncated.clone())?;
        let frac = self.u32_at(at + 4).ok_or(truncated.clone())?;
        let incl_len = self.u32_at(at + 8).ok_or(truncated.clone())?;
        let orig_len = self.u32_at(at + 12).ok_or(truncated.clone())?;
        if incl_len > MAX_RECORD {
            return Err(PcapError::BadRecordLength {
                record,
                len: incl_len,
            });
        }
        let start = at + 16;
        let end = start.saturating_add(incl_len as usize);
        let data = self.bytes.get(start..end).ok_or(truncated)?;
        self.pos = end;
        self.record = record.saturating_add(1);
        // A fraction of a second too large is a broken timestamp, not a reason to drop the
        // packet: clamp it.
        let ts = if self.nanos {
            Duration::new(u64::from(secs), frac.min(999_999_999))
        } else {
            Duration::new(u64::from(secs), frac.min(999_999).saturating_mul(1000))
        };
        Ok(PcapPacket {
            ts,
            ipv4: strip_link(self.linktype, data)
                .filter(|ip| ip.first().map(|b| b >> 4) == Some(4)),
            ip: strip_link(self.linktype, data),
            data,
            orig_len,
        })
    }
}

impl<'a> Iterator for PcapReader<'a> {
    type Item = Result<PcapPacket<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let item = self.next_record();
        self.failed = item.is_err();
        Some(item)
    }
}

/// The IPv4 or IPv6 packet inside a link-layer frame, if there is one.
fn strip_link(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    const ETHERTYPE_IPV4: u16 = 0x0800;
    const ETHERTYPE_IPV6: u16 = 0x86dd;
    let is_ip = |t: u16| t == ETHERTYPE_IPV4 || t == ETHERTYPE_IPV6;
    const ETHERTYPE_VLAN: u16 = 0x8100;
    let be16 = |at: usize| -> Option<u16> {
        let b = data.get(at..at + 2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    let ip = match linktype {
        LINKTYPE_RAW | LINKTYPE_IPV4 => data,
        LINKTYPE_ETHERNET => {
            // dst MAC, src MAC, EtherType; one 802.1Q tag may sit before the EtherType.
            let (ethertype, header) = match be16(12)? {
                ETHERTYPE_VLAN => (be16(16)?, 18),
                t => (t, 14),
            };
            if !is_ip(ethertype) {
                return None;
            }
            data.get(header..)?
        }
        LINKTYPE_LINUX_SLL => {
            if !is_ip(be16(14)?) {
                return None;
            }
            data.get(16..)?
        }
        LINKTYPE_LINUX_SLL2 => {
            if !is_ip(be16(0)?) {
                return None;
            }
            data.get(20..)?
        }
        _ => return None,
    };
    // RAW (101) carries either version; LINKTYPE_IPV4 only 4.
    let version = ip.first()? >> 4;
    (version == 4 || (version == 6 && linktype != LINKTYPE_IPV4)).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv4::{emit, PROTO_ICMP, PROTO_UDP};
    use std::net::Ipv4Addr;

    #[test]
    fn link_type_is_in_the_global_header() {
        let raw = PcapWriter::new(Vec::new()).unwrap().into_inner();
        assert_eq!(&raw[20..24], &LINKTYPE_RAW.to_le_bytes());
        let eth = PcapWriter::with_linktype(Vec::new(), LINKTYPE_ETHERNET)
            .unwrap()
            .into_inner();
        assert_eq!(&eth[20..24], &[1, 0, 0, 0]);
        assert_eq!(&eth[..20], &raw[..20], "only the link type differs");
    }

    #[test]
    fn global_header_and_two_records_byte_exact() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let t1 = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let t2 = UNIX_EPOCH + Duration::from_secs(5);
        w.write_packet(t1, &[0x45, 1, 2]).unwrap();
        w.write_packet(t2, &[]).unwrap();
        w.flush().unwrap();
        let bytes = w.into_inner();
        let expected: Vec<u8> = [
            // global header
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0][..],
            &[0, 0, 0, 0, 0, 0, 0, 0],
            &[0xff, 0xff, 0, 0, 101, 0, 0, 0],
            // record 1: 1700000000 s = 0x6553f100, 123456 us = 0x0001e240, len 3/3
            &[0x00, 0xf1, 0x53, 0x65, 0x40, 0xe2, 0x01, 0x00],
            &[3, 0, 0, 0, 3, 0, 0, 0],
            &[0x45, 1, 2],
            // record 2: 5 s, 0 us, empty
            &[5, 0, 0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn oversized_and_pre_epoch() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let big = vec![7u8; SNAPLEN as usize + 5];
        w.write_packet(UNIX_EPOCH - Duration::from_secs(1), &big)
            .unwrap();
        let bytes = w.into_inner();
        assert_eq!(&bytes[24..32], &[0; 8]);
        assert_eq!(&bytes[32..36], &SNAPLEN.to_le_bytes());
        assert_eq!(&bytes[36..40], &(SNAPLEN + 5).to_le_bytes());
        assert_eq!(bytes.len(), 24 + 16 + SNAPLEN as usize);
    }

    const T0: Instant = Instant::from_millis(0);

    /// The records of a capture written to memory: (original length, bytes).
    fn records(writer: SharedPcap<Vec<u8>>) -> Vec<Vec<u8>> {
        let bytes = writer.lock().unwrap().get_ref().clone();
        PcapReader::new(&bytes)
            .unwrap()
            .map(|r| r.unwrap().data.to_vec())
            .collect()
    }

    #[test]
    fn pcap_device_records_both_directions() {
        let (a, mut b) = crate::link::memory::pair().unwrap();
        let mut dev = PcapDevice::new(a, PcapWriter::new(Vec::new()).unwrap());
        assert_eq!(dev.mtu(), 1500);
        dev.send(b"out", TxMeta::default(), T0).unwrap();
        b.send(b"in!!", TxMeta::default(), T0).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(dev.recv(&mut buf, T0).unwrap().map(|(n, _)| n), Some(4));
        assert_eq!(dev.recv(&mut buf, T0).unwrap(), None);
        // The packet sent did cross.
        assert_eq!(b.recv(&mut buf, T0).unwrap().map(|(n, _)| n), Some(3));
        assert_eq!(dev.write_errors(), 0);
        let (_a, w) = dev.into_parts();
        assert_eq!(records(w), vec![b"out".to_vec(), b"in!!".to_vec()]);
    }

    /// A packet the device refuses (here: over the MTU) is not recorded: the capture shows
    /// what crossed, not what was attempted.
    #[test]
    fn refused_packets_are_not_recorded() {
        let (mut a, _b) = crate::link::memory::pair().unwrap();
        a.set_mtu(4);
        let mut dev = PcapDevice::new(a, PcapWriter::new(Vec::new()).unwrap());
        assert!(dev.send(b"too long", TxMeta::default(), T0).is_err());
        dev.send(b"ok", TxMeta::default(), T0).unwrap();
        let (_a, w) = dev.into_parts();
        assert_eq!(records(w), vec![b"ok".to_vec()]);
    }

    /// Several devices (the queues of one TUN) share one capture, records whole.
    #[test]
    fn devices_share_one_capture() {
        let shared = Arc::new(Mutex::new(PcapWriter::new(Vec::new()).unwrap()));
        let (q0, _p0) = crate::link::memory::pair().unwrap();
        let (q1, _p1) = crate::link::memory::pair().unwrap();
        let mut d0 = PcapDevice::shared(q0, shared.clone());
        let mut d1 = PcapDevice::shared(q1, shared.clone());
        d0.send(b"q0", TxMeta::default(), T0).unwrap();
        d1.send(b"q1", TxMeta::default(), T0).unwrap();
        d0.send(b"q0 again", TxMeta::default(), T0).unwrap();
        assert_eq!(
            records(shared),
            vec![b"q0".to_vec(), b"q1".to_vec(), b"q0 again".to_vec()]
        );
    }

    /// A super-segment is recorded as the wire segments it stands for, with checksums.
    #[test]
    fn super_segments_are_recorded_as_wire_segments() {
        use crate::tcp::Segment;
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));
        let seg = Segment {
            src_port: 80,
            dst_port: 40000,
            payload: vec![7; 3000],
            ..Segment::default()
        };
        let packet = emit(
            src,
            dst,
            crate::ip::ipv4::PROTO_TCP,
            64,
            1,
            &seg.emit(src, dst),
        );
        let (a, mut b) = crate::link::memory::pair().unwrap();
        let mut a = a;
        a.set_mtu(65535);
        let mut dev = PcapDevice::new(a, PcapWriter::new(Vec::new()).unwrap());
        let meta = TxMeta {
            gso_size: 1000,
            csum_partial: false,
        };
        dev.send(&packet, meta, T0).unwrap();
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            b.recv(&mut buf, T0).unwrap().map(|(n, _)| n),
            Some(packet.len()),
            "the device got the super-segment whole"
        );
        let (_a, w) = dev.into_parts();
        let pieces = records(w);
        assert_eq!(pieces.len(), 3, "3000 bytes in 1000-byte segments");
        for p in &pieces {
            let ip = crate::ip::ipv4::Ipv4Packet::parse(p).unwrap();
            let tcp = Segment::parse(ip.src, ip.dst, ip.payload).unwrap();
            assert_eq!(tcp.payload.len(), 1000);
        }
    }

    /// A writer that always fails, standing in for a full disk.
    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn capture_errors_do_not_disturb_traffic() {
        assert!(PcapWriter::new(Failing).is_err());
        let (a, mut b) = crate::link::memory::pair().unwrap();
        let writer = PcapWriter { out: Failing };
        let mut dev = PcapDevice::new(a, writer);
        dev.send(b"x", TxMeta::default(), T0).unwrap();
        dev.send(b"y", TxMeta::default(), T0).unwrap();
        assert_eq!(dev.write_errors(), 2);
        assert_eq!(b.recv(&mut [0u8; 4], T0).unwrap().map(|(n, _)| n), Some(1));
    }

    /// Writes `packets` to a capture file and returns tshark's `-T fields` output for
    /// `fields`; None (the test is skipped) when tshark is not installed outside CI.
    fn tshark_fields(test: &str, packets: &[Vec<u8>], fields: &[&str]) -> Option<String> {
        let tshark = Path::new("/usr/bin/tshark");
        if !tshark.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but tshark is missing"
            );
            eprintln!("SKIP {test}: /usr/bin/tshark not installed");
            return None;
        }
        let path = std::env::temp_dir().join(format!("{test}-{}.pcap", std::process::id()));
        {
            let mut w = PcapWriter::create(&path).unwrap();
            for p in packets {
                w.write_packet(SystemTime::now(), p).unwrap();
            }
            w.flush().unwrap();
        }
        let mut cmd = std::process::Command::new(tshark);
        cmd.args(["-n", "-r"]).arg(&path).args(["-T", "fields"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let out = cmd.output().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Reads the file back with tshark (Wireshark's CLI) when it is installed.
    #[test]
    fn tshark_reads_our_file() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let mut ping = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let sum = crate::ip::checksum(&ping);
        ping[2..4].copy_from_slice(&sum.to_be_bytes());
        let packets = [
            emit(a, b, PROTO_ICMP, 64, 1, &ping),
            emit(b, a, PROTO_UDP, 64, 2, &[0; 8]),
        ];
        let Some(stdout) = tshark_fields(
            "tshark_reads_our_file",
            &packets,
            &["ip.src", "ip.dst", "ip.proto"],
        ) else {
            return;
        };
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            ["10.0.0.1\t10.0.0.2\t1", "10.0.0.2\t10.0.0.1\t17"],
            "{stdout}"
        );
    }

    /// An IPv6 packet (with a Fragment header) written to the raw-IP capture is dissected
    /// by tshark as IPv6: the link type needs no change for IPv6, the version nibble says it.
    #[test]
    fn tshark_reads_ipv6_in_our_file() {
        use crate::ip::ipv6;
        use std::net::Ipv6Addr;
        let a = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let b = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        let mut echo = vec![128u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let sum = crate::ip::checksum_with(
            ipv6::pseudo_header_sum(a, b, ipv6::NEXT_ICMPV6, echo.len() as u32),
            &echo,
        );
        echo[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut fragmented = ipv6::fragment_header(ipv6::NEXT_UDP, 8, false, 7).to_vec();
        fragmented.extend_from_slice(&[0; 16]);
        let packets = [
            ipv6::emit(a, b, ipv6::NEXT_ICMPV6, 64, &echo),
            ipv6::emit(b, a, ipv6::NEXT_FRAGMENT, 64, &fragmented),
        ];
        let fields = [
            "ipv6.src",
            "ipv6.dst",
            "ipv6.hlim",
            "icmpv6.type",
            "ipv6.fraghdr.offset",
            "ipv6.fraghdr.ident",
        ];
        let Some(stdout) = tshark_fields("tshark_reads_ipv6_in_our_file", &packets, &fields) else {
            return;
        };
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                "fd00::1\tfd00::2\t64\t128\t\t",
                // Offset in 8-byte units, as on the wire.
                "fd00::2\tfd00::1\t64\t\t1\t0x00000007"
            ],
            "{stdout}"
        );
    }

    /// Builds a pcap file by hand: global header in the given byte order and magic, then
    /// `(secs, frac, data)` records.
    fn handmade(
        big_endian: bool,
        magic: u32,
        linktype: u32,
        records: &[(u32, u32, &[u8])],
    ) -> Vec<u8> {
        let put = |out: &mut Vec<u8>, v: u32| {
            if big_endian {
                out.extend_from_slice(&v.to_be_bytes())
            } else {
                out.extend_from_slice(&v.to_le_bytes())
            }
        };
        let mut out = Vec::new();
        put(&mut out, magic);
        let version: [u8; 4] = if big_endian {
            [0, 2, 0, 4]
        } else {
            [2, 0, 4, 0]
        };
        out.extend_from_slice(&version);
        put(&mut out, 0);
        put(&mut out, 0);
        put(&mut out, SNAPLEN);
        put(&mut out, linktype);
        for (secs, frac, data) in records {
            put(&mut out, *secs);
            put(&mut out, *frac);
            put(&mut out, data.len() as u32);
            put(&mut out, data.len() as u32);
            out.extend_from_slice(data);
        }
        out
    }

    fn ipv4_packet() -> Vec<u8> {
        emit(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            PROTO_UDP,
            64,
            9,
            &[1; 8],
        )
    }

    #[test]
    fn reader_reads_what_the_writer_wrote() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let pkt = ipv4_packet();
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        w.write_packet(t, &pkt).unwrap();
        w.write_packet(t + Duration::from_millis(2), &[0x60, 0, 0, 0])
            .unwrap();
        let bytes = w.into_inner();
        let r = PcapReader::new(&bytes).unwrap();
        assert_eq!(r.linktype(), LINKTYPE_RAW);
        assert!(!r.is_nanosecond());
        let packets: Vec<_> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].ts, Duration::from_micros(1_700_000_000_123_456));
        assert_eq!(packets[0].ipv4, Some(&pkt[..]));
        assert_eq!(packets[0].orig_len as usize, pkt.len());
        // An IPv6 packet on a raw link is kept as data but is not IPv4.
        assert_eq!(packets[1].ipv4, None);
        assert_eq!(packets[1].data, &[0x60, 0, 0, 0]);
    }

    #[test]
    fn reader_big_endian_nanoseconds_and_link_types() {
        let pkt = ipv4_packet();
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&pkt);
        let mut vlan = vec![0u8; 12];
        vlan.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        vlan.extend_from_slice(&pkt);
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&pkt);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&pkt);
        for big in [false, true] {
            let file = handmade(
                big,
                MAGIC_NANOS,
                LINKTYPE_ETHERNET,
                &[
                    (7, 123_456_789, &eth),
                    (7, 2_000_000_000, &vlan),
                    (8, 0, &arp),
                ],
            );
            let r = PcapReader::new(&file).unwrap();
            assert!(r.is_nanosecond());
            let p: Vec<_> = r.collect::<Result<_, _>>().unwrap();
            assert_eq!(p[0].ts, Duration::new(7, 123_456_789));
            assert_eq!(p[1].ts, Duration::new(7, 999_999_999), "fraction clamped");
            assert_eq!(p[0].ipv4, Some(&pkt[..]));
            assert_eq!(p[1].ipv4, Some(&pkt[..]));
            assert_eq!(p[2].ipv4, None);
            for (linktype, frame) in [
                (LINKTYPE_LINUX_SLL, &sll),
                (LINKTYPE_LINUX_SLL2, &sll2),
                (LINKTYPE_IPV4, &pkt),
            ] {
                let file = handmade(big, MAGIC, linktype, &[(1, 5, frame)]);
                let p: Vec<_> = PcapReader::new(&file)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(p[0].ts, Duration::new(1, 5000));
                assert_eq!(p[0].ipv4, Some(&pkt[..]), "link type {linktype}");
            }
        }
    }

    #[test]
    fn reader_errors() {
        assert_eq!(PcapReader::new(&[]).unwrap_err(), PcapError::TooShort);
        assert_eq!(
            PcapReader::new(&MAGIC.to_le_bytes()).unwrap_err(),
            PcapError::TooShort
        );
        assert_eq!(
            PcapReader::new(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0]).unwrap_err(),
            PcapError::Pcapng
        );
        assert!(matches!(
            PcapReader::new(b"GET / HTTP/1.1\r\n\r\n12345678").unwrap_err(),
            PcapError::BadMagic(_)
        ));
        let file = handmade(false, MAGIC, 105, &[]);
        assert_eq!(
            PcapReader::new(&file).unwrap_err(),
            PcapError::UnsupportedLinkType(105)
        );
        // A record cut short: the good record before it is still returned.
        let pkt = ipv4_packet();
        let mut file = handmade(false, MAGIC, LINKTYPE_RAW, &[(1, 0, &pkt), (2, 0, &pkt)]);
        file.truncate(file.len() - 3);
        let items: Vec<_> = PcapReader::new(&file).unwrap().collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err(PcapError::Truncated { record: 1 }));
        // An absurd length is refused instead of allocated.
        let mut file = handmade(false, MAGIC, LINKTYPE_RAW, &[]);
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&u32::MAX.to_le_bytes());
        file.extend_from_slice(&[0; 4]);
        let items: Vec<_> = PcapReader::new(&file).unwrap().collect();
        assert_eq!(
            items,
            vec![Err(PcapError::BadRecordLength {
                record: 0,
                len: u32::MAX
            })]
        );
    }

    /// Random bytes, and random corruptions of a valid file, never panic and never loop.
    #[test]
    fn reader_fuzz_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            // xorshift64*: deterministic, good enough to spray bytes.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let pkt = ipv4_packet();
        let good = handmade(
            false,
            MAGIC,
            LINKTYPE_ETHERNET,
            &[(1, 0, &pkt), (2, 0, &pkt), (3, 0, &pkt)],
        );
        for round in 0..5000 {
            let mut bytes = if round % 2 == 0 {
                let len = (rnd() % 200) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                // Give half of them a valid magic so the record parser is exercised too.
                if round % 4 == 0 && b.len() >= 4 {
                    b[..4].copy_from_slice(&MAGIC.to_le_bytes());
                }
                b
            } else {
                good.clone()
            };
            let flips = rnd() % 8;
            for _ in 0..flips {
                if bytes.is_empty() {
                    break;
                }
                let at = (rnd() as usize) % bytes.len();
                bytes[at] = rnd() as u8;
            }
            if rnd() % 3 == 0 {
                let keep = (rnd() as usize) % (bytes.len() + 1);
                bytes.truncate(keep);
            }
            if let Ok(r) = PcapReader::new(&bytes) {
                let mut n = 0usize;
                for item in r {
                    n += 1;
                    assert!(n <= bytes.len(), "reader does not terminate");
                    if let Ok(p) = item {
                        assert!(p.data.len() <= bytes.len());
                    }
                }
            }
        }
    }
}
