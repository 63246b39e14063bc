package hosts

// These tests run the transport against SSH servers built in-process on
// golang.org/x/crypto/ssh, on loopback only. The servers run "exec"
// requests with /bin/sh -c, so quoting is exercised by a real shell, and
// forward "direct-tcpip" channels, so one can be the other's jump host.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// failAfter bounds every wait in these tests; reaching it is a failure.
const failAfter = 10 * time.Second

// testServer is an SSH server on 127.0.0.1.
type testServer struct {
	t       *testing.T
	ln      net.Listener
	port    int
	hostKey ssh.Signer // the first host key
	cfg     *ssh.ServerConfig

	conns   atomic.Int32 // TCP connections accepted
	started chan string  // command lines, as they start
	ended   chan string  // command lines, as their process ends
	wg      sync.WaitGroup

	mu         sync.Mutex
	authorized map[string]bool // marshalled client keys
	users      []string        // users that authenticated
	commands   []string        // exec command lines received
	forwards   []string        // direct-tcpip destinations
	active     int
	maxActive  int
	netConns   []net.Conn
	pgids      map[int]bool
}

// newTestServer starts a server with the given host keys (one new ed25519
// key if none) that accepts the given client keys.
func newTestServer(t *testing.T, hostKeys []ssh.Signer, clients ...ssh.PublicKey) *testServer {
	t.Helper()
	if len(hostKeys) == 0 {
		hostKeys = []ssh.Signer{newSigner(t)}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{
		t:          t,
		ln:         ln,
		port:       ln.Addr().(*net.TCPAddr).Port,
		hostKey:    hostKeys[0],
		started:    make(chan string, 1000),
		ended:      make(chan string, 1000),
		authorized: map[string]bool{},
		pgids:      map[int]bool{},
	}
	for _, k := range clients {
		s.authorized[string(k.Marshal())] = true
	}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.authorized[string(key.Marshal())] {
				return nil, errors.New("key not authorized")
			}
			s.users = append(s.users, meta.User())
			return nil, nil
		},
	}
	for _, k := range hostKeys {
		s.cfg.AddHostKey(k)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		s.mu.Lock()
		s.netConns = append(s.netConns, nc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

func (s *testServer) handle(nc net.Conn) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs) // answers keepalives
	for nch := range chans {
		switch nch.ChannelType() {
		case "session":
			go s.session(nch)
		case "direct-tcpip":
			go s.forward(nch)
		default:
			nch.Reject(ssh.UnknownChannelType, "no")
		}
	}
}

// dropConns cuts every TCP connection.
func (s *testServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, nc := range s.netConns {
		nc.Close()
	}
}

func (s *testServer) stop() {
	s.ln.Close()
	s.dropConns()
	s.mu.Lock()
	for pgid := range s.pgids {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(failAfter):
		s.t.Error("test server did not stop")
	}
}

func (s *testServer) session(nch ssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	var mu sync.Mutex
	pgid := 0
	kill := func(sig syscall.Signal) {
		mu.Lock()
		defer mu.Unlock()
		if pgid != 0 {
			syscall.Kill(-pgid, sig)
		}
	}
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				req.Reply(false, nil)
				continue
			}
			cmd := exec.Command("/bin/sh", "-c", p.Command)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Stdout = ch
			cmd.Stderr = ch.Stderr()
			stdin, err := cmd.StdinPipe()
			if err == nil {
				err = cmd.Start()
			}
			if err != nil {
				req.Reply(false, nil)
				continue
			}
			mu.Lock()
			pgid = cmd.Process.Pid
			mu.Unlock()
			s.mu.Lock()
			s.commands = append(s.commands, p.Command)
			s.active++
			s.maxActive = max(s.maxActive, s.active)
			s.pgids[pgid] = true
			s.mu.Unlock()
			req.Reply(true, nil)
			s.started <- p.Command
			go func() {
				io.Copy(stdin, ch)
				stdin.Close()
			}()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.finish(ch, cmd, p.Command)
			}()
		case "signal":
			var p struct{ Signal string }
			ssh.Unmarshal(req.Payload, &p)
			switch p.Signal {
			case "TERM":
				kill(syscall.SIGTERM)
			case "KILL":
				kill(syscall.SIGKILL)
			}
		default:
			req.Reply(false, nil)
		}
	}
	// The client closed the channel. Like sshd without a terminal, the
	// server lets the command run on: only a "signal" request stops it.
}

func (s *testServer) finish(ch ssh.Channel, cmd *exec.Cmd, line string) {
	err := cmd.Wait()
	s.mu.Lock()
	s.active--
	delete(s.pgids, cmd.Process.Pid)
	s.mu.Unlock()
	s.ended <- line
	var ee *exec.ExitError
	switch {
	case err == nil:
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
	case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
		sig := ee.Sys().(syscall.WaitStatus).Signal()
		name := map[syscall.Signal]string{syscall.SIGKILL: "KILL", syscall.SIGTERM: "TERM"}[sig]
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: name}))
	case errors.As(err, &ee):
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ee.ExitCode())}))
	}
	ch.Close()
}

func (s *testServer) forward(nch ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
		nch.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	dest := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	s.mu.Lock()
	s.forwards = append(s.forwards, dest)
	s.mu.Unlock()
	nc, err := net.Dial("tcp", dest)
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		nc.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		io.Copy(nc, ch)
		nc.Close()
	}()
	io.Copy(ch, nc)
	ch.Close()
}

func (s *testServer) snapshot() (commands, users, forwards []string, maxActive int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...), append([]string(nil), s.users...),
		append([]string(nil), s.forwards...), s.maxActive
}

func (s *testServer) authorizedLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey.PublicKey())))
}

func (s *testServer) knownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s\n", s.port, s.authorizedLine())
}

// await returns the next value of ch, failing the test after failAfter.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(failAfter):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	s, _ := newKey(t)
	return s
}

func newKey(t *testing.T) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

// writeKey writes priv as an OpenSSH private key file, protected by
// passphrase unless it is empty.
func writeKey(t *testing.T, path string, priv any, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// isolate keeps the user's own keys, agent and known_hosts out of a test.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	return home
}

// fixture is a server that accepts one client key, written to a file.
type fixture struct {
	srv     *testServer
	keyPath string
	signer  ssh.Signer
	priv    ed25519.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	home := isolate(t)
	signer, priv := newKey(t)
	return &fixture{
		srv:     newTestServer(t, nil, signer.PublicKey()),
		keyPath: writeKey(t, filepath.Join(home, "client_key"), priv, ""),
		signer:  signer,
		priv:    priv,
	}
}

// opts dials the server with the identity file and its pinned key.
func (f *fixture) opts() DialOptions {
	return DialOptions{
		Name:           "test-1",
		Address:        "127.0.0.1",
		Port:           f.srv.port,
		IdentityFile:   f.keyPath,
		HostKey:        f.srv.authorizedLine(),
		ConnectTimeout: failAfter,
	}
}

func dialT(t *testing.T, o DialOptions) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunQuotesArgv(t *testing.T) {
	f := newFixture(t)
	c := dialT(t, f.opts())
	args := []string{
		"plain", "two words", "it's", `"double"`, "$HOME", "${X:-y}", "`id`", "$(id)",
		"a\\b", "semi;colon", "pipe|amp&", "*", "~", "new\nline", "", " lead", "tab\tx", "ünï",
	}
	var out bytes.Buffer
	err := c.Run(context.Background(), Cmd{Argv: append([]string{"printf", `%s\0`}, args...), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(args, "|") || len(got) != len(args) {
		t.Errorf("arguments came back as\n%q\nwant\n%q", got, args)
	}
}

func TestRunEnv(t *testing.T) {
	f := newFixture(t)
	c := dialT(t, f.opts())
	out, err := Output(context.Background(), c, Cmd{
		Env:  []string{"GREETING=hello $USER 'x'", "EMPTY="},
		Argv: []string{"sh", "-c", `printf '%s/%s' "$GREETING" "${EMPTY-unset}"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello $USER 'x'/"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	for _, bad := range []string{"NOEQUALS", "=x", "1A=x", "A B=x"} {
		err := c.Run(context.Background(), Cmd{Env: []string{bad}, Argv: []string{"true"}})
		if err == nil {
			t.Errorf("env %q: want an error", bad)
		}
	}
	if cmds, _, _, _ := f.srv.snapshot(); len(cmds) != 1 {
		t.Errorf("bad env entries reached the server: %q", cmds)
	}
}

func TestRunExitError(t *testing.T) {
	f := newFixture(t)
	c := dialT(t, f.opts())
	var stderr bytes.Buffer
	script := `for i in $(seq 1 30); do echo "line $i" >&2; done; exit 3`
	err := c.Run(context.Background(), Cmd{Argv: []string{"sh", "-c", script}, Stderr: &stderr})
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want *ExitError", err)
	}
	if ee.Code != 3 || ee.Where != "test-1" || ee.Argv[2] != script {
		t.Errorf("got %+v", ee)
	}
	lines := strings.Split(ee.Stderr, "\n")
	if len(lines) != 20 || lines[0] != "line 11" || lines[19] != "line 30" {
		t.Errorf("stderr tail is %q, want lines 11 to 30", ee.Stderr)
	}
	if !strings.HasPrefix(stderr.String(), "line 1\n") || !strings.HasSuffix(stderr.String(), "line 30\n") {
		t.Errorf("stderr was not streamed: %q", stderr.String())
	}

	// The server's shell, which ran the line, is killed by a signal.
	err = c.Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "echo dying >&2; kill -KILL $PPID"}})
	if !errors.As(err, &ee) || ee.Code != -1 || !strings.Contains(ee.Stderr, "dying") {
		t.Errorf("killed command: got %#v, want ExitError with code -1", err)
	}

	if err := c.Run(context.Background(), Cmd{Argv: []string{"true"}}); err != nil {
		t.Errorf("true: %v", err)
	}
}

func TestRunStdin(t *testing.T) {
	f := newFixture(t)
	c := dialT(t, f.opts())
	data := make([]byte, 5<<20+17)
	rand.Read(data)
	var out bytes.Buffer
	if err := c.Run(context.Background(), Cmd{Argv: []string{"cat"}, Stdin: bytes.NewReader(data), Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Errorf("got %d bytes back, want the %d sent", out.Len(), len(data))
	}

	// A command that ignores its input still succeeds.
	if err := c.Run(context.Background(), Cmd{Argv: []string{"true"}, Stdin: bytes.NewReader(data)}); err != nil {
		t.Errorf("true with unread input: %v", err)
	}

	// A failing reader fails the command rather than truncating its input.
	broken := errors.New("producer died")
	r := io.MultiReader(bytes.NewReader(data[:1000]), errReader{broken})
	err := c.Run(context.Background(), Cmd{Argv: []string{"cat"}, Stdin: r, Stdout: io.Discard})
	if !errors.Is(err, broken) {
		t.Errorf("got %v, want the reader's error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestConcurrentSessionsShareOneConnection(t *testing.T) {
	f := newFixture(t)
	c := dialT(t, f.opts())
	ctx := context.Background()

	// DefaultMaxSessions commands that all run at once: each waits for
	// its input, which comes only when every one has started.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	pipes := make([]*io.PipeWriter, DefaultMaxSessions)
	outs := make([]bytes.Buffer, DefaultMaxSessions)
	for i := range pipes {
		r, w := io.Pipe()
		pipes[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Run(ctx, Cmd{Argv: []string{"cat"}, Stdin: r, Stdout: &outs[i]})
		}()
	}
	for range pipes {
		await(t, f.srv.started, "a blocked command to start")
	}
	// More commands queue behind them.
	quick := make([]bytes.Buffer, 40)
	for i := range quick {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Run(ctx, Cmd{Argv: []string{"echo", strconv.Itoa(i)}, Stdout: &quick[i]})
		}()
	}
	for i, w := range pipes {
		fmt.Fprintf(w, "input %d", i)
		w.Close()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range outs {
		if got, want := outs[i].String(), fmt.Sprintf("input %d", i); got != want {
			t.Errorf("session %d: got %q, want %q", i, got, want)
		}
	}
	for i := range quick {
		if got, want := quick[i].String(), fmt.Sprintf("%d\n", i); got != want {
			t.Errorf("quick %d: got %q, want %q", i, got, want)
		}
	}
	cmds, _, _, maxActive := f.srv.snapshot()
	if len(cmds) != DefaultMaxSessions+len(quick) {
		t.Errorf("server ran %d commands, want %d", len(cmds), DefaultMaxSessions+len(quick))
	}
	if maxActive != DefaultMaxSessions {
		t.Errorf("at most %d commands ran at once, want %d", maxActive, DefaultMaxSessions)
	}
	if n := f.srv.conns.Load(); n != 1 {
		t.Errorf("server accepted %d TCP connections, want 1", n)
	}
}

func TestPinnedHostKey(t *testing.T) {
	f := newFixture(t)
	if err := dialT(t, f.opts()).Run(context.Background(), Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}

	o := f.opts()
	other := newSigner(t)
	o.HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other.PublicKey()))) + " comment"
	_, err := Dial(context.Background(), o)
	var hke *HostKeyError
	if !errors.As(err, &hke) {
		t.Fatalf("got %v, want *HostKeyError", err)
	}
	if hke.Kind != HostKeyMismatchPin || hke.Fingerprint != ssh.FingerprintSHA256(f.srv.hostKey.PublicKey()) || hke.Host != "test-1" {
		t.Errorf("got %+v", hke)
	}
	if !strings.Contains(hke.Hint, ssh.FingerprintSHA256(other.PublicKey())) {
		t.Errorf("hint does not name the pinned key: %s", hke.Hint)
	}
	if want := fmt.Sprintf(`connect "test-1" (127.0.0.1:%d): host key of "test-1"`, f.srv.port); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q does not start with %q", err, want)
	}
	if cmds, users, _, _ := f.srv.snapshot(); len(cmds) != 1 || len(users) != 1 {
		t.Errorf("the refused dial authenticated or ran something: users %q, commands %q", users, cmds)
	}

	o.HostKey = "ssh-ed25519 not-base64"
	if _, err := Dial(context.Background(), o); err == nil || errors.As(err, &hke) {
		t.Errorf("bad pin: got %v, want a parse error", err)
	}
}

func TestUnknownHostKey(t *testing.T) {
	f := newFixture(t)
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	o := f.opts()
	o.HostKey = ""
	o.KnownHostsFiles = []string{kh}

	_, err := Dial(context.Background(), o)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Kind != HostKeyUnknown {
		t.Fatalf("got %v, want an unknown host key error", err)
	}
	for _, want := range []string{"--accept-new-host-keys", "hostKey", f.srv.authorizedLine()} {
		if !strings.Contains(hke.Hint, want) {
			t.Errorf("hint does not mention %q: %s", want, hke.Hint)
		}
	}
	if _, err := os.Stat(kh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("known_hosts was written without AcceptNewHostKeys: %v", err)
	}

	o.AcceptNewHostKeys = true
	c := dialT(t, o)
	if err := c.Run(context.Background(), Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != f.srv.knownHostsLine() {
		t.Errorf("known_hosts is %q, want %q", got, f.srv.knownHostsLine())
	}

	// Now known: no flag needed, nothing appended.
	o.AcceptNewHostKeys = false
	dialT(t, o)
	if again, _ := os.ReadFile(kh); !bytes.Equal(again, got) {
		t.Errorf("known_hosts changed to %q", again)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	f := newFixture(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	old := newSigner(t)
	recorded := fmt.Sprintf("[127.0.0.1]:%d %s", f.srv.port, ssh.MarshalAuthorizedKey(old.PublicKey()))
	if err := os.WriteFile(kh, []byte(recorded), 0o600); err != nil {
		t.Fatal(err)
	}
	o := f.opts()
	o.HostKey = ""
	o.KnownHostsFiles = []string{kh}
	o.AcceptNewHostKeys = true

	_, err := Dial(context.Background(), o)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Kind != HostKeyChanged {
		t.Fatalf("got %v, want a changed host key error", err)
	}
	if !strings.Contains(hke.Hint, ssh.FingerprintSHA256(old.PublicKey())) || !strings.Contains(hke.Hint, kh+":1") {
		t.Errorf("hint does not point at the recorded key: %s", hke.Hint)
	}
	if got, _ := os.ReadFile(kh); string(got) != recorded {
		t.Errorf("known_hosts changed to %q", got)
	}
	if _, users, _, _ := f.srv.snapshot(); len(users) != 0 {
		t.Errorf("authenticated to a host with a changed key")
	}
}

// A server with several host keys must present the one known_hosts has,
// although the client would prefer another algorithm.
func TestKnownHostsSelectsKeyAlgorithm(t *testing.T) {
	home := isolate(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	edSigner := newSigner(t)
	client, priv := newKey(t)
	srv := newTestServer(t, []ssh.Signer{edSigner, ecSigner}, client.PublicKey())
	kh := filepath.Join(home, ".ssh", "known_hosts")
	writeKey(t, filepath.Join(home, ".ssh", "id_ed25519"), priv, "")
	if err := os.WriteFile(kh, []byte(srv.knownHostsLine()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Defaults throughout: ~/.ssh/known_hosts and ~/.ssh/id_ed25519.
	c := dialT(t, DialOptions{Name: "multi", Address: "127.0.0.1", Port: srv.port})
	if err := c.Run(context.Background(), Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
}

func TestIdentityFileAuth(t *testing.T) {
	f := newFixture(t)
	dialT(t, f.opts())

	_, strangerPriv := newKey(t)
	o := f.opts()
	o.IdentityFile = writeKey(t, filepath.Join(t.TempDir(), "stranger"), strangerPriv, "")
	_, err := Dial(context.Background(), o)
	var hke *HostKeyError
	if err == nil || errors.As(err, &hke) || !strings.Contains(err.Error(), `authenticate as "root"`) {
		t.Errorf("unauthorized key: got %v", err)
	}

	o.IdentityFile = filepath.Join(t.TempDir(), "missing")
	if _, err := Dial(context.Background(), o); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing identity file: got %v", err)
	}

	o.IdentityFile = writeKey(t, filepath.Join(t.TempDir(), "locked"), f.priv, "secret")
	if _, err := Dial(context.Background(), o); err == nil || !strings.Contains(err.Error(), "ssh-add") {
		t.Errorf("protected key without agent: got %v", err)
	}
	// With the key in the agent, the protected file names which one to use.
	startAgent(t, f.priv)
	dialT(t, o)
}

// startAgent serves an in-process ssh-agent holding keys and points
// SSH_AUTH_SOCK at it.
func startAgent(t *testing.T, keys ...any) {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		os.RemoveAll(dir)
	})
	t.Setenv("SSH_AUTH_SOCK", sock)
}

func TestAgentAuth(t *testing.T) {
	f := newFixture(t)
	o := f.opts()
	o.IdentityFile = ""

	_, err := Dial(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "no key to offer") {
		t.Errorf("without agent or default keys: got %v", err)
	}

	_, stranger := newKey(t)
	startAgent(t, stranger, f.priv)
	c := dialT(t, o)
	if err := c.Run(context.Background(), Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionRefusedFailsFast(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	o := f.opts()
	o.Port = port
	o.ConnectTimeout = 30 * time.Second
	start := time.Now()
	_, err = Dial(context.Background(), o)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("got %v, want connection refused", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
	if want := fmt.Sprintf(`connect "test-1" (127.0.0.1:%d): `, port); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q does not start with %q", err, want)
	}
}

func TestSilentHostTimesOut(t *testing.T) {
	f := newFixture(t)
	// Accepts TCP and never says a word, like a hung sshd.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	o := f.opts()
	o.Port = ln.Addr().(*net.TCPAddr).Port
	o.ConnectTimeout = 200 * time.Millisecond
	start := time.Now()
	_, err = Dial(context.Background(), o)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "200ms") {
		t.Errorf("got %v, want a timeout after 200ms", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}

	await(t, accepted, "the first dial").Close()

	// The caller's context is honoured too: cancel while the dial waits
	// for the handshake.
	o.ConnectTimeout = failAfter
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, o)
		errc <- err
	}()
	second := await(t, accepted, "the second dial")
	defer second.Close()
	start = time.Now()
	cancel()
	if err := await(t, errc, "the cancelled dial"); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s after cancel", d)
	}
}

func TestRunCancel(t *testing.T) {
	f := newFixture(t)
	c := dialT(t, f.opts())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, Cmd{Argv: []string{"sleep", "30"}}) }()
	await(t, f.srv.started, "sleep to start")
	start := time.Now()
	cancel()
	err := await(t, errc, "Run to return")
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run returned %s after cancel", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	await(t, f.srv.ended, "the remote sleep to be signalled")

	// The connection is still usable.
	if err := c.Run(context.Background(), Cmd{Argv: []string{"true"}}); err != nil {
		t.Error(err)
	}
}

func TestConnectionDropped(t *testing.T) {
	f := newFixture(t)
	c := dialT(t, f.opts())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background(), Cmd{Argv: []string{"sleep", "30"}}) }()
	await(t, f.srv.started, "sleep to start")
	f.srv.dropConns()
	err := await(t, errc, "Run to return")
	var ee *ExitError
	if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("got %v, want a lost connection", err)
	}
	if err := c.Run(context.Background(), Cmd{Argv: []string{"true"}}); err == nil {
		t.Error("Run on a dropped connection succeeded")
	}
}

// A host that stops answering (a blackhole between us) is given up by the
// keepalive, failing the running command instead of hanging it.
func TestKeepAliveDetectsSilence(t *testing.T) {
	f := newFixture(t)
	p := newBlackholeProxy(t, f.srv.port)
	o := f.opts()
	o.Port = p.port
	o.KeepAlive = 100 * time.Millisecond
	c := dialT(t, o)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background(), Cmd{Argv: []string{"sleep", "30"}}) }()
	await(t, f.srv.started, "sleep to start")
	p.blackhole.Store(true)
	err := await(t, errc, "Run to return")
	if err == nil || !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("got %v, want a keepalive failure", err)
	}
}

// blackholeProxy forwards TCP to a port until told to drop everything.
type blackholeProxy struct {
	port      int
	blackhole atomic.Bool
}

func newBlackholeProxy(t *testing.T, to int) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{port: ln.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				dst.Close()
				return
			}
			if !p.blackhole.Load() {
				dst.Write(buf[:n])
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(to)))
			if err != nil {
				a.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, a, b)
			mu.Unlock()
			wg.Add(2)
			go pipe(a, b)
			go pipe(b, a)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

func TestSudoPrefix(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		user       string
		sudo, priv bool
		env        []string
		want       string
	}{
		{"deploy", true, true, nil, "sudo -n -- id -u"},
		{"deploy", true, true, []string{"A=b c"}, "sudo -n -- env 'A=b c' id -u"},
		{"deploy", true, false, nil, "id -u"},
		{"deploy", false, true, nil, "id -u"},
		{"root", true, true, nil, "id -u"},
		{"", true, true, nil, "id -u"}, // root by default
	}
	for _, tt := range tests {
		o := f.opts()
		o.User, o.Sudo = tt.user, tt.sudo
		c := dialT(t, o)
		// Whether sudo exists here does not matter: what is asserted is the
		// line the server received.
		c.Run(context.Background(), Cmd{Argv: []string{"id", "-u"}, Env: tt.env, Privileged: tt.priv, Stderr: io.Discard})
		cmds, _, _, _ := f.srv.snapshot()
		if got := cmds[len(cmds)-1]; got != tt.want {
			t.Errorf("user %q sudo %v privileged %v: server got %q, want %q", tt.user, tt.sudo, tt.priv, got, tt.want)
		}
	}
	_, users, _, _ := f.srv.snapshot()
	if strings.Join(users, ",") != "deploy,deploy,deploy,deploy,root,root" {
		t.Errorf("users: %q", users)
	}
}

func TestJumpHost(t *testing.T) {
	f := newFixture(t)
	jump := newTestServer(t, nil, f.signer.PublicKey())
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(jump.knownHostsLine()), 0o600); err != nil {
		t.Fatal(err)
	}
	o := f.opts() // target's key pinned; the jump host's from known_hosts
	o.KnownHostsFiles = []string{kh}
	o.JumpHost = fmt.Sprintf("bastion@127.0.0.1:%d", jump.port)
	c := dialT(t, o)
	out, err := Output(context.Background(), c, Cmd{Argv: []string{"echo", "through"}})
	if err != nil || out != "through\n" {
		t.Fatalf("got %q, %v", out, err)
	}
	jcmds, jusers, jfwd, _ := jump.snapshot()
	if len(jcmds) != 0 || strings.Join(jusers, ",") != "bastion" {
		t.Errorf("jump host: commands %q, users %q", jcmds, jusers)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", f.srv.port); len(jfwd) != 1 || jfwd[0] != want {
		t.Errorf("jump host forwarded to %q, want [%s]", jfwd, want)
	}
	if _, users, _, _ := f.srv.snapshot(); strings.Join(users, ",") != "root" {
		t.Errorf("target users: %q", users)
	}

	// An unknown jump host is refused like any other host, and the hint
	// names the field that pins its key.
	o.KnownHostsFiles = []string{filepath.Join(t.TempDir(), "empty")}
	_, err = Dial(context.Background(), o)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Kind != HostKeyUnknown || hke.Host != o.JumpHost ||
		!strings.Contains(err.Error(), "ssh: jumpHostKey: "+strconv.Quote(jump.authorizedLine())) {
		t.Errorf("got %v, want the jump host's key unknown, with the jumpHostKey to pin", err)
	}

	// Pinned, the jump host needs no known_hosts entry.
	o.JumpHostKey = jump.authorizedLine()
	c = dialT(t, o)
	if out, err := Output(context.Background(), c, Cmd{Argv: []string{"echo", "pinned"}}); err != nil || out != "pinned\n" {
		t.Fatalf("through the pinned jump host: %q, %v", out, err)
	}

	// A pin the jump host does not match is refused before anything is
	// forwarded: the pin is the target's key, not the jump host's.
	_, _, before, _ := jump.snapshot()
	o.JumpHostKey = f.srv.authorizedLine()
	_, err = Dial(context.Background(), o)
	if !errors.As(err, &hke) || hke.Kind != HostKeyMismatchPin || hke.Host != o.JumpHost ||
		hke.Fingerprint != ssh.FingerprintSHA256(jump.hostKey.PublicKey()) || !strings.Contains(err.Error(), "ssh.jumpHostKey pins") {
		t.Errorf("got %v, want the jump host's key refused for its pin", err)
	}
	if _, _, after, _ := jump.snapshot(); len(after) != len(before) {
		t.Errorf("the refused jump host forwarded %q", after[len(before):])
	}
}

func TestParseJumpHost(t *testing.T) {
	tests := []struct {
		in   string
		want jumpHost
		bad  bool
	}{
		{in: "bastion", want: jumpHost{"me", "bastion", 22}},
		{in: "ops@bastion:2222", want: jumpHost{"ops", "bastion", 2222}},
		{in: "[::1]:2200", want: jumpHost{"me", "::1", 2200}},
		{in: "::1", want: jumpHost{"me", "::1", 22}},
		{in: "bastion:x", bad: true},
		{in: "@bastion", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := parseJumpHost(tt.in, "me")
		if (err != nil) != tt.bad || !tt.bad && got != tt.want {
			t.Errorf("parseJumpHost(%q) = %+v, %v", tt.in, got, err)
		}
	}
}
