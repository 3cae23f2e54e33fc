//! Checks of the command line made before any device exists: a mistake is reported with
//! the flag and the value that caused it, and leaves nothing behind (no TUN, no route).
//!
//! The one check that looks at the machine is the routing table. The kernel sends a
//! packet for the stack's address (`--ip`) over the route with the longest matching
//! prefix (RFC 1812 §5.2.4.3). If another interface already has a route at least as long
//! as ours that covers `--ip` (typically a second `serve` on the same subnet), the route
//! our device gets loses and the stack would say "listening" but never see a packet.
//!
//! The table is read from `/proc/net/route` rather than by running `ip route get`:
//! before our device exists `ip route get` can only name where the packet would go
//! *today* (the default route, say) without the prefix length we need to compare, and
//! the proc file is the kernel's main table itself, with no program or output format in
//! between. It lists the main table only, which is the one interface routes go to.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::serve::LinkOptions;

/// One IPv4 route of the main table: the interface and the prefix it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The interface the route sends packets to.
    pub iface: String,
    /// The network address.
    pub dest: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Route {
    /// Whether `addr` falls inside this route's prefix.
    pub fn covers(&self, addr: Ipv4Addr) -> bool {
        let mask = mask(self.prefix);
        u32::from(addr) & mask == u32::from(self.dest) & mask
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Parses `/proc/net/route`: a header line, then one route per line with the interface,
/// destination, gateway, flags, refcount, use, metric and mask, the addresses as 8 hex
/// digits in the host's byte order. Lines that do not parse are skipped.
pub fn parse_proc_net_route(text: &str) -> Vec<Route> {
    let hex_addr = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, mask) = (f.first()?, f.get(1)?, f.get(7)?);
            let mask = u32::from(hex_addr(mask)?);
            // A contiguous mask: its ones count is the prefix length.
            let prefix = u8::try_from(mask.leading_ones()).ok()?;
            if mask.count_ones() != mask.leading_ones() {
                return None;
            }
            Some(Route {
                iface: iface.to_string(),
                dest: hex_addr(dest)?,
                prefix,
            })
        })
        .collect()
}

/// The route of another interface that would take packets for `ip` away from a device
/// `ours` given the prefix `prefix`: one at least as long that covers `ip` (a default
/// route or a shorter one loses to ours, so it is no clash).
pub fn clashing_route<'a>(
    routes: &'a [Route],
    ours: &str,
    ip: Ipv4Addr,
    prefix: u8,
) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| r.iface != ours && r.prefix >= prefix && r.covers(ip))
        .max_by_key(|r| r.prefix)
}

/// `--host-ip`: `ADDRESS/PREFIX`.
pub fn parse_host_ip(value: &str) -> io::Result<(Ipv4Addr, u8)> {
    let bad = |why: &str| invalid(format!("--host-ip {value}: {why}"));
    let (addr, prefix) = value
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.0.0.1/24"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| bad(&format!("{addr:?} is not an IPv4 address")))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| bad(&format!("prefix {prefix:?} is not a number from 0 to 32")))?;
    Ok((addr, prefix))
}

/// Everything about the link flags that can be checked without touching the machine,
/// then the routing table (see the module doc).
pub fn check_link(link: &LinkOptions) -> io::Result<()> {
    let (host, prefix) = parse_host_ip(&link.host_ip)?;
    let ip = link.ip;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(invalid(format!(
            "--ip {ip}: not a unicast address a host can have"
        )));
    }
    if ip == host {
        return Err(invalid(format!(
            "--ip {ip} is the kernel side's own address (--host-ip {}): give the stack \
             another address in that subnet",
            link.host_ip
        )));
    }
    let subnet = Route {
        iface: String::new(),
        dest: Ipv4Addr::from(u32::from(host) & mask(prefix)),
        prefix,
    };
    // With a gateway (TAP mode) the stack may sit elsewhere; otherwise the kernel reaches
    // it only through the device's own subnet route.
    if link.gateway.is_none() {
        if !subnet.covers(ip) {
            return Err(invalid(format!(
                "--ip {ip} is outside --host-ip {} ({}/{prefix}): the kernel would not \
                 route packets for it to the device",
                link.host_ip, subnet.dest
            )));
        }
        // RFC 1122 §3.2.1.3: no host has the all-zeros or all-ones host number.
        let host_bits = u32::from(ip) & !mask(prefix);
        if prefix <= 30 && (host_bits == 0 || host_bits == !mask(prefix)) {
            return Err(invalid(format!(
                "--ip {ip} is the network or broadcast address of {}/{prefix}",
                subnet.dest
            )));
        }
    }
    if let (Some(ip6), Some(host6)) = (link.ip6, &link.host_ip6) {
        check_ip6(ip6, host6)?;
    }
    if !(crate::link::tun::MIN_MTU..=usize::from(u16::MAX)).contains(&link.mtu) {
        return Err(invalid(format!(
            "--mtu {}: out of range {}..=65535",
            link.mtu,
            crate::link::tun::MIN_MTU
        )));
    }
    if let Some(pcap) = &link.pcap {
        let dir = pcap
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(invalid(format!(
                "--pcap {}: the directory {} does not exist",
                pcap.display(),
                dir.display()
            )));
        }
    }
    check_routes(link, ip, prefix)
}

/// `--ip6` must be a unicast address other than the kernel side's (`--host-ip6`, an
/// IPv6 ADDRESS/PREFIX).
fn check_ip6(ip6: std::net::Ipv6Addr, host6: &str) -> io::Result<()> {
    let host: Option<std::net::Ipv6Addr> = host6
        .split_once('/')
        .filter(|(_, p)| p.parse::<u8>().is_ok_and(|p| p <= 128))
        .and_then(|(a, _)| a.parse().ok());
    let Some(host) = host else {
        return Err(invalid(format!(
            "--host-ip6 {host6}: expected IPV6-ADDRESS/PREFIX, e.g. fd00::1/64"
        )));
    };
    if ip6.is_unspecified() || ip6.is_loopback() || ip6.is_multicast() {
        return Err(invalid(format!(
            "--ip6 {ip6}: not a unicast address a host can have"
        )));
    }
    if ip6 == host {
        return Err(invalid(format!(
            "--ip6 {ip6} is the kernel side's own address (--host-ip6 {host6})"
        )));
    }
    Ok(())
}

fn check_routes(link: &LinkOptions, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let ours = link.tap.as_deref().unwrap_or(&link.tun);
    let table = match std::fs::read_to_string("/proc/net/route") {
        Ok(t) => t,
        Err(e) => {
            // Not fatal: the device may still work; only the warning is lost.
            log::warn!("cannot read /proc/net/route ({e}); not checking for a subnet clash");
            return Ok(());
        }
    };
    let routes = parse_proc_net_route(&table);
    match clashing_route(&routes, ours, ip, prefix) {
        Some(r) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "--host-ip {} --ip {ip}: {}/{} is already routed to {} in this network \
                 namespace, so packets for {ip} would go there and never reach {ours}. \
                 Is another tunstack running? Stop it, or pick a free subnet (e.g. \
                 --host-ip 10.0.9.1/24 --ip 10.0.9.2)",
                link.host_ip, r.dest, r.prefix, r.iface
            ),
        )),
        None => Ok(()),
    }
}

/// `serve --root DIR`: a directory we can list.
pub fn check_root(root: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(root)
        .map_err(|e| io::Error::new(e.kind(), format!("--root {}: {e}", root.display())))?;
    if !meta.is_dir() {
        return Err(invalid(format!(
            "--root {}: not a directory",
            root.display()
        )));
    }
    std::fs::read_dir(root)
        .map(|_| ())
        .map_err(|e| io::Error::new(e.kind(), format!("--root {}: {e}", root.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table as the kernel prints it (little-endian host): lo-less, a default route via
    /// eth0, 10.0.0.0/24 on tun0, 10.0.1.128/25 on tun1.
    const TABLE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
tun0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
tun1\t8001000A\t00000000\t0001\t0\t0\t0\t80FFFFFF\t0\t0\t0
";

    fn routes() -> Vec<Route> {
        // The fixture is written little-endian; read it as such whatever the host.
        let swapped: String = if cfg!(target_endian = "big") {
            TABLE
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        return format!("{l}\n");
                    }
                    let f: Vec<String> = l
                        .split('\t')
                        .enumerate()
                        .map(|(j, x)| match j {
                            1 | 2 | 7 => {
                                format!("{:08X}", u32::from_str_radix(x, 16).unwrap().swap_bytes())
                            }
                            _ => x.to_string(),
                        })
                        .collect();
                    format!("{}\n", f.join("\t"))
                })
                .collect()
        } else {
            TABLE.to_string()
        };
        parse_proc_net_route(&swapped)
    }

    #[test]
    fn the_route_table_parses() {
        let r = routes();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].iface.as_str(), r[0].prefix), ("eth0", 0));
        assert_eq!((r[1].dest, r[1].prefix), (Ipv4Addr::new(10, 0, 0, 0), 24));
        assert_eq!((r[2].dest, r[2].prefix), (Ipv4Addr::new(10, 0, 1, 128), 25));
    }

    #[test]
    fn a_route_as_long_as_ours_on_another_device_clashes() {
        let r = routes();
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            clashing_route(&r, "tun9", ip, 24).map(|r| r.iface.as_str()),
            Some("tun0")
        );
        // Our own device's route is no clash; a shorter route (the default) loses to ours.
        assert_eq!(clashing_route(&r, "tun0", ip, 24), None);
        assert_eq!(
            clashing_route(&r, "tun9", Ipv4Addr::new(10, 0, 2, 2), 24),
            None
        );
        // A longer route covering our --ip wins over ours: a clash.
        let ip = Ipv4Addr::new(10, 0, 1, 200);
        assert_eq!(
            clashing_route(&r, "tun9", ip, 24).map(|r| r.iface.as_str()),
            Some("tun1")
        );
        // Outside it, no clash.
        assert_eq!(
            clashing_route(&r, "tun9", Ipv4Addr::new(10, 0, 1, 2), 24),
            None
        );
    }

    #[test]
    fn host_ip_errors_name_the_flag_and_value() {
        for (value, says) in [
            ("10.0.0.1", "expected ADDRESS/PREFIX"),
            ("10.0.0.300/24", "\"10.0.0.300\" is not an IPv4 address"),
            ("10.0.0.1/33", "prefix \"33\" is not a number from 0 to 32"),
        ] {
            let e = parse_host_ip(value).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--host-ip {value}: ")), "{e}");
            assert!(e.contains(says), "{e}");
        }
        assert_eq!(
            parse_host_ip("10.0.0.1/24").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 1), 24)
        );
    }
}
