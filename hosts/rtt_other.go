//go:build !linux

package hosts

import (
	"net"
	"time"
)

// tcpRoundTrip is only known on Linux.
func tcpRoundTrip(net.Conn) (time.Duration, bool) { return 0, false }
