//! Building the chain of middleware around a runtime's devices, in one place for every
//! runtime.
//!
//! ```text
//!   stack ──▶ FaultDevice ──▶ PcapDevice ──▶ TunQueue / MemDevice ──▶ wire
//!   (D: Device)  --loss …        --pcap         the real device
//! ```
//!
//! A runtime is generic over its device (`EventLoop<D: Device>`, `stack::start<D>`), so a
//! chain is a type: `FaultDevice<PcapDevice<TunQueue, _>>`, or plain `TunQueue` when nothing
//! is asked for — and then the runtime calls the TUN directly, with nothing in between. As
//! the chain is only known at run time (from the command line), [`Middleware::apply`]
//! picks one of the four chains and hands the wrapped devices to a [`DeviceUser`], whose
//! generic [`DeviceUser::run`] is compiled once per chain.
//!
//! The capture sits inside the fault injector, next to the device, so that it records the
//! wire as `tcpdump` on the interface would: a packet the injector drops on the way out is
//! not in it, one it drops on the way in is.

use std::io::Write;

use super::fault::{FaultConfig, FaultDevice};
use super::pcap::{PcapDevice, SharedPcap};
use super::Device;

/// What runs on the devices once they are wrapped: the runtime's assembly.
pub trait DeviceUser {
    /// What [`DeviceUser::run`] returns.
    type Output;
    /// Runs on `devices` (one per queue), whatever the chain made of them.
    fn run<D: Device + 'static>(self, devices: Vec<D>) -> Self::Output;
}

/// The middleware a runtime's devices get: fault injection and capture, each optional.
#[derive(Debug)]
pub struct Middleware<W: Write> {
    /// Faults to inject in both directions, and their seed (queue `i` uses `seed + i`).
    pub faults: Option<(FaultConfig, u64)>,
    /// One capture for every queue.
    pub pcap: Option<SharedPcap<W>>,
}

impl<W: Write> Default for Middleware<W> {
    fn default() -> Self {
        Middleware {
            faults: None,
            pcap: None,
        }
    }
}

impl<W: Write + Send + 'static> Middleware<W> {
    /// The fault configuration, if it changes anything.
    fn active_faults(&self) -> Option<&(FaultConfig, u64)> {
        self.faults.as_ref().filter(|(f, _)| !f.is_noop())
    }

    /// Whether the chain lets the device's offloads through: a fault injector declines
    /// them ([`FaultDevice`]), so the device should be opened without. A capture keeps them.
    pub fn keeps_offloads(&self) -> bool {
        self.active_faults().is_none()
    }

    /// Queue `i`'s fault injector around `device`.
    fn faulty<E: Device>(&self, i: usize, device: E) -> FaultDevice<E> {
        let (config, seed) = self.active_faults().cloned().unwrap_or_default();
        FaultDevice::new(device, config, seed.wrapping_add(i as u64))
    }

    /// Wraps every device of `devices` in the chain and runs `user` on them.
    pub fn apply<D: Device + 'static, U: DeviceUser>(&self, devices: Vec<D>, user: U) -> U::Output {
        match (self.pcap.as_ref(), self.active_faults().is_some()) {
            (None, false) => user.run(devices),
            (Some(pcap), false) => user.run(
                devices
                    .into_iter()
                    .map(|d| PcapDevice::shared(d, pcap.clone()))
                    .collect(),
            ),
            (None, true) => user.run(
                devices
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| self.faulty(i, d))
                    .collect(),
            ),
            (Some(pcap), true) => user.run(
                devices
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| self.faulty(i, PcapDevice::shared(d, pcap.clone())))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::memory::{pair, MemDevice};
    use crate::link::offload::TxMeta;
    use crate::link::pcap::{PcapReader, PcapWriter};
    use crate::time::Instant;
    use std::sync::{Arc, Mutex};

    const T0: Instant = Instant::from_millis(0);

    /// Sends 200 numbered packets through the chain and reports what it saw.
    struct Probe;
    impl DeviceUser for Probe {
        type Output = (std::any::TypeId, Option<u64>);
        fn run<D: Device + 'static>(self, devices: Vec<D>) -> Self::Output {
            let mut dropped = None;
            for mut d in devices {
                for i in 0..200u8 {
                    d.send(&[i], TxMeta::default(), T0).unwrap();
                }
                dropped = d.fault_stats().map(|s| s.dropped);
            }
            (std::any::TypeId::of::<D>(), dropped)
        }
    }

    fn capture() -> SharedPcap<Vec<u8>> {
        Arc::new(Mutex::new(PcapWriter::new(Vec::new()).unwrap()))
    }

    fn lossy() -> Option<(FaultConfig, u64)> {
        let config = FaultConfig {
            loss: 0.5,
            ..FaultConfig::default()
        };
        Some((config, 7))
    }

    /// No middleware: the runtime gets the device itself, not a wrapper around it.
    #[test]
    fn nothing_asked_means_the_bare_device() {
        let (a, _b) = pair().unwrap();
        let none = Middleware::<Vec<u8>>::default();
        assert!(none.keeps_offloads());
        let (ty, dropped) = none.apply(vec![a], Probe);
        assert_eq!(ty, std::any::TypeId::of::<MemDevice>());
        assert_eq!(dropped, None);
    }

    /// Faults and capture: the capture is inside, so it records the wire — the packets
    /// the injector let through, not the ones it dropped.
    #[test]
    fn capture_inside_faults_records_the_wire() {
        let (a, mut b) = pair().unwrap();
        let pcap = capture();
        let both = Middleware {
            faults: lossy(),
            pcap: Some(pcap.clone()),
        };
        assert!(!both.keeps_offloads(), "a fault injector declines offloads");
        let (ty, dropped) = both.apply(vec![a], Probe);
        assert_eq!(
            ty,
            std::any::TypeId::of::<FaultDevice<PcapDevice<MemDevice, Vec<u8>>>>()
        );
        let dropped = dropped.expect("fault counters");
        assert!((50..150).contains(&dropped), "{dropped}");
        let mut arrived = Vec::new();
        let mut buf = [0u8; 8];
        while let Some((n, _)) = b.recv(&mut buf, T0).unwrap() {
            arrived.push(buf[..n].to_vec());
        }
        assert_eq!(arrived.len() as u64, 200 - dropped);
        let bytes = pcap.lock().unwrap().get_ref().clone();
        let recorded: Vec<Vec<u8>> = PcapReader::new(&bytes)
            .unwrap()
            .map(|r| r.unwrap().data.to_vec())
            .collect();
        assert_eq!(recorded, arrived, "the capture shows exactly what crossed");
    }

    /// A noop fault configuration is no fault injector at all.
    #[test]
    fn noop_faults_add_nothing() {
        let (a, _b) = pair().unwrap();
        let noop = Middleware::<Vec<u8>> {
            faults: Some((FaultConfig::default(), 1)),
            pcap: None,
        };
        assert!(noop.keeps_offloads());
        assert_eq!(
            noop.apply(vec![a], Probe).0,
            std::any::TypeId::of::<MemDevice>()
        );
    }
}
