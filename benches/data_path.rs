//! Micro-benchmarks of the per-packet work on the data path: segment build and parse
//! (with the checksum over the IPv4 pseudo-header), the plain RFC 1071 checksum, and the
//! receive buffer's reassembly; and one keep-alive HTTP exchange through the sans-IO
//! connection (`http::HttpConn`: parse, handler, response head, output). `cargo bench --bench data_path`; results and what they
//! guided are in docs/performance.md. Not tests: nothing here is timed by `cargo test`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tunstack::http::{Body, HttpConn, Request, Response, Router, ServerConfig};
use tunstack::ip::ipv4;
use tunstack::tcp::{Flags, RecvBuffer, Segment, SendBuffer, SeqNum};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MSS: usize = 1460;

fn full_segment() -> Segment {
    Segment {
        src_port: 80,
        dst_port: 40000,
        seq: SeqNum(1_000_000),
        ack: SeqNum(2_000_000),
        flags: Flags::ACK,
        window: 65535,
        payload: (0..MSS).map(|i| i as u8).collect(),
        ..Segment::default()
    }
}

fn segments(c: &mut Criterion) {
    let seg = full_segment();
    let bytes = seg.emit(SRC, DST);
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Bytes(MSS as u64));
    g.bench_function("emit 1460 B", |b| b.iter(|| black_box(&seg).emit(SRC, DST)));
    g.bench_function("parse 1460 B", |b| {
        b.iter(|| Segment::parse(SRC, DST, black_box(&bytes)))
    });
    let ack = Segment {
        payload: Vec::new(),
        ..seg.clone()
    };
    let ack_bytes = ack.emit(SRC, DST);
    g.throughput(Throughput::Elements(1));
    g.bench_function("emit pure ACK", |b| {
        b.iter(|| black_box(&ack).emit(SRC, DST))
    });
    g.bench_function("parse pure ACK", |b| {
        b.iter(|| Segment::parse(SRC, DST, black_box(&ack_bytes)))
    });
    g.finish();
}

/// A full-MSS data packet (IPv4 + TCP header + 1460 bytes from a send buffer) built into a
/// reused buffer, as the TUN transmit path does; and the way it was built before
/// (payload copied into a vector of its own, the segment emitted into another, both
/// copied into the packet), for comparison.
fn packet(c: &mut Criterion) {
    let mut send = SendBuffer::new(256 * 1024);
    send.write(&vec![0x5a; 64 * 1024]);
    let header = Segment {
        payload: Vec::new(),
        ..full_segment()
    };
    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Bytes(MSS as u64));
    let mut out = Vec::with_capacity(2048);
    g.bench_function("build 1460 B data packet into a reused buffer", |b| {
        b.iter(|| {
            out.clear();
            out.resize(ipv4::MIN_HEADER_LEN, 0);
            black_box(&header).emit_with_payload(&mut out, SRC, DST, false, |p| {
                send.extend_into(black_box(1000), MSS, p);
            });
            let len = out.len() - ipv4::MIN_HEADER_LEN;
            ipv4::write_header(&mut out, SRC, DST, ipv4::PROTO_TCP, 64, 1, len);
            black_box(&out);
        })
    });
    g.bench_function(
        "build 1460 B data packet, before (payload and segment vectors)",
        |b| {
            b.iter(|| {
                let mut seg = black_box(&header).clone();
                let mut payload = vec![0u8; MSS];
                let n = send.peek(black_box(1000), &mut payload);
                payload.truncate(n);
                seg.payload = payload;
                let bytes = seg.emit(SRC, DST);
                out.clear();
                ipv4::emit_into(&mut out, SRC, DST, ipv4::PROTO_TCP, 64, 1, bytes.len());
                out.extend_from_slice(&bytes);
                black_box(&out);
            })
        },
    );
    g.finish();
}

fn checksum(c: &mut Criterion) {
    let data: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
    let mut g = c.benchmark_group("checksum");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("ipv4::checksum 1500 B", |b| {
        b.iter(|| ipv4::checksum(black_box(&data)))
    });
    g.finish();
}

fn buffers(c: &mut Criterion) {
    let payload = vec![7u8; MSS];
    let mut g = c.benchmark_group("buffers");
    g.throughput(Throughput::Bytes((MSS * 40) as u64));
    // 40 in-order segments into a 64 KiB window, then the application reads them.
    g.bench_function("recv in order 40 × 1460", |b| {
        let mut out = vec![0u8; 64 * 1024];
        b.iter_batched_ref(
            || RecvBuffer::new(65535),
            |r| {
                for i in 0..40 {
                    r.insert(0, black_box(&payload));
                    let _ = i;
                }
                r.read(&mut out)
            },
            BatchSize::SmallInput,
        )
    });
    // The same 40 segments, every odd one first (reassembly of a reordered burst).
    g.bench_function("recv reassembly 40 × 1460 (odd first)", |b| {
        let mut out = vec![0u8; 64 * 1024];
        b.iter_batched_ref(
            || RecvBuffer::new(65535),
            |r| {
                for i in (1..40).step_by(2).chain((0..40).step_by(2)) {
                    // Offsets count from RCV.NXT, which advances as the gaps fill.
                    let abs = i * MSS;
                    let nxt = r.readable();
                    if abs >= nxt {
                        r.insert(abs - nxt, black_box(&payload));
                    }
                }
                r.read(&mut out)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("send write+peek+consume 40 × 1460", |b| {
        let mut seg = vec![0u8; MSS];
        b.iter_batched_ref(
            || SendBuffer::new(256 * 1024),
            |s| {
                for _ in 0..40 {
                    s.write(black_box(&payload));
                }
                for i in 0..40 {
                    s.peek(i * MSS, &mut seg);
                }
                s.consume(40 * MSS);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// One request through a keep-alive connection and all of its response taken as output.
fn exchange(conn: &mut HttpConn, req: &[u8], now: Instant) -> usize {
    conn.on_data(req, now);
    let mut sent = 0;
    loop {
        let n = black_box(conn.output()).len();
        if n == 0 {
            return sent;
        }
        conn.consume(n);
        sent += n;
    }
}

static ONE_KIB: [u8; 1024] = [b'x'; 1024];

fn http(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("tunstack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1k.bin"), ONE_KIB).unwrap();
    let peer = "10.0.0.1:40000".parse().unwrap();
    let config = Arc::new(ServerConfig::default());
    // What wrk asks for in scripts/bench.sh.
    let req = b"GET /1k.bin HTTP/1.1\r\nHost: 10.77.0.2\r\n\r\n";
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));

    let mut router = Router::new();
    router.route("/1k.bin", |_: &Request| {
        Response::new(200)
            .with_header("Content-Type", "application/octet-stream")
            .with_body(Body::Static(&ONE_KIB))
    });
    let mut conn = HttpConn::new(Arc::new(router), config.clone(), peer, Instant::now());
    g.bench_function("keep-alive GET 1 KiB static", |b| {
        b.iter(|| exchange(&mut conn, req, Instant::now()))
    });

    let site = Router::standard(Some(&dir)).unwrap();
    let mut conn = HttpConn::new(Arc::new(site), config, peer, Instant::now());
    g.bench_function("keep-alive GET 1 KiB file (--root)", |b| {
        b.iter(|| exchange(&mut conn, req, Instant::now()))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, segments, packet, checksum, buffers, http);
criterion_main!(benches);
