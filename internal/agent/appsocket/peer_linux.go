package appsocket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// PeerUID returns the owner of the socket at the other end of a loopback
// TCP connection: the user whose process listens where conn connected,
// whatever it is. The kernel's sock_diag answers it (the uid column of
// `ss -e`); no library wraps it for Go, and the request is one fixed
// struct, so it is written here.
func PeerUID(conn *net.TCPConn) (int, error) {
	local, ok1 := conn.LocalAddr().(*net.TCPAddr)
	remote, ok2 := conn.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1, errors.New("peer owner: not a TCP connection")
	}
	l, r := local.AddrPort(), remote.AddrPort()
	if !r.Addr().Unmap().IsLoopback() {
		return -1, fmt.Errorf("peer owner: %s is not on this machine", r)
	}
	// The peer's socket: its source is where we connected to.
	return lookupUID(r, l)
}

// sock_diag's request and answer (linux/inet_diag.h).
const (
	diagReqLen     = 56 // struct inet_diag_req_v2
	diagMsgUIDAt   = 64 // offset of idiag_uid in struct inet_diag_msg
	nlmsgHeaderLen = 16
	inetDiagNoCook = 0xffffffff
	allTCPStates   = 0xffffffff
)

func lookupUID(src, dst netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if src.Addr().Is6() && !src.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	req := make([]byte, nlmsgHeaderLen+diagReqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	b := req[nlmsgHeaderLen:]
	b[0] = byte(family)
	b[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], allTCPStates)
	binary.BigEndian.PutUint16(b[8:], src.Port())
	binary.BigEndian.PutUint16(b[10:], dst.Port())
	putAddr(b[12:28], src.Addr(), family)
	putAddr(b[28:44], dst.Addr(), family)
	binary.NativeEndian.PutUint32(b[48:], inetDiagNoCook)
	binary.NativeEndian.PutUint32(b[52:], inetDiagNoCook)

	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("peer owner: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return -1, fmt.Errorf("peer owner: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return -1, fmt.Errorf("peer owner: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil || len(msgs) == 0 {
		return -1, fmt.Errorf("peer owner: bad answer: %v", err)
	}
	m := msgs[0]
	switch {
	case m.Header.Type == unix.NLMSG_ERROR:
		if len(m.Data) >= 4 {
			if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
				return -1, fmt.Errorf("peer owner of %s: %w", src, unix.Errno(-e))
			}
		}
		return -1, fmt.Errorf("peer owner of %s: no such socket", src)
	case m.Header.Type != unix.SOCK_DIAG_BY_FAMILY || len(m.Data) < diagMsgUIDAt+4:
		return -1, fmt.Errorf("peer owner: unexpected answer type %d", m.Header.Type)
	}
	return int(binary.NativeEndian.Uint32(m.Data[diagMsgUIDAt:])), nil
}

// putAddr writes an address as sock_diag wants it: four big-endian
// words, IPv4 in the first.
func putAddr(b []byte, a netip.Addr, family int) {
	if family == unix.AF_INET {
		v4 := a.Unmap().As4()
		copy(b, v4[:])
		return
	}
	v6 := a.As16()
	copy(b, v6[:])
}
