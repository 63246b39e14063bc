package nix

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// The client side of the nix daemon's worker protocol, spoken to the
// daemon a NixOS host already runs, through its socket forwarded by sshd:
// the copy then starts no nix process on the host (the daemon forks one
// worker), where nix-store --serve costs a whole nix start. As root the
// daemon trusts us, as it trusts root's nix-store. Numbers are
// little-endian uint64; strings a length and the bytes padded to 8.
const (
	daemonSocket = "/nix/var/nix/daemon-socket/socket"

	workerMagic1 = 0x6e697863
	workerMagic2 = 0x6478696f
	// daemonVersion is what we speak (Nix 2.8's). We need 1.23 (framed
	// archives in AddToStoreNar, Nix 2.4); older daemons get nix-store
	// --serve.
	daemonVersion  = 1<<8 | 34
	daemonMinMinor = 23

	wopAddTempRoot     = 11
	wopQueryValidPaths = 31
	wopAddToStoreNar   = 39

	stderrNext          = 0x6f6c6d67
	stderrRead          = 0x64617461
	stderrWrite         = 0x64617416
	stderrLast          = 0x616c7473
	stderrError         = 0x63787470
	stderrStartActivity = 0x53545254
	stderrStopActivity  = 0x53544f50
	stderrResult        = 0x52534c54

	// daemonFrame is the size of the frames an archive is cut into.
	daemonFrame = 64 << 10
)

// unixDialer is a hosts.Executor that can open a Unix socket on the host
// (*hosts.Conn).
type unixDialer interface {
	DialUnix(ctx context.Context, path string) (net.Conn, error)
}

// daemonConn is one connection to a host's nix daemon; its worker holds
// the temporary GC roots it adds until the connection ends.
type daemonConn struct {
	c     net.Conn
	w     *bufio.Writer
	enc   *narWriter      // encodes onto w
	sent  *countingWriter // bytes written to the daemon
	r     *bufio.Reader
	minor uint64 // the protocol minor both sides speak
	rtt   time.Duration
	link  func() (time.Duration, bool)
	// log keeps the daemon's last messages, for errors.
	log []string
}

// openDaemon connects to the host's daemon and exchanges the greeting.
func openDaemon(ctx context.Context, d unixDialer) (*daemonConn, error) {
	c, err := d.DialUnix(ctx, daemonSocket)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sent := &countingWriter{w: c}
	dc := &daemonConn{c: c, sent: sent, w: bufio.NewWriterSize(sent, 64<<10), r: bufio.NewReaderSize(c, 64<<10)}
	dc.enc = &narWriter{w: dc.w}
	if rt, ok := d.(roundTripper); ok {
		dc.link = rt.RoundTrip
	}
	if err := dc.hello(); err != nil {
		c.Close()
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("nix daemon: %w", err)
	}
	return dc, nil
}

func (dc *daemonConn) Close() error { return dc.c.Close() }

func (dc *daemonConn) sentBytes() int64 { return dc.sent.n }

func (dc *daemonConn) hello() error {
	start := time.Now()
	dc.enc.num(workerMagic1)
	dc.enc.num(daemonVersion)
	dc.enc.num(0) // no CPU affinity (1.14)
	dc.enc.num(0) // reserve space: no (1.11)
	if err := dc.flush(); err != nil {
		return err
	}
	magic, err := dc.readNum()
	if err != nil {
		return err
	}
	dc.rtt = time.Since(start)
	if magic != workerMagic2 {
		return fmt.Errorf("answered %#x, not the protocol's greeting", magic)
	}
	v, err := dc.readNum()
	if err != nil {
		return err
	}
	if v>>8 != 1 || v&0xff < daemonMinMinor {
		return fmt.Errorf("speaks protocol %d.%d; 1.%d or later (Nix 2.4) is needed", v>>8, v&0xff, daemonMinMinor)
	}
	dc.minor = min(v&0xff, daemonVersion&0xff)
	if dc.minor >= 33 {
		if _, err := dc.readStr(); err != nil { // the daemon's nix version
			return err
		}
	}
	return dc.result()
}

func (dc *daemonConn) flush() error { return dc.w.Flush() }

func (dc *daemonConn) readNum() (uint64, error) {
	v, err := readNum(dc.r)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

func (dc *daemonConn) readStr() (string, error) { return readStr(dc.r) }

// result reads the daemon's messages up to the end of an operation's
// work: nil, or the error the daemon reports.
func (dc *daemonConn) result() error {
	for {
		kind, err := dc.readNum()
		if err != nil {
			return err
		}
		switch kind {
		case stderrLast:
			return nil
		case stderrError:
			return dc.readError()
		case stderrNext:
			s, err := dc.readStr()
			if err != nil {
				return err
			}
			dc.log = append(dc.log, s)
			if len(dc.log) > 5 {
				dc.log = dc.log[1:]
			}
		case stderrWrite:
			if _, err := dc.readStr(); err != nil {
				return err
			}
		case stderrStartActivity:
			// id, level, type, text, fields, parent
			for _, f := range []func() error{dc.skipNum, dc.skipNum, dc.skipNum, dc.skipStr, dc.skipFields, dc.skipNum} {
				if err := f(); err != nil {
					return err
				}
			}
		case stderrStopActivity:
			if err := dc.skipNum(); err != nil {
				return err
			}
		case stderrResult:
			for _, f := range []func() error{dc.skipNum, dc.skipNum, dc.skipFields} {
				if err := f(); err != nil {
					return err
				}
			}
		case stderrRead:
			return errors.New("asked for data the protocol does not send")
		default:
			return fmt.Errorf("sent message %#x, which this protocol does not have", kind)
		}
	}
}

func (dc *daemonConn) skipNum() error { _, err := dc.readNum(); return err }
func (dc *daemonConn) skipStr() error { _, err := dc.readStr(); return err }

func (dc *daemonConn) skipFields() error {
	n, err := dc.readNum()
	if err != nil {
		return err
	}
	for range n {
		kind, err := dc.readNum()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // integer
			err = dc.skipNum()
		case 1: // string
			err = dc.skipStr()
		default:
			err = fmt.Errorf("sent a log field of kind %d", kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readError reads an error the daemon reports.
func (dc *daemonConn) readError() error {
	if dc.minor < 26 {
		msg, err := dc.readStr()
		if err != nil {
			return err
		}
		return &daemonError{msg: msg}
	}
	// "Error", level, name, message, position (0), traces.
	if _, err := dc.readStr(); err != nil {
		return err
	}
	if err := dc.skipNum(); err != nil {
		return err
	}
	if _, err := dc.readStr(); err != nil {
		return err
	}
	msg, err := dc.readStr()
	if err != nil {
		return err
	}
	if err := dc.skipNum(); err != nil {
		return err
	}
	n, err := dc.readNum()
	if err != nil {
		return err
	}
	for range n {
		if err := dc.skipNum(); err != nil {
			return err
		}
		if err := dc.skipStr(); err != nil {
			return err
		}
	}
	return &daemonError{msg: msg}
}

// daemonError is an error the daemon reported for an operation.
type daemonError struct{ msg string }

func (e *daemonError) Error() string { return stripANSI(e.msg) }

// stripANSI removes terminal escapes nix puts in its messages.
func stripANSI(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}

// missing returns which of closure the host lacks, in closure order, after
// holding every path of closure (and holds, which it does not copy) as a
// temporary GC root of this connection
// (as nix-store --serve's locked query does): what the host has stays until
// the profile refers to it. With substitute the host first fetches what its
// substituters have. One round trip.
func (dc *daemonConn) missing(closure, holds []string, substitute bool) ([]string, error) {
	if substitute && dc.minor < 27 {
		return nil, errors.New("nix daemon: substituting needs protocol 1.27 (Nix 2.4)")
	}
	roots := append(slices.Clip(closure), holds...)
	for _, p := range roots {
		dc.enc.num(wopAddTempRoot)
		dc.enc.str(p)
	}
	dc.enc.num(wopQueryValidPaths)
	dc.enc.strs(closure)
	if dc.minor >= 27 {
		dc.enc.num(b2u(substitute))
	}
	if err := dc.flush(); err != nil {
		return nil, err
	}
	for range roots {
		if err := dc.result(); err != nil {
			return nil, fmt.Errorf("nix daemon: add temporary root: %w", err)
		}
		if err := dc.skipNum(); err != nil {
			return nil, err
		}
	}
	if err := dc.result(); err != nil {
		return nil, fmt.Errorf("nix daemon: query valid paths: %w", err)
	}
	valid, err := readStrs(dc.r)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(valid))
	for _, p := range valid {
		have[p] = true
	}
	var missing []string
	for _, p := range closure {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// addPaths sends paths (dependencies first) as AddToStoreNar operations,
// their archives in frames, keeping at most a window of bytes
// unacknowledged. The daemon checks every archive against its hash.
func (dc *daemonConn) addPaths(paths []string, info map[string]pathInfo, nars *narCache) error {
	f := &framer{w: dc.w}
	nw := &narWriter{w: f}
	send := func(p string) (int64, error) {
		in, ok := info[p]
		if !ok {
			return 0, fmt.Errorf("no store information for %s", p)
		}
		dc.enc.num(wopAddToStoreNar)
		dc.enc.record(p, in)
		dc.enc.num(0) // no repair
		dc.enc.num(1) // do not check signatures: root is trusted
		if dc.enc.err != nil {
			return 0, dc.enc.err
		}
		n, err := archive(nw, p, in, nars)
		if err == nil {
			err = f.close()
		}
		return n, err
	}
	ack := func() error {
		if err := dc.flush(); err != nil {
			return err
		}
		return dc.result()
	}
	return sendWindowed(paths, window(dc.rtt, dc.link), send, ack)
}

// framer cuts what is written into frames of daemonFrame bytes (the last
// one shorter), each after its length; close ends the stream with an empty
// frame.
type framer struct {
	w   io.Writer
	buf []byte
}

func (f *framer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if f.buf == nil {
			f.buf = make([]byte, 0, daemonFrame)
		}
		k := min(len(p), daemonFrame-len(f.buf))
		f.buf = append(f.buf, p[:k]...)
		p = p[k:]
		if len(f.buf) == daemonFrame {
			if err := f.emit(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (f *framer) emit() error {
	var h [8]byte
	binary.LittleEndian.PutUint64(h[:], uint64(len(f.buf)))
	if _, err := f.w.Write(h[:]); err != nil {
		return err
	}
	_, err := f.w.Write(f.buf)
	f.buf = f.buf[:0]
	return err
}

func (f *framer) close() error {
	if len(f.buf) > 0 {
		if err := f.emit(); err != nil {
			return err
		}
	}
	var end [8]byte
	_, err := f.w.Write(end[:])
	return err
}

// daemonFraming is what AddToStoreNar adds around an archive of narSize
// bytes: the frames' lengths and the empty frame that ends them.
func daemonFraming(narSize int64) int64 {
	return 8*((narSize+daemonFrame-1)/daemonFrame) + 8
}
