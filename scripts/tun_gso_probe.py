#!/usr/bin/env python3
"""What the Linux kernel hands a TUN opened with IFF_VNET_HDR and TUN_F_CSUM|TUN_F_TSO4.

Plays a TCP peer at 10.77.0.2 behind the TUN while the kernel's own TCP sends it 400 kB,
and prints for each packet the virtio_net_hdr, whether the IPv4 header checksum verifies,
and whether the TCP checksum field holds the folded, uncomplemented pseudo-header sum over
the whole (super-)segment (CHECKSUM_PARTIAL). Found on 6.18: super-segments of up to 64 KiB
(gso_type 1 = TCPV4, gso_size 1460, flags 1 = NEEDS_CSUM, csum_start 20, csum_offset 16),
every IPv4 header checksum valid, every TCP field the pseudo-header sum — the format
stack::Interface accepts (RxMeta) and emits (TxMeta).

Run as root: python3 scripts/tun_gso_probe.py (it re-runs itself in a throwaway network
namespace: nothing is configured in the caller's).
"""
import os, fcntl, struct, socket, subprocess, sys, threading, time, select

# Never configure anything in the caller's namespace: always re-run in a fresh one (it
# vanishes, TUN included, when the script exits).
if os.environ.get('TUN_GSO_PROBE_NETNS') != '1':
    os.environ['TUN_GSO_PROBE_NETNS'] = '1'
    os.execvp('unshare', ['unshare', '-n', sys.executable] + sys.argv)
TUNSETIFF=0x400454ca; TUNSETOFFLOAD=0x400454d0
IFF_TUN=1; IFF_NO_PI=0x1000; IFF_VNET_HDR=0x4000
TUN_F_CSUM=1; TUN_F_TSO4=2
fd=os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', b'tsoprobe0', IFF_TUN|IFF_NO_PI|IFF_VNET_HDR))
fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM|TUN_F_TSO4)
subprocess.run('ip link set lo up; ip addr add 10.77.0.1/24 dev tsoprobe0; ip link set tsoprobe0 mtu 1500 up', shell=True, check=True)
print(subprocess.run('ethtool -k tsoprobe0 | grep -E "tcp-segmentation|tx-checksum-ip-generic|scatter"', shell=True, capture_output=True, text=True).stdout)

def csum(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('!%dH'%(len(b)//2), b))
    while s>>16: s=(s&0xffff)+(s>>16)
    return (~s)&0xffff

def send(ip_src, ip_dst, sport, dport, seq, ack, flags, win, opts=b''):
    thl=20+len(opts)
    tcp=struct.pack('!HHIIBBHHH', sport, dport, seq, ack, (thl//4)<<4, flags, win, 0, 0)+opts
    pseudo=ip_src+ip_dst+struct.pack('!BBH',0,6,len(tcp))
    c=csum(pseudo+tcp)
    tcp=tcp[:16]+struct.pack('!H',c)+tcp[18:]
    iph=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(tcp),1,0x4000,64,6,0,ip_src,ip_dst)
    iph=iph[:10]+struct.pack('!H',csum(iph))+iph[12:]
    os.write(fd, b'\0'*10+iph+tcp)

def client():
    s=socket.socket(); s.connect(('10.77.0.2',80)); s.sendall(b'x'*400000); time.sleep(1)
threading.Thread(target=client, daemon=True).start()
seen=0; nxt=None
deadline=time.time()+5
while time.time()<deadline and seen<12:
    r,_,_=select.select([fd],[],[],0.5)
    if not r: continue
    pkt=os.read(fd, 70000)
    flags,gso_type,hdr_len,gso_size,cs_start,cs_off=struct.unpack('<BBHHHH',pkt[:10])
    ip=pkt[10:]
    if ip[0]>>4!=4 or ip[9]!=6: continue
    ihl=(ip[0]&15)*4; tot=struct.unpack('!H',ip[2:4])[0]
    tcp=ip[ihl:]; sport,dport,seq,ack=struct.unpack('!HHII',tcp[:12]); tfl=tcp[13]; thl=(tcp[12]>>4)*4
    dlen=tot-ihl-thl
    print(f"vnet flags={flags} gso_type={gso_type} gso_size={gso_size} csum_start={cs_start} csum_off={cs_off} | ip tot_len={tot} read={len(ip)} ip_hdr_csum_ok={csum(ip[:ihl])==0} | tcp flags={tfl:#x} data={dlen}")
    src,dst=ip[12:16],ip[16:20]
    ps=sum(struct.unpack('!4H',src+dst))+6+(tot-ihl)
    while ps>>16: ps=(ps&0xffff)+(ps>>16)
    field=struct.unpack('!H',tcp[16:18])[0]
    print(f"   tcp csum field {field:#06x} == folded pseudo-header sum (uncomplemented) {ps:#06x}: {field==ps}")
    if tfl&0x02:  # SYN: answer SYN-ACK, MSS 1460, wscale 7
        nxt=seq+1
        send(dst,src,dport,sport,1000,nxt,0x12,65535,b'\x02\x04\x05\xb4\x01\x03\x03\x07')
    elif dlen>0:
        nxt=seq+dlen; seen+=1
        send(dst,src,dport,sport,1001,nxt,0x10,65535)
