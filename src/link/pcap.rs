//! A libpcap capture file writer, so Wireshark / tcpdump / tshark can show what crossed the
//! device (`tunstack serve --pcap FILE`).
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

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Device;

/// Magic number of a microsecond-resolution pcap file.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// Largest number of bytes stored per packet.
pub const SNAPLEN: u32 = 65_535;
/// Link type for packets that start directly with an IP header (no link-layer header).
pub const LINKTYPE_RAW: u32 = 101;
/// Link type of Ethernet frames (a TAP device's captures).
pub const LINKTYPE_ETHERNET: u32 = 1;

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

/// A middleware [`Device`] that records every packet received from and sent to the wrapped
/// device into a pcap stream (as smoltcp's `PcapWriter` device does), timestamped with the
/// wall clock. Capture write errors are logged and do not disturb the traffic.
#[derive(Debug)]
pub struct PcapDevice<D, W: Write> {
    inner: D,
    writer: PcapWriter<W>,
    write_errors: u64,
}

impl<D: Device, W: Write + Send> PcapDevice<D, W> {
    /// Wraps `inner`, capturing into `writer`.
    pub fn new(inner: D, writer: PcapWriter<W>) -> Self {
        PcapDevice {
            inner,
            writer,
            write_errors: 0,
        }
    }

    /// Flushes the capture.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// How many packets could not be written to the capture.
    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// Returns the wrapped device and the capture writer.
    pub fn into_parts(self) -> (D, PcapWriter<W>) {
        (self.inner, self.writer)
    }

    fn record(&mut self, pkt: &[u8]) {
        if let Err(e) = self.writer.write_packet(SystemTime::now(), pkt) {
            // Warn once; a full disk must not flood the log or stop the stack.
            if self.write_errors == 0 {
                log::warn!("pcap capture failed, further errors are only counted: {e}");
            }
            self.write_errors = self.write_errors.saturating_add(1);
        }
    }
}

impl<D: Device, W: Write + Send> Device for PcapDevice<D, W> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.recv(buf)?;
        self.record(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.inner.send(packet)?;
        // Recorded only once the device took it, like a capture on the interface.
        self.record(packet);
        Ok(())
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::ipv4::{emit, PROTO_ICMP, PROTO_UDP};
    use std::net::Ipv4Addr;
    use std::time::Duration;

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

    #[test]
    fn pcap_device_records_both_directions() {
        let (a, mut b) = crate::link::memory::pair();
        let mut dev = PcapDevice::new(a, PcapWriter::new(Vec::new()).unwrap());
        assert_eq!(dev.mtu(), 1500);
        dev.send(b"out").unwrap();
        b.send(b"in!!").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(dev.recv(&mut buf).unwrap(), 4);
        assert_eq!(
            dev.recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        dev.flush().unwrap();
        assert_eq!(dev.write_errors(), 0);
        let (_a, w) = dev.into_parts();
        let bytes = w.into_inner();
        assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 4);
        assert_eq!(&bytes[24 + 8..24 + 12], &3u32.to_le_bytes());
        assert_eq!(&bytes[40..43], b"out");
        assert_eq!(&bytes[43 + 16..], b"in!!");
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
        let (a, mut b) = crate::link::memory::pair();
        let writer = PcapWriter { out: Failing };
        let mut dev = PcapDevice::new(a, writer);
        dev.send(b"x").unwrap();
        dev.send(b"y").unwrap();
        assert_eq!(dev.write_errors(), 2);
        assert_eq!(b.recv(&mut [0u8; 4]).unwrap(), 1);
    }

    /// Reads the file back with tshark (Wireshark's CLI) when it is installed.
    #[test]
    fn tshark_reads_our_file() {
        let tshark = Path::new("/usr/bin/tshark");
        if !tshark.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but tshark is missing"
            );
            eprintln!("SKIP tshark_reads_our_file: /usr/bin/tshark not installed");
            return;
        }
        let path = std::env::temp_dir().join(format!("tunstack-pcap-{}.pcap", std::process::id()));
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let mut ping = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let sum = crate::ip::checksum(&ping);
        ping[2..4].copy_from_slice(&sum.to_be_bytes());
        {
            let mut w = PcapWriter::create(&path).unwrap();
            w.write_packet(SystemTime::now(), &emit(a, b, PROTO_ICMP, 64, 1, &ping))
                .unwrap();
            w.write_packet(SystemTime::now(), &emit(b, a, PROTO_UDP, 64, 2, &[0; 8]))
                .unwrap();
            w.flush().unwrap();
        }
        let out = std::process::Command::new(tshark)
            .args(["-n", "-r"])
            .arg(&path)
            .args([
                "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto",
            ])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            ["10.0.0.1\t10.0.0.2\t1", "10.0.0.2\t10.0.0.1\t17"],
            "{stdout}"
        );
    }
}
