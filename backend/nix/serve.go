package nix

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"cuedeploy.dev/cuedeploy/hosts"
)

// The client side of `nix-store --serve --write`, the protocol
// nix-copy-closure speaks to a host: one nix process on the host answers
// which paths it has and adds the missing ones, instead of one process per
// question. Numbers are little-endian uint64; strings are a length and the
// bytes padded to 8.
const (
	serveMagic1 = 0x390c9deb
	serveMagic2 = 0x5452eecb
	// serveVersion is what we speak: 2.5 brought add-to-store-nar.
	serveVersion = 2<<8 | 5

	serveQueryValidPaths = 1
	serveQueryPathInfos  = 2
	serveQueryClosure    = 7
	serveAddToStoreNar   = 9
)

// serveSession is a running nix-store --serve on a host.
type serveSession struct {
	w       *bufio.Writer
	enc     *narWriter      // encodes onto w
	sent    *countingWriter // bytes written to the host's standard input
	in      *io.PipeWriter
	out     *bufio.Reader
	outPipe *io.PipeReader
	done    chan error
	result  error
	ended   bool
	rtt     time.Duration
	// link reports the connection's round trip as the kernel measures it.
	link func() (time.Duration, bool)
	// shows names, in errors, the command the session runs at the moment
	// (nix-store --serve, then the activation); nil: the whole argv.
	shows []string
	// stderr is where the command's standard error goes besides the tail
	// kept for errors: nowhere until the activation (stderrTo).
	stderr switchWriter
	// detach, set by startDetachable, unties the session from the context
	// it was started with; cancel stops it, as that context's end does.
	detach func() bool
	cancel context.CancelCauseFunc
}

// switchWriter writes to w, or nowhere while w is nil.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		s.w.Write(p)
	}
	return len(p), nil
}

// stderrTo sends the rest of the command's standard error to w.
func (s *serveSession) stderrTo(w io.Writer) {
	s.stderr.mu.Lock()
	s.stderr.w = w
	s.stderr.mu.Unlock()
}

// roundTripper is a hosts.Executor that knows its link's round trip
// (*hosts.Conn).
type roundTripper interface {
	RoundTrip() (time.Duration, bool)
}

// startSession runs argv on remote with pipes on both ends. Its standard
// output may carry lines before the protocol starts (see State).
func startSession(ctx context.Context, remote hosts.Executor, argv []string) *serveSession {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	sent := &countingWriter{w: inW}
	s := &serveSession{
		w:       bufio.NewWriterSize(sent, 64<<10),
		sent:    sent,
		in:      inW,
		out:     bufio.NewReaderSize(outR, 64<<10),
		outPipe: outR,
		done:    make(chan error, 1),
	}
	s.enc = &narWriter{w: s.w}
	if rt, ok := remote.(roundTripper); ok {
		s.link = rt.RoundTrip
	}
	go func() {
		err := remote.Run(ctx, hosts.Cmd{Argv: argv, Stdin: inR, Stdout: outW, Stderr: &s.stderr, Privileged: true})
		// Whatever still writes now fails instead of blocking; reads see
		// the end of the output (or the command's error).
		ended := errors.New("the host's nix-store --serve ended")
		if err != nil {
			ended = err
		}
		inR.CloseWithError(ended)
		outW.CloseWithError(err)
		s.done <- err
	}()
	return s
}

// startDetachable is startSession for a session that may have to outlive
// ctx: until s.detach is called, ctx ending stops it as it stops one
// startSession started; after, only its end (wait) does.
func startDetachable(ctx context.Context, remote hosts.Executor, argv []string) *serveSession {
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	s := startSession(sctx, remote, argv)
	s.detach, s.cancel = stop, cancel
	return s
}

// tie makes the end of ctx, as well as that of the context the session
// was started with, stop a session startDetachable started, until the
// function it returns is called.
func (s *serveSession) tie(ctx context.Context) (untie func() bool) {
	return context.AfterFunc(ctx, func() { s.cancel(context.Cause(ctx)) })
}

// line reads one line of the output that precedes the protocol; io.EOF when
// the command ended without one.
func (s *serveSession) line() (string, error) {
	l, err := s.out.ReadString('\n')
	if err != nil {
		if l == "" {
			return "", s.failure(err)
		}
		return l, nil
	}
	return strings.TrimSuffix(l, "\n"), nil
}

// say writes a line to the script the session runs (before the protocol
// starts).
func (s *serveSession) say(line string) error {
	s.w.WriteString(line + "\n")
	return s.flush()
}

// expect says a line to the script and reads its answer, which must be
// want.
func (s *serveSession) expect(say, want string) error {
	if err := s.say(say); err != nil {
		return err
	}
	l, err := s.line()
	if err == io.EOF {
		return fmt.Errorf("the host's session ended before it said %q", want)
	}
	if err != nil {
		return err
	}
	if l != want {
		s.wait()
		return fmt.Errorf("the host's session said %q, want %q", l, want)
	}
	return nil
}

func (s *serveSession) sentBytes() int64 { return s.sent.n }

// wait closes the host's standard input, drops what the command still
// writes and returns how it ended.
func (s *serveSession) wait() error {
	if !s.ended {
		s.w.Flush()
		s.in.Close()
		// Whatever the command still writes is not read any more (a
		// reply cut short by an error): drop it, or the command would
		// block writing and never end.
		go io.Copy(io.Discard, s.outPipe)
		s.result = <-s.done
		s.ended = true
		s.outPipe.Close()
		if s.detach != nil { // free what tied it
			s.detach()
			s.cancel(nil)
		}
		// Name the command by what was running, not by the whole script.
		var ee *hosts.ExitError
		if errors.As(s.result, &ee) && s.shows != nil {
			short := *ee
			short.Argv = s.shows
			s.result = &short
		}
	}
	return s.result
}

// failure explains a protocol error: by the command's own error (nix says
// why on standard error) when it has ended with one.
func (s *serveSession) failure(err error) error {
	if werr := s.wait(); werr != nil {
		return werr
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

// num and strs write the protocol's values: the framing NARs use.
func (s *serveSession) num(v uint64)     { s.enc.num(v) }
func (s *serveSession) strs(vs []string) { s.enc.strs(vs) }

func (s *serveSession) flush() error {
	if err := s.w.Flush(); err != nil {
		return s.failure(err)
	}
	return nil
}

func (s *serveSession) readNum() (uint64, error) {
	v, err := readNum(s.out)
	if err != nil {
		return 0, s.failure(err)
	}
	return v, nil
}

func (s *serveSession) readStrs() ([]string, error) {
	v, err := readStrs(s.out)
	if err != nil {
		return nil, s.failure(err)
	}
	return v, nil
}

// hello exchanges the greeting and measures the link's round trip with an
// empty query, which the host answers at once.
func (s *serveSession) hello() error {
	s.num(serveMagic1)
	if err := s.flush(); err != nil {
		return err
	}
	magic, err := s.readNum()
	if err != nil {
		return err
	}
	if magic != serveMagic2 {
		return fmt.Errorf("nix-store --serve answered %#x, not the protocol's greeting", magic)
	}
	version, err := s.readNum()
	if err != nil {
		return err
	}
	if version>>8 != 2 || version&0xff < 5 {
		return fmt.Errorf("the host's nix-store --serve speaks protocol %d.%d; 2.5 or later (Nix 2.4 or later) is needed", version>>8, version&0xff)
	}
	s.num(serveVersion)
	start := time.Now()
	if _, err := s.queryValid(nil, false, false); err != nil {
		return err
	}
	s.rtt = time.Since(start)
	return nil
}

// queryValid returns which of paths are valid on the host. With lock the
// host holds them as temporary GC roots while the session lasts; with
// substitute it first fetches what its substituters have.
func (s *serveSession) queryValid(paths []string, lock, substitute bool) (map[string]bool, error) {
	s.askValid(paths, lock, substitute)
	if err := s.flush(); err != nil {
		return nil, err
	}
	return s.readValid()
}

// readValid reads the answer to a query-valid-paths command.
func (s *serveSession) readValid() (map[string]bool, error) {
	valid, err := s.readStrs()
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(valid))
	for _, p := range valid {
		m[p] = true
	}
	return m, nil
}

// askValid writes a query-valid-paths command, unflushed.
func (s *serveSession) askValid(paths []string, lock, substitute bool) {
	s.num(serveQueryValidPaths)
	s.num(b2u(lock))
	s.num(b2u(substitute))
	s.strs(paths)
}

// queryClosure returns the closure of paths in the store the session
// serves.
func (s *serveSession) queryClosure(paths []string) ([]string, error) {
	s.num(serveQueryClosure)
	s.num(0) // without the outputs of derivations
	s.strs(paths)
	if err := s.flush(); err != nil {
		return nil, err
	}
	return s.readStrs()
}

// queryPathInfos returns what the store the session serves records of
// those of paths that are valid there.
func (s *serveSession) queryPathInfos(paths []string) (map[string]pathInfo, error) {
	s.num(serveQueryPathInfos)
	s.strs(paths)
	if err := s.flush(); err != nil {
		return nil, err
	}
	// Each record is read straight through; the first error ends it.
	var err error
	num := func() (v uint64) {
		if err == nil {
			v, err = readNum(s.out)
		}
		return v
	}
	str := func() (v string) {
		if err == nil {
			v, err = readStr(s.out)
		}
		return v
	}
	strs := func() (v []string) {
		if err == nil {
			v, err = readStrs(s.out)
		}
		return v
	}
	info := make(map[string]pathInfo, len(paths))
	for p := str(); err == nil && p != ""; p = str() {
		deriver, refs := str(), strs()
		num() // download size
		size, hash := num(), str()
		str()  // content address
		strs() // signatures
		if err != nil {
			break
		}
		h, herr := sha256Base16(hash)
		if herr != nil {
			return nil, fmt.Errorf("query path info of %s: %w", p, herr)
		}
		info[p] = pathInfo{narHash: "sha256:" + h, narSize: int64(size), deriver: deriver, references: refs}
	}
	if err != nil {
		return nil, s.failure(err)
	}
	return info, nil
}

// pathInfo is what the deployer's store records of a path.
type pathInfo struct {
	narHash    string // "sha256:" and the hash in base16
	narSize    int64
	deriver    string
	references []string
}

// addPaths sends paths (dependencies first) as add-to-store-nar commands,
// serializing each from the local store. It keeps at most a window of
// bytes unacknowledged; the host checks every archive against its hash
// before it registers the path.
func (s *serveSession) addPaths(paths []string, info map[string]pathInfo, nars *narCache) error {
	send := func(p string) (int64, error) {
		in, ok := info[p]
		if !ok {
			return 0, fmt.Errorf("no store information for %s", p)
		}
		s.num(serveAddToStoreNar)
		s.enc.record(p, in)
		return archive(s.enc, p, in, nars)
	}
	ack := func() error {
		if err := s.flush(); err != nil {
			return err
		}
		v, err := s.readNum()
		if err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("nix-store --serve answered %d to add-to-store-nar", v)
		}
		return nil
	}
	return sendWindowed(paths, window(s.rtt, s.link), send, ack)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
