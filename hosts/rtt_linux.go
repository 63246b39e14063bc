package hosts

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// tcpRoundTrip returns the kernel's smoothed round-trip time of a TCP
// connection. The kernel measures it from the peer's acknowledgements, so
// a busy machine scheduling processes late does not inflate it.
func tcpRoundTrip(nc net.Conn) (time.Duration, bool) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		info, sockErr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || sockErr != nil || info == nil || info.Rtt == 0 {
		return 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, true
}
