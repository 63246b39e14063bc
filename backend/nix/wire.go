package nix

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// What the two protocols a copy speaks (nix-store --serve and the nix
// daemon's) share: little-endian uint64 numbers, strings as a length and
// the bytes padded to 8, lists as a count and the items; a path's record
// in front of its archive; and a bound on the bytes in flight.

// maxWireString bounds what a host may ask us to read as one string or
// list.
const maxWireString = 1 << 20

func readNum(r io.Reader) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func readStr(r io.Reader) (string, error) {
	n, err := readNum(r)
	if err != nil {
		return "", err
	}
	if n > maxWireString {
		return "", fmt.Errorf("the host sent a string of %d bytes", n)
	}
	b := make([]byte, (n+7)&^7)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

func readStrs(r io.Reader) ([]string, error) {
	n, err := readNum(r)
	if err != nil {
		return nil, err
	}
	if n > maxWireString {
		return nil, fmt.Errorf("the host sent a list of %d strings", n)
	}
	out := make([]string, 0, n)
	for range n {
		v, err := readStr(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (nw *narWriter) strs(vs []string) {
	nw.num(uint64(len(vs)))
	for _, v := range vs {
		nw.str(v)
	}
}

// record writes what both protocols send in front of a path's archive:
// the path, its deriver, NAR hash and references, a registration time of
// 0 (the host's now), the NAR size, not ultimately trusted, no signatures
// and no content address (as nix-store --export).
func (nw *narWriter) record(p string, in pathInfo) {
	nw.str(p)
	nw.str(in.deriver)
	nw.str(in.narHash)
	nw.strs(in.references)
	nw.num(0)
	nw.num(uint64(in.narSize))
	nw.num(0)
	nw.strs(nil)
	nw.str("")
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Bytes a copy keeps in flight (sent, not yet acknowledged by the host):
// what a 1 Gbit/s link carries in the link's round trip, at least
// windowMin. Without a bound a fast link delivers the whole closure to
// sshd at once, and sshd spends more CPU moving its buffers than nix
// spends adding the paths; a slow link needs the window to stay busy. The
// round trip is the kernel's measure of the TCP connection where there is
// one (a busy deployer answering late does not inflate it), else the
// greeting's.
const (
	windowMin = 256 << 10
	windowMax = 64 << 20
	linkRate  = 125e6 // bytes per second
)

// window is how many bytes a copy keeps in flight, given the round trip
// the greeting took and link, the kernel's measure where there is one.
func window(greeting time.Duration, link func() (time.Duration, bool)) int64 {
	rtt := greeting
	if link != nil {
		if k, ok := link(); ok && k < rtt {
			rtt = k
		}
	}
	w := int64(rtt.Seconds() * linkRate)
	return min(max(w, windowMin), windowMax)
}

// sendWindowed sends paths in order with send, which returns the archive's
// size, keeping at most limit bytes unacknowledged: before a send that
// would exceed it, and at the end, ack waits for the oldest path's answer.
func sendWindowed(paths []string, limit int64, send func(p string) (int64, error), ack func() error) error {
	var inflight []int64
	var unacked int64
	wait := func() error {
		if err := ack(); err != nil {
			return err
		}
		unacked -= inflight[0]
		inflight = inflight[1:]
		return nil
	}
	for _, p := range paths {
		for len(inflight) > 0 && unacked >= limit {
			if err := wait(); err != nil {
				return err
			}
		}
		n, err := send(p)
		if err != nil {
			return err
		}
		inflight = append(inflight, n)
		unacked += n
	}
	for len(inflight) > 0 {
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}

// archive writes p's archive with nw, from nars when it keeps p (nil:
// never), and checks its size against in.
func archive(nw *narWriter, p string, in pathInfo, nars *narCache) (int64, error) {
	if data, ok := nars.get(p, in); ok {
		nw.write(data)
		return int64(len(data)), nw.err
	}
	n, err := nw.nar(p)
	if err != nil {
		return n, fmt.Errorf("archive %s: %w", p, err)
	}
	if n != in.narSize {
		return n, fmt.Errorf("archive %s: %d bytes, but the store records %d", p, n, in.narSize)
	}
	return n, nil
}
