//! The Linux TUN device: a virtual network interface whose "wire" is a file descriptor.
//!
//! Opening `/dev/net/tun` and issuing `TUNSETIFF` (done by the `tun-tap` crate) creates an
//! interface such as `tun0` in the current network namespace. Packets the kernel routes to
//! it come out of `read(2)` on our descriptor, one bare IP packet per read (we ask for
//! `IFF_NO_PI`, so there is no 4-byte packet-information prefix either); each `write(2)`
//! injects one packet into the kernel as if it had arrived on that interface.
//!
//! The kernel side needs an address and must be up before it routes anything to us:
//! [`TunDevice::configure`] runs `ip addr add` / `ip link set ... up` for that.
//!
//! **Lifetime.** The TUN is *non-persistent* (we never call `TUNSETPERSIST`): the kernel
//! deletes the interface, with its addresses and routes, when the last descriptor is closed —
//! i.e. when the last of [`TunDevice`], [`TunReader`] and [`TunWriter`] is dropped, or when
//! the process exits, even by a crash. Nothing has to be cleaned up by hand.
//!
//! **Blocking.** tun-tap offers no read timeout, so reads block. This handle is for programs
//! built from blocking threads — the `tunstack-wan` forwarder: [`TunDevice::split`] gives a
//! reader thread that blocks in [`TunReader::recv`] and a [`TunWriter`]. To wake a reader
//! that is blocked for good, [`TunWriter::delete_link`] removes the interface; the kernel then
//! fails the pending read, and the thread can exit. The stack's runtimes drive the
//! non-blocking [`super::TunQueue`] instead, through the [`super::Device`] trait.
//!
//! Creating a TUN needs `CAP_NET_ADMIN` (root, or `setcap cap_net_admin=eip` on the binary).

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tun_tap::{Iface, Mode};

/// The clone device the kernel provides for creating TUN/TAP interfaces.
pub const TUN_PATH: &str = "/dev/net/tun";
/// Interface names are at most 15 bytes (`IFNAMSIZ` 16 including the NUL).
pub const MAX_NAME_LEN: usize = 15;
/// MTU assumed until [`TunDevice::configure`] sets one (the kernel's TUN default).
pub const DEFAULT_MTU: usize = 1500;
/// Smallest MTU IPv4 allows (RFC 791 §3.2: every host must accept 68-byte datagrams).
pub const MIN_MTU: usize = 68;

/// `EFAULT` on Linux: what a read returns after the interface was deleted under it.
pub(super) const EFAULT: i32 = 14;
/// `EBUSY` on Linux: the interface name is taken by another TUN that is open.
const EBUSY: i32 = 16;

/// State shared by the device and its split halves.
#[derive(Debug)]
struct Shared {
    iface: Iface,
    mtu: AtomicUsize,
}

impl Shared {
    fn name(&self) -> &str {
        self.iface.name()
    }

    fn mtu(&self) -> usize {
        self.mtu.load(Ordering::Relaxed)
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.iface.recv(buf).map_err(|e| {
            // A read on a TUN whose interface was deleted fails with EFAULT (the kernel
            // detaches the queue); say what happened instead of "Bad address".
            if e.raw_os_error() == Some(EFAULT) {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("TUN device {} was deleted", self.name()),
                )
            } else {
                e
            }
        })
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        let n = self.iface.send(packet)?;
        // A TUN write is one packet, all or nothing; a short count would mean a corrupt packet.
        if n != packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "short write to {}: {n} of {} bytes",
                    self.name(),
                    packet.len()
                ),
            ));
        }
        Ok(())
    }
}

/// An open TUN interface (layer 3: bare IP packets, no Ethernet header).
///
/// Reads block (no timeout): use [`TunDevice::split`] and a reader thread. Dropping it (and
/// its halves) removes the interface.
#[derive(Debug)]
pub struct TunDevice {
    shared: Arc<Shared>,
}

/// The receiving half of a [`TunDevice`], for a dedicated thread that blocks in
/// [`TunReader::recv`]. Cloning shares the same descriptor.
#[derive(Debug, Clone)]
pub struct TunReader {
    shared: Arc<Shared>,
}

/// The sending half of a [`TunDevice`]. Cloning shares the same descriptor; writes from
/// several threads are safe (each write is one whole packet).
#[derive(Debug, Clone)]
pub struct TunWriter {
    shared: Arc<Shared>,
}

impl TunDevice {
    /// Creates the TUN interface `name` in the current network namespace (it starts down and
    /// without an address; see [`TunDevice::configure`]). The kernel may pick a different name
    /// if `name` is empty or contains `%d`; [`TunDevice::name`] tells the real one.
    ///
    /// Errors carry a message saying what to do: `/dev/net/tun` missing (`NotFound`), missing
    /// `CAP_NET_ADMIN` (`PermissionDenied`), name in use, or an invalid name (`InvalidInput`).
    pub fn open(name: &str) -> io::Result<TunDevice> {
        Self::open_mode(name, Mode::Tun)
    }

    /// Creates the **TAP** interface `name`: like [`TunDevice::open`], but the device works
    /// at layer 2 — each read returns one Ethernet frame (no preamble, no FCS) and each write
    /// sends one. The host then needs an Ethernet + ARP layer
    /// ([`super::ethernet_layer::EthernetLayer`]). The kernel side gets a random MAC of its own.
    pub fn open_tap(name: &str) -> io::Result<TunDevice> {
        Self::open_mode(name, Mode::Tap)
    }

    fn open_mode(name: &str, mode: Mode) -> io::Result<TunDevice> {
        validate_name(name)?;
        check_tun_path()?;
        let iface = Iface::without_packet_info(name, mode).map_err(|e| open_error(name, e))?;
        log::info!(
            "created {} device {}",
            if mode == Mode::Tap { "TAP" } else { "TUN" },
            iface.name()
        );
        Ok(TunDevice {
            shared: Arc::new(Shared {
                iface,
                mtu: AtomicUsize::new(DEFAULT_MTU),
            }),
        })
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The MTU set by [`TunDevice::configure`].
    pub fn mtu(&self) -> usize {
        self.shared.mtu()
    }

    /// Configures the kernel's side of the link: assigns `host_cidr` (e.g. `"10.0.0.1/24"`,
    /// the address the *kernel* uses on this link; our stack then answers as another address
    /// of that subnet), sets the MTU and brings the interface up. Runs
    /// `ip addr add <cidr> dev <name>` and `ip link set dev <name> mtu <mtu> up`.
    ///
    /// Errors: `InvalidInput` for a malformed CIDR or an MTU outside 68..=65535, `NotFound`
    /// when the `ip` command (iproute2) is missing, `Other` with `ip`'s message when it fails
    /// (e.g. the address is already assigned).
    pub fn configure(&self, host_cidr: &str, mtu: usize) -> io::Result<()> {
        configure_link(self.name(), host_cidr, mtu)?;
        self.shared.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    /// Adds an IPv6 address (e.g. `"fd00::1/64"`) to the kernel's side of the link, without
    /// duplicate address detection (`nodad`: the link is ours alone, and DAD would delay the
    /// address by a second or more). Runs `ip -6 addr add <cidr> dev <name> nodad`.
    pub fn configure_ipv6(&self, host_cidr6: &str) -> io::Result<()> {
        configure_link_ipv6(self.name(), host_cidr6)
    }

    /// Splits the device into a reader (for a thread that blocks in `recv`) and a writer.
    /// Both are `Send`, share the descriptor, and the interface lives until both are dropped.
    pub fn split(self) -> (TunReader, TunWriter) {
        (
            TunReader {
                shared: Arc::clone(&self.shared),
            },
            TunWriter {
                shared: self.shared,
            },
        )
    }
}

impl TunReader {
    /// Blocks until one IP packet arrives and copies it into `buf` (truncating if `buf` is
    /// smaller than the packet: size it to at least the MTU). Fails with `NotConnected` once
    /// the interface was deleted ([`TunWriter::delete_link`]).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.shared.recv(buf)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The MTU set by [`TunDevice::configure`].
    pub fn mtu(&self) -> usize {
        self.shared.mtu()
    }
}

impl TunWriter {
    /// Sends one IP packet into the kernel.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.shared.send(packet)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The MTU set by [`TunDevice::configure`].
    pub fn mtu(&self) -> usize {
        self.shared.mtu()
    }

    /// Deletes the interface now (`ip link delete dev <name>`), without waiting for the
    /// descriptors to close. The kernel detaches our descriptor and fails any `recv` blocked
    /// in another thread, which is how a reader thread is stopped at shutdown. Later sends
    /// and receives fail.
    pub fn delete_link(&self) -> io::Result<()> {
        delete_link(self.name())
    }
}

/// Configures the kernel's side of the TUN/TAP interface `name` (what
/// [`TunDevice::configure`] does, for devices opened another way such as
/// [`super::tunq::TunQueue`]): assigns `host_cidr`, sets the MTU and brings the link up, by
/// running `ip addr add <cidr> dev <name>` and `ip link set dev <name> mtu <mtu> up`.
///
/// Errors: `InvalidInput` for a malformed CIDR or an MTU outside 68..=65535, `NotFound`
/// when the `ip` command (iproute2) is missing, `Other` with `ip`'s message when it fails.
pub fn configure_link(name: &str, host_cidr: &str, mtu: usize) -> io::Result<()> {
    parse_cidr(host_cidr)?;
    if !(MIN_MTU..=usize::from(u16::MAX)).contains(&mtu) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("MTU {mtu} out of range {MIN_MTU}..=65535"),
        ));
    }
    run_ip(&["addr", "add", host_cidr, "dev", name])?;
    run_ip(&["link", "set", "dev", name, "mtu", &mtu.to_string(), "up"])?;
    log::info!("configured {name}: {host_cidr}, mtu {mtu}, up");
    Ok(())
}

/// [`TunDevice::configure_ipv6`] for the interface `name` (any device, e.g. a
/// [`super::tunq::TunQueue`]'s).
pub fn configure_link_ipv6(name: &str, host_cidr6: &str) -> io::Result<()> {
    run_ip(&["-6", "addr", "add", host_cidr6, "dev", name, "nodad"])?;
    log::info!("configured {name}: {host_cidr6}");
    Ok(())
}

/// Sets how many packets the kernel queues for us on interface `name` (`ip link set dev
/// NAME txqueuelen LEN`): on a TUN that is the ring of packets waiting for our reads, 500
/// by default, which a burst from thousands of connections overflows (the drops then cost
/// the senders a retransmission timeout each).
pub fn set_txqueuelen(name: &str, len: usize) -> io::Result<()> {
    run_ip(&["link", "set", "dev", name, "txqueuelen", &len.to_string()])
}

/// Deletes the interface `name` now (`ip link delete dev <name>`), without waiting for its
/// descriptors to close: the kernel detaches every queue, so blocked reads fail and later
/// reads and writes fail too.
pub fn delete_link(name: &str) -> io::Result<()> {
    run_ip(&["link", "delete", "dev", name])
}

/// Rejects names the kernel would truncate or refuse, with a clear message.
pub(super) fn validate_name(name: &str) -> io::Result<()> {
    let bad = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}: {why}"),
        ))
    };
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return bad("contains '/', ':', NUL or whitespace");
    }
    Ok(())
}

/// Fails with a hint when the clone device is missing.
pub(super) fn check_tun_path() -> io::Result<()> {
    if !Path::new(TUN_PATH).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{TUN_PATH} does not exist: load the tun kernel module (`modprobe tun`), \
                 or pass the device into the container (`--device /dev/net/tun`)"
            ),
        ));
    }
    Ok(())
}

/// Explains the usual reasons TUNSETIFF fails.
pub(super) fn open_error(name: &str, e: io::Error) -> io::Error {
    let hint = if e.kind() == io::ErrorKind::PermissionDenied {
        "creating a TUN device needs CAP_NET_ADMIN: run as root, or grant it with \
         `sudo setcap cap_net_admin=eip <binary>`"
    } else if e.raw_os_error() == Some(EBUSY) {
        "the name is in use by another open TUN/TAP device"
    } else {
        "TUNSETIFF failed"
    };
    io::Error::new(
        e.kind(),
        format!("cannot create TUN device {name:?}: {hint} ({e})"),
    )
}

/// Checks `a.b.c.d/len` before handing it to `ip`.
fn parse_cidr(cidr: &str) -> io::Result<(Ipv4Addr, u8)> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid IPv4 CIDR {cidr:?}: expected ADDRESS/PREFIX, e.g. 10.0.0.1/24"),
        )
    };
    let (addr, len) = cidr.split_once('/').ok_or_else(invalid)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
    let len: u8 = len.parse().map_err(|_| invalid())?;
    if len > 32 {
        return Err(invalid());
    }
    Ok((addr, len))
}

/// Runs `ip ARGS...`, turning a missing binary or a failure into a descriptive error.
fn run_ip(args: &[&str]) -> io::Result<()> {
    let cmdline = format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            io::Error::new(
                io::ErrorKind::NotFound,
                "the `ip` command (iproute2) is not installed or not on PATH",
            )
        } else {
            io::Error::new(e.kind(), format!("cannot run `{cmdline}`: {e}"))
        }
    })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{cmdline}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    log::debug!("ran `{cmdline}`");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{icmp, ipv4, Ipv4Packet};
    use std::sync::atomic::AtomicU32;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Set in the environment of the re-executed test binary inside the namespace.
    const CHILD_ENV: &str = "TUNSTACK_TUN_TEST_CHILD";
    /// Full name of the test that runs inside the namespace.
    const CHILD_TEST: &str = "link::tun::tests::ping_through_tun_child";
    const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const STACK: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    fn assert_send<T: Send + 'static>() {}

    #[test]
    fn halves_are_send() {
        assert_send::<TunDevice>();
        assert_send::<TunReader>();
        assert_send::<TunWriter>();
    }

    #[test]
    fn names_are_validated() {
        for bad in [
            "this-name-is-too-long",
            "a/b",
            "a b",
            "a:1",
            "a\0",
            ".",
            "..",
        ] {
            let err = TunDevice::open(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("invalid interface name"));
        }
        assert!(validate_name("tun0").is_ok());
        assert!(validate_name("tsl%d").is_ok());
        assert!(validate_name("").is_ok());
    }

    #[test]
    fn cidrs_are_validated() {
        assert_eq!(
            parse_cidr("10.0.0.1/24").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 1), 24)
        );
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0/24",
            "x/24",
            "10.0.0.1/-1",
            "",
        ] {
            assert_eq!(
                parse_cidr(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn open_errors_explain_themselves() {
        let perm = open_error("tun0", io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(perm.kind(), io::ErrorKind::PermissionDenied);
        assert!(perm.to_string().contains("CAP_NET_ADMIN"));
        let busy = open_error("tun0", io::Error::from_raw_os_error(EBUSY));
        assert!(busy.to_string().contains("in use"));
    }

    /// Why this machine cannot run the namespace test, if it cannot.
    fn missing_requirements() -> Option<String> {
        if !Path::new(TUN_PATH).exists() {
            return Some(format!("{TUN_PATH} is missing"));
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        // Effective uid is the second number on the Uid: line.
        if field("Uid:").get(1).map(String::as_str) != Some("0") {
            return Some("not running as root".into());
        }
        let caps = field("CapEff:")
            .first()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        // CAP_NET_ADMIN = 12 (TUN, addresses), CAP_SYS_ADMIN = 21 (network namespaces).
        if caps & (1 << 12) == 0 || caps & (1 << 21) == 0 {
            return Some("missing CAP_NET_ADMIN or CAP_SYS_ADMIN".into());
        }
        for tool in ["ip", "ping"] {
            let found = Command::new(tool).arg("-V").output().is_ok();
            if !found {
                return Some(format!("`{tool}` is not installed"));
            }
        }
        None
    }

    /// A network namespace created for one test and deleted on drop, even if the test fails.
    struct Netns {
        name: String,
    }

    impl Netns {
        fn create() -> Netns {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("tsl-{}-{n}", std::process::id());
            run_ip(&["netns", "add", &name]).expect("create network namespace");
            Netns { name }
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            if let Err(e) = run_ip(&["netns", "delete", &self.name]) {
                eprintln!("warning: could not delete namespace {}: {e}", self.name);
            }
        }
    }

    /// Creates a fresh namespace and re-runs this test binary inside it, restricted to
    /// [`CHILD_TEST`]: the TUN, its 10.x addresses and the pings never touch the root
    /// namespace.
    #[test]
    fn ping_through_tun_in_netns() {
        if let Some(why) = missing_requirements() {
            assert!(std::env::var_os("CI").is_none(), "CI is set but: {why}");
            eprintln!("SKIP ping_through_tun_in_netns: {why}");
            return;
        }
        let ns = Netns::create();
        // Resolve our own path here: inside `ip netns exec`, /proc/self/exe would be `ip`.
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(&exe)
            .args([CHILD_TEST, "--exact", "--include-ignored", "--nocapture"])
            // The child checks it runs in a different namespace than this one.
            .env(CHILD_ENV, current_netns())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("--- child stdout ---\n{stdout}\n--- child stderr ---\n{stderr}");
        assert!(out.status.success(), "child test failed: {}", out.status);
        // Guard against the filter matching nothing and "passing" vacuously.
        assert!(stdout.contains("1 passed"), "child test did not run");
        drop(ns);
    }

    /// Our network namespace, e.g. `net:[4026531840]`.
    fn current_netns() -> String {
        let link = std::fs::read_link("/proc/self/ns/net").expect("read /proc/self/ns/net");
        link.to_string_lossy().into_owned()
    }

    /// The body of [`ping_through_tun_in_netns`], run only inside its namespace.
    #[test]
    #[ignore = "run by ping_through_tun_in_netns inside a fresh network namespace"]
    fn ping_through_tun_child() {
        let Some(parent_ns) = std::env::var_os(CHILD_ENV) else {
            eprintln!("SKIP: only runs inside the namespace made by ping_through_tun_in_netns");
            return;
        };
        assert_ne!(
            parent_ns.to_string_lossy(),
            current_netns(),
            "refusing to configure a TUN in the parent's network namespace"
        );

        // A non-persistent TUN disappears when its descriptor is closed.
        let tmp = TunDevice::open("tsl1").unwrap();
        assert_eq!(tmp.name(), "tsl1");
        assert!(run_ip(&["link", "show", "dev", "tsl1"]).is_ok());
        drop(tmp);
        assert!(
            run_ip(&["link", "show", "dev", "tsl1"]).is_err(),
            "tsl1 outlived its fd"
        );

        let dev = TunDevice::open("tsl0").unwrap();
        assert_eq!(dev.mtu(), DEFAULT_MTU);
        dev.configure(&format!("{HOST}/24"), 1400).unwrap();
        assert_eq!(dev.mtu(), 1400);
        // A second configure of the same address fails with ip's message.
        let again = dev.configure(&format!("{HOST}/24"), 1400).unwrap_err();
        assert!(again.to_string().contains("ip addr add"), "{again}");

        let (reader, writer) = dev.split();
        assert_eq!((reader.mtu(), writer.mtu()), (1400, 1400));
        let (done_tx, done_rx) = mpsc::channel();
        let responder_writer = writer.clone();
        std::thread::spawn(move || {
            let mut replies = 0u32;
            let mut buf = vec![0u8; 2048];
            let end = loop {
                let n = match reader.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) => break e,
                };
                // The kernel also sends IPv6 router solicitations etc.: parse errors are fine.
                let Ok(p) = Ipv4Packet::parse(buf.get(..n).unwrap_or_default()) else {
                    continue;
                };
                if p.dst != STACK || p.protocol != ipv4::PROTO_ICMP {
                    continue;
                }
                if let Ok(Some(reply)) = icmp::handle(p.payload) {
                    let pkt = ipv4::emit(p.dst, p.src, ipv4::PROTO_ICMP, 64, p.id, &reply);
                    responder_writer.send(&pkt).unwrap();
                    replies += 1;
                }
            };
            let _ = done_tx.send((replies, end));
        });

        // Default size, a near-MTU payload (1372 + 8 + 20 = 1400) and an odd length.
        for size in ["56", "1372", "1001"] {
            let out = Command::new("ping")
                .args(["-n", "-c1", "-W2", "-s", size])
                .arg(STACK.to_string())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ping -s {size} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        // Deleting the link wakes the blocked reader with an error, so its thread ends.
        writer.delete_link().unwrap();
        let (replies, end) = done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reader thread still blocked after delete_link");
        assert_eq!(end.kind(), io::ErrorKind::NotConnected, "{end}");
        assert_eq!(replies, 3);
        assert!(writer.send(&[0x45; 20]).is_err());
    }
}
