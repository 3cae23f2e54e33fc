//! The TUN device for the single-threaded event loop: non-blocking, with the kernel's
//! offloads (`IFF_VNET_HDR` + `TUNSETOFFLOAD`) and several queues (`IFF_MULTI_QUEUE`).
//!
//! [`super::tun::TunDevice`] goes through the `tun-tap` crate, whose reads block and which
//! knows none of the flags below; this module opens `/dev/net/tun` itself and issues the
//! ioctls with `libc` (the only `unsafe` code: three small functions, each documented).
//! Reads and writes go through a [`std::fs::File`] opened with `O_NONBLOCK`, so a read with
//! nothing waiting returns `WouldBlock` and the event loop waits on the descriptor with epoll.
//!
//! **Offloads** (`TunOptions::offload`). With `IFF_VNET_HDR` every packet crossing the
//! descriptor is preceded by a 10-byte `struct virtio_net_hdr` ([`VnetHdr`]). After
//! `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)` the kernel
//! - hands us TCP "super-segments" (over IPv4, `VNET_GSO_TCPV4`, or IPv6, `VNET_GSO_TCPV6`)
//!   of up to 64 KiB that GRO/GSO coalesced, with a header saying the MSS (`gso_size`) and
//!   that the checksum is partial or already checked;
//! - accepts from us such super-segments and cuts them into MSS-sized packets itself.
//!
//! One `read`/`write` then moves up to 64 KiB instead of one 1500-byte packet: the syscall
//! per packet was the bottleneck of the plain path (docs/performance.md). We ask only for what our stack
//! handles — TCP over IPv4 and IPv6 — not USO. If the kernel refuses TSO6, TSO4 and checksum
//! offload are kept (IPv6 TCP then sends wire-sized segments); if it refuses TSO4 too,
//! checksum offload alone is kept; if it refuses the header or every offload, the device is
//! reopened without the header. [`TunQueue::offloads`] says what was accepted, and a
//! super-segment asked for on a device without TSO for its IP version is cut in software
//! ([`super::gso`]).
//!
//! **Byte order.** The header's fields are in the virtio device's byte order, which for a
//! TUN is the host's unless changed; we set `TUNSETVNETLE` so they are little-endian on any
//! host (on x86 and little-endian ARM this changes nothing). Should the kernel refuse it on a
//! big-endian host we fall back to the plain path.
//!
//! **Queues** (`TunOptions::queues` > 1). The same interface name is opened once per queue
//! with `IFF_MULTI_QUEUE`; the kernel spreads flows over the queues by a hash of their
//! addresses and ports, so each queue can be driven by its own thread without locks.
//!
//! Like [`super::tun`], the device is non-persistent: the interface disappears when the
//! last queue is closed.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::gso;
use super::offload::{Offloads, RxMeta, TxMeta};
use super::tun::{check_tun_path, open_error, validate_name, DEFAULT_MTU, EFAULT, TUN_PATH};
use super::{Device, Medium};
use crate::time::Instant;

pub use super::tun::{configure_link, delete_link};

/// Length of `struct virtio_net_hdr` (without the `num_buffers` field of the mergeable
/// variant, which a TUN does not use).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial
/// (pseudo-header only) and must be completed over the bytes from `csum_start` on.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the kernel already verified the checksum.
pub const VNET_F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`: an ordinary packet.
pub const VNET_GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: a TCP/IPv4 super-segment.
pub const VNET_GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP`: a UDP datagram to fragment (UFO); never asked for.
pub const VNET_GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: a TCP/IPv6 super-segment.
pub const VNET_GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`: or-ed into `gso_type` when the segments carry ECN (CWR on the
/// first one only).
pub const VNET_GSO_ECN: u8 = 0x80;
/// Offset of the checksum field in the TCP header (RFC 9293 §3.1).
const TCP_CSUM_OFFSET: u16 = 16;
/// Length of an Ethernet II header, in front of the IP header on a TAP device.
const ETH_HEADER_LEN: usize = 14;
/// `EBADFD`: what a read on a queue detached from a deleted interface may return.
const EBADFD: i32 = 77;
/// `EINVAL`: an ioctl or flag the kernel does not know.
const EINVAL: i32 = 22;

/// How to open the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunOptions {
    /// A TAP (Ethernet frames) instead of a TUN (bare IP packets).
    pub tap: bool,
    /// Try `IFF_VNET_HDR` and `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)`; fall back
    /// to fewer offloads, or to the plain path, with a log line saying why, when the kernel
    /// refuses.
    pub offload: bool,
    /// Number of queues to open (`IFF_MULTI_QUEUE` when more than 1); 0 counts as 1.
    pub queues: usize,
}

impl Default for TunOptions {
    /// A TUN with offloads, one queue.
    fn default() -> TunOptions {
        TunOptions {
            tap: false,
            offload: true,
            queues: 1,
        }
    }
}

/// Counters of one queue, for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunQueueStats {
    /// Received packets dropped because the header announced a GSO type we did not ask
    /// for (UDP): the kernel should never send them.
    pub unknown_gso: u64,
    /// Reads shorter than the virtio header, dropped.
    pub short_reads: u64,
    /// Reads that claimed more bytes than the buffer holds, dropped rather than trusted.
    /// (Linux cuts a packet longer than the buffer to the buffer's length and reports that:
    /// size buffers with [`Device::recv_buf_len`].)
    pub truncated: u64,
    /// Packets that asked for TSO or checksum offload on a queue without it, and were cut or
    /// checksummed in software instead.
    pub soft_segmented: u64,
}

/// One queue of a TUN/TAP device: a non-blocking descriptor that implements [`Device`].
#[derive(Debug)]
pub struct TunQueue {
    file: File,
    name: String,
    tap: bool,
    offloads: Offloads,
    /// Shared by the queues of one [`TunQueue::open_queues`] call.
    mtu: Arc<AtomicUsize>,
    stats: TunQueueStats,
}

/// The decoded `struct virtio_net_hdr` (include/uapi/linux/virtio_net.h), little-endian on
/// the wire (we set `TUNSETVNETLE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VNET_F_*` bits.
    pub flags: u8,
    /// `VNET_GSO_*`, possibly with [`VNET_GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers (link + IP + TCP) to copy in front of every piece.
    pub hdr_len: u16,
    /// Payload bytes per piece (the MSS).
    pub gso_size: u16,
    /// Where checksumming starts: the transport header's offset in the packet.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// The wire form.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// Reads the wire form.
    pub fn decode(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let [flags, gso_type, h0, h1, g0, g1, s0, s1, o0, o1] = *b;
        VnetHdr {
            flags,
            gso_type,
            hdr_len: u16::from_le_bytes([h0, h1]),
            gso_size: u16::from_le_bytes([g0, g1]),
            csum_start: u16::from_le_bytes([s0, s1]),
            csum_offset: u16::from_le_bytes([o0, o1]),
        }
    }

    /// What the stack needs to know of a received header, or `Err(gso_type)` for a GSO
    /// type we never asked for (the packet is to be dropped).
    pub fn rx_meta(&self) -> Result<RxMeta, u8> {
        let csum_trusted = self.flags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID) != 0;
        let gso_size = match self.gso_type & !VNET_GSO_ECN {
            VNET_GSO_NONE => 0,
            VNET_GSO_TCPV4 | VNET_GSO_TCPV6 => self.gso_size,
            other => return Err(other),
        };
        Ok(RxMeta {
            csum_trusted,
            gso_size,
        })
    }

    /// The header for sending `packet` (which starts with `l2_len` bytes of link header,
    /// then IPv4 or IPv6 and TCP) as `meta` asks. `None` when `meta` asks for an offload but
    /// the packet is not TCP/IPv4 or TCP/IPv6 (no extension headers) with sane header
    /// lengths (the caller then segments in software, which drops what it cannot parse).
    /// Any offload marks the checksum partial: [`TxMeta`] promises `csum_partial` whenever
    /// `gso_size` is set.
    pub fn for_tx(packet: &[u8], l2_len: usize, meta: TxMeta) -> Option<VnetHdr> {
        if meta == TxMeta::default() {
            return Some(VnetHdr::default());
        }
        let ip = packet.get(l2_len..)?;
        let (ip_len, tcp_len) = gso::tcp_header_lens(ip)?;
        let csum_start = u16::try_from(l2_len.checked_add(ip_len)?).ok()?;
        let hdr_len = u16::try_from(usize::from(csum_start).checked_add(tcp_len)?).ok()?;
        let v6 = ip.first().map(|b| b >> 4) == Some(6);
        let (gso_type, gso_size) = if meta.gso_size > 0 {
            // The kernel cuts by this type (`tcp4_gso_segment` / `tcp6_gso_segment`) and
            // refuses a packet whose version does not match it.
            (
                if v6 { VNET_GSO_TCPV6 } else { VNET_GSO_TCPV4 },
                meta.gso_size,
            )
        } else {
            (VNET_GSO_NONE, 0)
        };
        Some(VnetHdr {
            // A super-segment's checksum is always left partial (TxMeta's contract): each
            // piece's checksum can only be computed once the kernel has cut it.
            flags: VNET_F_NEEDS_CSUM,
            gso_type,
            hdr_len,
            gso_size,
            csum_start,
            csum_offset: TCP_CSUM_OFFSET,
        })
    }
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags in the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    /// The rest of the 24-byte union.
    _pad: [u8; 22],
}

/// TUNSETIFF on `file`: attaches it to interface `name` (created if needed) with `flags`.
/// Returns the name the kernel used.
#[allow(unsafe_code)]
fn set_iff(file: &File, name: &str, flags: libc::c_int) -> io::Result<String> {
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: libc::c_short::try_from(flags)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad TUN flags"))?,
        _pad: [0; 22],
    };
    // validate_name kept the name under IFNAMSIZ bytes, so the NUL terminator stays.
    for (dst, src) in req
        .name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src;
    }
    // SAFETY: the descriptor is open for the lifetime of `file`; TUNSETIFF reads and writes
    // a `struct ifreq` (40 bytes), and `req` is a live, exclusively borrowed #[repr(C)]
    // value of exactly that size and layout (name[16], then a 24-byte union whose first
    // member is `short ifr_flags`).
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = req
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(req.name.len());
    Ok(String::from_utf8_lossy(req.name.get(..len).unwrap_or_default()).into_owned())
}

/// An ioctl whose argument is a pointer to an `int` (TUNSETVNETHDRSZ, TUNSETVNETLE).
#[allow(unsafe_code)]
fn ioctl_int(file: &File, request: libc::Ioctl, value: libc::c_int) -> io::Result<()> {
    let mut value = value;
    // SAFETY: the descriptor is open for the lifetime of `file`; these TUN ioctls read one
    // `int` through the pointer, which points to a live local of that type.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, &mut value as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// TUNSETOFFLOAD: its argument is the `TUN_F_*` bit set itself, not a pointer.
#[allow(unsafe_code)]
fn set_offload(file: &File, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: the descriptor is open for the lifetime of `file`; TUNSETOFFLOAD takes its
    // argument by value and dereferences nothing.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens one descriptor of the clone device and attaches it to `name` with `flags`. Errors
/// are the kernel's, for the caller to explain with [`open_error`].
fn open_fd(name: &str, flags: libc::c_int) -> io::Result<(File, String)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(TUN_PATH)?;
    let real = set_iff(&file, name, flags)?;
    Ok((file, real))
}

/// Sets the vnet header size, byte order and offloads on a descriptor opened with
/// `IFF_VNET_HDR`. `Err` says why the plain path must be used instead.
fn negotiate(file: &File) -> Result<Offloads, String> {
    let hdr_len = libc::c_int::try_from(VNET_HDR_LEN).unwrap_or(10);
    ioctl_int(file, libc::TUNSETVNETHDRSZ, hdr_len)
        .map_err(|e| format!("TUNSETVNETHDRSZ {VNET_HDR_LEN} refused: {e}"))?;
    if let Err(e) = ioctl_int(file, libc::TUNSETVNETLE, 1) {
        // Without it the header is in host order, which is what we write on little-endian
        // hosts anyway.
        if cfg!(target_endian = "big") {
            return Err(format!("TUNSETVNETLE refused on a big-endian host: {e}"));
        }
        log::debug!("TUNSETVNETLE refused ({e}); host order is little-endian already");
    }
    let all = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    match set_offload(file, all) {
        Ok(()) => {
            return Ok(Offloads {
                vnet_hdr: true,
                rx_csum: true,
                rx_tso4: true,
                tx_tso4: true,
                rx_tso6: true,
                tx_tso6: true,
            })
        }
        Err(e) => log::warn!("TUNSETOFFLOAD CSUM|TSO4|TSO6 refused ({e}); trying CSUM|TSO4"),
    }
    match set_offload(file, libc::TUN_F_CSUM | libc::TUN_F_TSO4) {
        Ok(()) => Ok(Offloads {
            vnet_hdr: true,
            rx_csum: true,
            rx_tso4: true,
            tx_tso4: true,
            ..Offloads::default()
        }),
        Err(e) => {
            log::warn!("TUNSETOFFLOAD CSUM|TSO4 refused ({e}); trying CSUM alone");
            set_offload(file, libc::TUN_F_CSUM)
                .map_err(|e| format!("TUNSETOFFLOAD CSUM refused: {e}"))?;
            Ok(Offloads {
                vnet_hdr: true,
                rx_csum: true,
                ..Offloads::default()
            })
        }
    }
}

impl TunQueue {
    /// Opens `opts.queues` queues of the TUN (or TAP) interface `name`, creating it
    /// (`IFF_MULTI_QUEUE` when more than one). Every queue is non-blocking. With
    /// `opts.offload`, asks for the virtio header and TCP/IPv4 checksum + segmentation
    /// offloads; when the kernel refuses, reopens without them and logs why (never fails for
    /// that: [`TunQueue::offloads`] tells what was accepted). All queues share the first
    /// one's settings. The interface starts down: see [`configure_link`] / [`TunQueue::configure`].
    ///
    /// Errors as [`super::tun::TunDevice::open`]: missing `/dev/net/tun`, missing
    /// `CAP_NET_ADMIN`, a name in use or invalid.
    pub fn open_queues(name: &str, opts: &TunOptions) -> io::Result<Vec<TunQueue>> {
        validate_name(name)?;
        check_tun_path()?;
        let count = opts.queues.max(1);
        let mut base = libc::IFF_NO_PI
            | if opts.tap {
                libc::IFF_TAP
            } else {
                libc::IFF_TUN
            };
        if count > 1 {
            base |= libc::IFF_MULTI_QUEUE;
        }
        let (first, real, flags, offloads) = Self::open_first(name, base, opts.offload)?;
        let mtu = Arc::new(AtomicUsize::new(read_sys_mtu(&real).unwrap_or(DEFAULT_MTU)));
        let make = |file: File| TunQueue {
            file,
            name: real.clone(),
            tap: opts.tap,
            offloads,
            mtu: Arc::clone(&mtu),
            stats: TunQueueStats::default(),
        };
        let mut queues = vec![make(first)];
        for _ in 1..count {
            let (file, _) = open_fd(&real, flags).map_err(|e| open_error(&real, e))?;
            if offloads.vnet_hdr {
                // The settings are the device's, but set them again so that every queue
                // agrees even if another process reattached the device in between.
                let got = negotiate(&file).map_err(io::Error::other)?;
                if got != offloads {
                    return Err(io::Error::other(format!(
                        "{real}: queue offloads {got:?} differ from the first queue's {offloads:?}"
                    )));
                }
            }
            queues.push(make(file));
        }
        log::info!(
            "opened {} {real} with {count} queue(s), offloads {offloads:?}",
            if opts.tap { "TAP" } else { "TUN" }
        );
        Ok(queues)
    }

    /// Opens the plain TUN `name` with one queue and no offloads: what the threaded runtime
    /// ([`crate::stack::start`]) takes. See [`TunQueue::open_queues`].
    pub fn open(name: &str) -> io::Result<TunQueue> {
        let opts = TunOptions {
            tap: false,
            offload: false,
            queues: 1,
        };
        Self::open_queues(name, &opts)?
            .pop()
            .ok_or_else(|| io::Error::other("no queue opened"))
    }

    /// The first queue, with the offloads negotiated (or given up).
    fn open_first(
        name: &str,
        base: libc::c_int,
        offload: bool,
    ) -> io::Result<(File, String, libc::c_int, Offloads)> {
        if offload {
            let flags = base | libc::IFF_VNET_HDR;
            match open_fd(name, flags) {
                Ok((file, real)) => match negotiate(&file) {
                    Ok(offloads) => return Ok((file, real, flags, offloads)),
                    Err(why) => {
                        log::warn!("{real}: offloads unavailable, using the plain path: {why}");
                        // Close it first: the device is non-persistent and is created
                        // anew, without the header, below.
                        drop(file);
                    }
                },
                Err(e) if e.raw_os_error() == Some(EINVAL) => {
                    log::warn!("{name}: IFF_VNET_HDR refused ({e}), using the plain path");
                }
                Err(e) => return Err(open_error(name, e)),
            }
        }
        let (file, real) = open_fd(name, base).map_err(|e| open_error(name, e))?;
        Ok((file, real, base, Offloads::default()))
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters of this queue.
    pub fn stats(&self) -> TunQueueStats {
        self.stats
    }

    /// [`configure_link`] for this queue's interface, remembering the MTU for every queue of
    /// the same [`TunQueue::open_queues`] call.
    pub fn configure(&self, host_cidr: &str, mtu: usize) -> io::Result<()> {
        configure_link(&self.name, host_cidr, mtu)?;
        self.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the MTU [`Device::mtu`] reports (for all queues of the same open), e.g.
    /// after the free function [`configure_link`] changed it.
    pub fn set_mtu(&self, mtu: usize) {
        self.mtu.store(mtu, Ordering::Relaxed);
    }

    /// Re-reads the interface's MTU from `/sys/class/net/<name>/mtu` (for all queues of the
    /// same open) and returns it.
    pub fn refresh_mtu(&self) -> io::Result<usize> {
        let mtu = read_sys_mtu(&self.name)?;
        self.mtu.store(mtu, Ordering::Relaxed);
        Ok(mtu)
    }

    /// Writes `parts` as one packet with one `writev`, checking it went out whole.
    fn write_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let slices: [IoSlice<'_>; 4] = [
            IoSlice::new(parts.first().copied().unwrap_or_default()),
            IoSlice::new(parts.get(1).copied().unwrap_or_default()),
            IoSlice::new(parts.get(2).copied().unwrap_or_default()),
            IoSlice::new(parts.get(3).copied().unwrap_or_default()),
        ];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let n = self
            .file
            .write_vectored(&slices)
            .map_err(|e| self.map_err(e))?;
        // A TUN write is one packet, all or nothing; a short count would mean a corrupt packet.
        if n != total {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write to {}: {n} of {total} bytes", self.name),
            ));
        }
        Ok(())
    }

    /// Whether a read of `len` bytes fits the buffer of `cap` bytes; counts and logs it if
    /// not, so that no caller ever slices past its buffer.
    fn fits(&mut self, len: usize, cap: usize) -> bool {
        if len <= cap {
            return true;
        }
        self.stats.truncated += 1;
        log::debug!(
            "{}: dropped a {len}-byte packet that did not fit a {cap}-byte buffer",
            self.name
        );
        false
    }

    /// Says "the interface was deleted" instead of "Bad address".
    fn map_err(&self, e: io::Error) -> io::Error {
        match e.raw_os_error() {
            Some(EFAULT) | Some(EBADFD) => io::Error::new(
                io::ErrorKind::NotConnected,
                format!("TUN device {} was deleted", self.name),
            ),
            _ => e,
        }
    }

    /// Sends a packet that asked for an offload this queue lacks: cut (and checksummed) in
    /// software, each piece with a "nothing to do" header if the queue has one.
    fn send_soft(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        self.stats.soft_segmented += 1;
        let l2_len = if self.tap { ETH_HEADER_LEN } else { 0 };
        let l2 = packet.get(..l2_len).unwrap_or_default();
        let ip = packet.get(l2_len..).unwrap_or_default();
        let hdr = VnetHdr::default().encode();
        let hdr: &[u8] = if self.offloads.vnet_hdr { &hdr } else { &[] };
        let size = if meta.gso_size > 0 {
            usize::from(meta.gso_size)
        } else {
            usize::from(u16::MAX)
        };
        let mut result = Ok(());
        let mut pieces = 0usize;
        gso::split_tcp(ip, size, &mut |piece| {
            pieces += 1;
            if result.is_ok() {
                result = self.write_parts(&[hdr, l2, piece]);
            }
        });
        if pieces == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "offload asked for a packet that is not TCP/IPv4 or TCP/IPv6",
            ));
        }
        result
    }
}

/// Reads `/sys/class/net/<name>/mtu`.
fn read_sys_mtu(name: &str) -> io::Result<usize> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("MTU {text:?}: {e}")))
}

impl Device for TunQueue {
    /// One packet, or `Ok(None)` when none is waiting. With the virtio header, it is read
    /// with one `readv` (header into a local, packet straight into `buf`: no copy) and
    /// decoded; packets with a GSO type we never asked for are counted and skipped.
    fn recv(&mut self, buf: &mut [u8], _now: Instant) -> io::Result<Option<(usize, RxMeta)>> {
        loop {
            if !self.offloads.vnet_hdr {
                let n = match self.file.read(buf) {
                    // A TUN read is never empty; treat it as "nothing waiting" rather than
                    // reading again.
                    Ok(0) => return Ok(None),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(self.map_err(e)),
                };
                if self.fits(n, buf.len()) {
                    return Ok(Some((n, RxMeta::default())));
                }
                continue;
            }
            let mut raw = [0u8; VNET_HDR_LEN];
            let n = match self
                .file
                .read_vectored(&mut [IoSliceMut::new(&mut raw), IoSliceMut::new(buf)])
            {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(self.map_err(e)),
            };
            let Some(len) = n.checked_sub(VNET_HDR_LEN) else {
                self.stats.short_reads += 1;
                log::debug!(
                    "{}: read of {n} bytes, shorter than the vnet header",
                    self.name
                );
                continue;
            };
            if !self.fits(len, buf.len()) {
                continue;
            }
            match VnetHdr::decode(&raw).rx_meta() {
                Ok(meta) => return Ok(Some((len, meta))),
                Err(gso_type) => {
                    self.stats.unknown_gso += 1;
                    log::debug!(
                        "{}: dropped a {len}-byte packet with GSO type {gso_type} we did not ask for",
                        self.name
                    );
                }
            }
        }
    }

    /// One packet in one `writev`: the virtio header `meta` describes, then the packet, with
    /// no copy. A super-segment on a queue without TSO is cut in software.
    fn send(&mut self, packet: &[u8], meta: TxMeta, _now: Instant) -> io::Result<()> {
        let offloaded = meta != TxMeta::default();
        if !self.offloads.vnet_hdr {
            if offloaded {
                return self.send_soft(packet, meta);
            }
            return self.write_parts(&[packet]);
        }
        let l2_len = if self.tap { ETH_HEADER_LEN } else { 0 };
        if meta.gso_size > 0
            && !self
                .offloads
                .tso_for(packet.get(l2_len..).unwrap_or_default())
        {
            return self.send_soft(packet, meta);
        }
        match VnetHdr::for_tx(packet, l2_len, meta) {
            Some(hdr) => self.write_parts(&[&hdr.encode(), packet]),
            None => self.send_soft(packet, meta),
        }
    }

    fn send_gather(
        &mut self,
        head: &[u8],
        tail: [&[u8]; 2],
        meta: TxMeta,
        now: Instant,
    ) -> io::Result<()> {
        let l2_len = if self.tap { ETH_HEADER_LEN } else { 0 };
        // The header is built from `head` alone, which holds the whole TCP header (the
        // contract of `send_gather`); anything the plain path would have to cut or complete
        // in software goes through `send` on a contiguous copy.
        let ip = head.get(l2_len..).unwrap_or_default();
        let direct = self.offloads.vnet_hdr && (meta.gso_size == 0 || self.offloads.tso_for(ip));
        let hdr = if direct {
            VnetHdr::for_tx(head, l2_len, meta)
        } else {
            None
        };
        match hdr {
            Some(hdr) => self.write_parts(&[&hdr.encode(), head, tail[0], tail[1]]),
            None => self.send(&super::offload::joined(head, tail), meta, now),
        }
    }

    fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn medium(&self) -> Medium {
        if self.tap {
            Medium::Ethernet
        } else {
            Medium::Ip
        }
    }

    fn mtu(&self) -> usize {
        self.mtu.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::from_millis(0);
    use crate::ip::ipv4;
    use std::net::Ipv4Addr;

    /// A TCP/IPv4 packet with `options` bytes of TCP options and `payload` bytes of data.
    fn tcp_packet(options: usize, payload: usize) -> Vec<u8> {
        let mut tcp = vec![0u8; 20 + options + payload];
        tcp[12] = u8::try_from((20 + options) / 4).unwrap() << 4;
        ipv4::emit(
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            ipv4::PROTO_TCP,
            64,
            1,
            &tcp,
        )
    }

    #[test]
    fn header_wire_form_is_little_endian() {
        let h = VnetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4 | VNET_GSO_ECN,
            hdr_len: 0x0134,
            gso_size: 0x05a8,
            csum_start: 0x0014,
            csum_offset: 0x0010,
        };
        let wire = h.encode();
        assert_eq!(wire, [1, 0x81, 0x34, 0x01, 0xa8, 0x05, 0x14, 0, 0x10, 0]);
        assert_eq!(VnetHdr::decode(&wire), h);
        assert_eq!(VnetHdr::default().encode(), [0; VNET_HDR_LEN]);
    }

    #[test]
    fn received_headers_become_meta() {
        let meta = |flags, gso_type, gso_size| {
            VnetHdr {
                flags,
                gso_type,
                gso_size,
                ..VnetHdr::default()
            }
            .rx_meta()
        };
        assert_eq!(meta(0, VNET_GSO_NONE, 0), Ok(RxMeta::default()));
        let trusted = RxMeta {
            csum_trusted: true,
            gso_size: 0,
        };
        assert_eq!(meta(VNET_F_NEEDS_CSUM, VNET_GSO_NONE, 0), Ok(trusted));
        assert_eq!(meta(VNET_F_DATA_VALID, VNET_GSO_NONE, 0), Ok(trusted));
        let gro = RxMeta {
            csum_trusted: true,
            gso_size: 1448,
        };
        assert_eq!(meta(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 1448), Ok(gro));
        assert_eq!(
            meta(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 | VNET_GSO_ECN, 1448),
            Ok(gro)
        );
        // A TCP/IPv6 super-segment (TUN_F_TSO6) is taken as a TCP/IPv4 one is.
        let gro6 = RxMeta {
            csum_trusted: true,
            gso_size: 1428,
        };
        assert_eq!(meta(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, 1428), Ok(gro6));
        assert_eq!(
            meta(VNET_F_DATA_VALID, VNET_GSO_TCPV6 | VNET_GSO_ECN, 1428),
            Ok(gro6)
        );
        // Types we never enable are refused, whatever else the header says.
        assert_eq!(meta(0, VNET_GSO_UDP, 1472), Err(VNET_GSO_UDP));
        assert_eq!(meta(0, 5, 1472), Err(5)); // VIRTIO_NET_HDR_GSO_UDP_L4
    }

    #[test]
    fn headers_for_sending() {
        let plain = tcp_packet(0, 100);
        assert_eq!(
            VnetHdr::for_tx(&plain, 0, TxMeta::default()),
            Some(VnetHdr::default())
        );
        let tso = TxMeta {
            gso_size: 1448,
            csum_partial: true,
        };
        // 20 bytes of IP, 32 of TCP (12 of options).
        let p = tcp_packet(12, 3000);
        assert_eq!(
            VnetHdr::for_tx(&p, 0, tso),
            Some(VnetHdr {
                flags: VNET_F_NEEDS_CSUM,
                gso_type: VNET_GSO_TCPV4,
                hdr_len: 52,
                gso_size: 1448,
                csum_start: 20,
                csum_offset: 16,
            })
        );
        // Checksum offload alone.
        let csum = TxMeta {
            gso_size: 0,
            csum_partial: true,
        };
        let h = VnetHdr::for_tx(&p, 0, csum).unwrap();
        assert_eq!((h.flags, h.gso_type, h.gso_size), (VNET_F_NEEDS_CSUM, 0, 0));
        // On a TAP the link header comes first.
        let mut frame = vec![0u8; ETH_HEADER_LEN];
        frame.extend_from_slice(&p);
        let h = VnetHdr::for_tx(&frame, ETH_HEADER_LEN, tso).unwrap();
        assert_eq!((h.csum_start, h.hdr_len), (34, 66));
        // Not TCP/IPv4: no header can describe it.
        let icmp = ipv4::emit(
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            ipv4::PROTO_ICMP,
            64,
            1,
            &[8, 0, 0, 0],
        );
        assert_eq!(VnetHdr::for_tx(&icmp, 0, tso), None);
        assert_eq!(VnetHdr::for_tx(&[], 0, tso), None);
        assert_eq!(VnetHdr::for_tx(&p[..40], 0, tso), None);

        // TCP/IPv6: the checksum starts after the 40-byte fixed header, the type is TCPV6.
        let (a, b) = (
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        let seg = crate::tcp::segment::Segment {
            src_port: 80,
            dst_port: 40000,
            payload: vec![7; 3000],
            ..crate::tcp::segment::Segment::default()
        };
        let p6 = crate::ip::ipv6::emit(a, b, crate::ip::ipv6::NEXT_TCP, 64, &seg.emit(a, b));
        assert_eq!(
            VnetHdr::for_tx(&p6, 0, tso),
            Some(VnetHdr {
                flags: VNET_F_NEEDS_CSUM,
                gso_type: VNET_GSO_TCPV6,
                hdr_len: 60,
                gso_size: 1448,
                csum_start: 40,
                csum_offset: 16,
            })
        );
        let h = VnetHdr::for_tx(&p6, 0, csum).unwrap();
        assert_eq!((h.gso_type, h.csum_start), (VNET_GSO_NONE, 40));
    }

    #[test]
    fn if_req_has_the_kernel_layout() {
        // struct ifreq is 40 bytes on Linux (IFNAMSIZ + a 24-byte union).
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::offset_of!(IfReq, flags), libc::IFNAMSIZ);
    }

    #[test]
    fn options_default_and_bad_names() {
        assert_eq!(
            TunOptions::default(),
            TunOptions {
                tap: false,
                offload: true,
                queues: 1
            }
        );
        let err = TunQueue::open_queues("a/b", &TunOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// A queue over an ordinary file instead of a TUN: what `send` writes can be read back,
    /// and `recv` reads what the test wrote (one packet per file, as a TUN read is one
    /// packet).
    fn file_queue(path: &std::path::Path, offloads: Offloads) -> TunQueue {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        TunQueue {
            file,
            name: "test".into(),
            tap: false,
            offloads,
            mtu: Arc::new(AtomicUsize::new(DEFAULT_MTU)),
            stats: TunQueueStats::default(),
        }
    }

    fn temp_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tunstack-tunq-{}-{tag}", std::process::id()))
    }

    /// A TCP/IPv4 super-segment with a partial checksum, as the stack emits it with TSO.
    fn super_segment(payload: usize) -> Vec<u8> {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));
        let mut tcp = vec![0u8; 20 + payload];
        tcp[12] = 5 << 4;
        tcp[13] = 0x18; // PSH ACK
        let len = u16::try_from(tcp.len()).unwrap();
        let partial = !ipv4::checksum_with(ipv4::pseudo_header_sum(src, dst, 6, len), &[]);
        tcp[16..18].copy_from_slice(&partial.to_be_bytes());
        ipv4::emit(src, dst, ipv4::PROTO_TCP, 64, 1, &tcp)
    }

    const TSO: TxMeta = TxMeta {
        gso_size: 1000,
        csum_partial: true,
    };

    #[test]
    fn send_writes_header_and_packet_in_one_write() {
        let path = temp_path("vnet-send");
        let all = Offloads {
            vnet_hdr: true,
            rx_csum: true,
            rx_tso4: true,
            tx_tso4: true,
            rx_tso6: true,
            tx_tso6: true,
        };
        let mut q = file_queue(&path, all);
        let p = super_segment(2500);
        q.send(&p, TSO, T0).unwrap();
        let written = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let (hdr, packet) = written.split_at(VNET_HDR_LEN);
        let hdr = VnetHdr::decode(hdr.try_into().unwrap());
        assert_eq!(hdr, VnetHdr::for_tx(&p, 0, TSO).unwrap());
        assert_eq!(
            (hdr.gso_type, hdr.gso_size, hdr.hdr_len),
            (VNET_GSO_TCPV4, 1000, 40)
        );
        assert_eq!(packet, &p[..], "the packet follows the header unchanged");
        assert_eq!(q.stats().soft_segmented, 0);
    }

    #[test]
    fn send_without_tso_cuts_in_software() {
        for (tag, offloads) in [
            ("plain", Offloads::default()),
            (
                "csum-only",
                Offloads {
                    vnet_hdr: true,
                    rx_csum: true,
                    ..Offloads::default()
                },
            ),
        ] {
            let path = temp_path(tag);
            let mut q = file_queue(&path, offloads);
            q.send(&super_segment(2500), TSO, T0).unwrap();
            let written = std::fs::read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            // The writes, back to back: [header] packet, [header] packet, ...
            let mut rest = &written[..];
            let mut payloads = Vec::new();
            while !rest.is_empty() {
                if offloads.vnet_hdr {
                    let (h, r) = rest.split_at(VNET_HDR_LEN);
                    assert_eq!(h, &[0; VNET_HDR_LEN], "{tag}: nothing left to offload");
                    rest = r;
                }
                let ip = crate::ip::Ipv4Packet::parse(rest).unwrap();
                let seg = crate::tcp::segment::Segment::parse(ip.src, ip.dst, ip.payload).unwrap();
                payloads.push(seg.payload.len());
                rest = &rest[ip.bytes.len()..];
            }
            assert_eq!(payloads, [1000, 1000, 500], "{tag}");
            assert_eq!(q.stats().soft_segmented, 1, "{tag}");
            // Nothing to cut: an ICMP packet asking for TSO is refused, not mangled.
            let icmp = ipv4::emit(
                Ipv4Addr::new(10, 0, 0, 2),
                Ipv4Addr::new(10, 0, 0, 1),
                ipv4::PROTO_ICMP,
                64,
                1,
                &[0, 0, 0xff, 0xff],
            );
            let err = q.send(&icmp, TSO, T0).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{tag}");
        }
    }

    #[test]
    fn recv_strips_and_decodes_the_header() {
        let path = temp_path("vnet-recv");
        let all = Offloads {
            vnet_hdr: true,
            rx_csum: true,
            rx_tso4: true,
            tx_tso4: true,
            rx_tso6: true,
            tx_tso6: true,
        };
        let p = super_segment(3000);
        let hdr = VnetHdr {
            flags: VNET_F_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut q = file_queue(&path, all);
        q.file.write_all(&hdr.encode()).unwrap();
        q.file.write_all(&p).unwrap();
        std::io::Seek::rewind(&mut q.file).unwrap();
        let mut buf = vec![0u8; q.recv_buf_len()];
        let (n, meta) = q.recv(&mut buf, T0).unwrap().unwrap();
        assert_eq!(
            &buf[..n],
            &p[..],
            "the packet lands at the start of the buffer"
        );
        assert_eq!(
            meta,
            RxMeta {
                csum_trusted: true,
                gso_size: 1448
            }
        );

        // A header announcing a TCP/IPv6 super-segment (TUN_F_TSO6) is taken too.
        let (a, b) = (
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        let seg = crate::tcp::segment::Segment {
            payload: vec![9; 3000],
            ..crate::tcp::segment::Segment::default()
        };
        let p6 = crate::ip::ipv6::emit(a, b, crate::ip::ipv6::NEXT_TCP, 64, &seg.emit(a, b));
        let mut q = file_queue(&path, all);
        let v6 = VnetHdr {
            gso_type: VNET_GSO_TCPV6,
            hdr_len: 60,
            gso_size: 1428,
            csum_start: 40,
            ..hdr
        };
        q.file.write_all(&v6.encode()).unwrap();
        q.file.write_all(&p6).unwrap();
        std::io::Seek::rewind(&mut q.file).unwrap();
        let (n, meta) = q.recv(&mut buf, T0).unwrap().unwrap();
        assert_eq!(&buf[..n], &p6[..]);
        assert_eq!(
            meta,
            RxMeta {
                csum_trusted: true,
                gso_size: 1428
            }
        );
        assert_eq!(q.stats().unknown_gso, 0);

        // A header announcing UDP fragmentation offload, never asked for: dropped and
        // counted; the next read finds nothing (end of file here), "nothing waiting".
        let mut q = file_queue(&path, all);
        let ufo = VnetHdr {
            gso_type: VNET_GSO_UDP,
            ..hdr
        };
        q.file.write_all(&ufo.encode()).unwrap();
        q.file.write_all(&p).unwrap();
        std::io::Seek::rewind(&mut q.file).unwrap();
        assert_eq!(q.recv(&mut buf, T0).unwrap(), None);
        assert_eq!(q.stats().unknown_gso, 1);

        // Fewer bytes than a header: dropped and counted.
        let mut q = file_queue(&path, all);
        q.file.write_all(&[1, 2, 3]).unwrap();
        std::io::Seek::rewind(&mut q.file).unwrap();
        assert_eq!(q.recv(&mut buf, T0).unwrap(), None);
        assert_eq!(q.stats().short_reads, 1);
        let _ = std::fs::remove_file(&path);
    }

    fn assert_send<T: Send>() {}

    #[test]
    fn queues_can_move_to_their_threads() {
        assert_send::<TunQueue>();
    }
}
