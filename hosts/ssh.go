package hosts

// The SSH transport. The rules:
//   - one TCP connection per host; every command is a new session on it, at
//     most MaxSessions at a time (sshd refuses more than its MaxSessions);
//   - argv is shell-quoted word by word, environment goes in as `env N=V`
//     words and privilege as `sudo -n --`, because the remote side runs the
//     line through the user's shell and sshd refuses most Setenv requests;
//   - every wait is bounded: dialing by ConnectTimeout, a command by its
//     context, and a connection that stops answering by the keepalive, which
//     closes it so that its sessions fail instead of hanging.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Defaults of DialOptions.
const (
	DefaultPort           = 22
	DefaultUser           = "root"
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 15 * time.Second
	DefaultMaxSessions    = 8
)

// waitDelay bounds how long Run waits for a session to wind down after its
// context ended, in case the connection no longer answers.
const waitDelay = 500 * time.Millisecond

// keepAliveMisses is how many keepalive intervals a connection may stay
// silent before it is closed.
const keepAliveMisses = 3

// DialOptions says how to reach one host.
type DialOptions struct {
	// Name is the host's name for messages, e.g. "forum-1".
	Name string
	// Address is a DNS name or IP.
	Address string
	// Port is 22 if 0.
	Port int
	// User is "root" if "".
	User string
	// IdentityFile is a private key path; "" means the agent (SSH_AUTH_SOCK)
	// and the default keys ~/.ssh/id_ed25519, id_ecdsa, id_rsa. A
	// passphrase-protected file is used through the agent.
	IdentityFile string
	// HostKey pins the host's public key in authorized_keys format
	// ("ssh-ed25519 AAAA..."); "" means check known_hosts.
	HostKey string
	// KnownHostsFiles default to ~/.ssh/known_hosts (and
	// /etc/ssh/ssh_known_hosts). Missing files count as empty.
	KnownHostsFiles []string
	// AcceptNewHostKeys lets an unknown host key be accepted and appended to
	// the first known_hosts file. A changed key is always refused.
	AcceptNewHostKeys bool
	// JumpHost is a "[user@]host[:port]" bastion to dial through, with the
	// same keys, or "".
	JumpHost string
	// JumpHostKey pins the bastion's public key as HostKey does the host's;
	// "" means check known_hosts.
	JumpHostKey string
	// ConnectTimeout covers TCP connect and handshake (of the jump host
	// too); 10s if 0.
	ConnectTimeout time.Duration
	// Sudo prefixes Cmd.Privileged commands with `sudo -n --` when User is
	// not root.
	Sudo bool
	// KeepAlive is the interval of keepalive requests; the connection is
	// closed after three unanswered ones. 15s if 0; negative disables.
	KeepAlive time.Duration
	// MaxSessions bounds the commands running at once on the connection;
	// further ones wait. 8 if 0 (sshd allows 10 by default).
	MaxSessions int
}

func (o DialOptions) withDefaults() DialOptions {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.User == "" {
		o.User = DefaultUser
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.Name == "" {
		o.Name = o.Address
	}
	if o.KnownHostsFiles == nil {
		o.KnownHostsFiles = defaultKnownHosts()
	}
	return o
}

func defaultKnownHosts() []string {
	var files []string
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".ssh", "known_hosts"))
	}
	if _, err := os.Stat("/etc/ssh/ssh_known_hosts"); err == nil {
		files = append(files, "/etc/ssh/ssh_known_hosts")
	}
	return files
}

// Conn is one SSH connection to a host; every command is a new session
// multiplexed on it. It is safe for concurrent use.
type Conn struct {
	name   string
	sudo   bool // prefix privileged commands
	root   bool // the user is root
	client *ssh.Client
	jump   *ssh.Client // or nil
	// rtt is the TCP handshake's round trip as the kernel measured it, or 0
	// through a jump host or where the kernel does not say.
	rtt   time.Duration
	slots chan struct{}
	gone  chan struct{} // closed when the connection has ended

	mu   sync.Mutex
	lost error // why the keepalive gave up, or nil
}

var _ Executor = (*Conn)(nil)

// Dial connects to a host and authenticates. The returned Conn must be
// closed.
func Dial(ctx context.Context, o DialOptions) (*Conn, error) {
	o = o.withDefaults()
	addr := net.JoinHostPort(o.Address, strconv.Itoa(o.Port))
	where := addr
	if o.JumpHost != "" {
		where += " via " + o.JumpHost
	}
	c, err := dial(ctx, o, addr)
	if err != nil {
		return nil, fmt.Errorf("connect %q (%s): %w", o.Name, where, err)
	}
	return c, nil
}

func dial(ctx context.Context, o DialOptions, addr string) (*Conn, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, o.ConnectTimeout,
		fmt.Errorf("no answer within %s: %w", o.ConnectTimeout, context.DeadlineExceeded))
	defer cancel()

	hk, err := newHostKeyChecker(o.Name, addr, "hostKey", o.HostKey, o.KnownHostsFiles, o.AcceptNewHostKeys)
	if err != nil {
		return nil, err
	}
	keys, err := loadKeys(ctx, o.IdentityFile)
	if err != nil {
		return nil, err
	}
	defer keys.close()

	var jump *ssh.Client
	var nc net.Conn
	var rtt time.Duration
	if o.JumpHost != "" {
		jo, err := parseJumpHost(o.JumpHost, o.User)
		if err != nil {
			return nil, err
		}
		jaddr := net.JoinHostPort(jo.Address, strconv.Itoa(jo.Port))
		jc, err := dialTCP(ctx, jaddr)
		if err != nil {
			return nil, fmt.Errorf("jump host %q: %w", o.JumpHost, err)
		}
		jhk, err := newHostKeyChecker(o.JumpHost, jaddr, "jumpHostKey", o.JumpHostKey, o.KnownHostsFiles, o.AcceptNewHostKeys)
		if err != nil {
			jc.Close()
			return nil, err
		}
		jump, err = handshake(ctx, jc, jaddr, jo.User, jhk, keys)
		if err != nil {
			return nil, fmt.Errorf("jump host %q: %w", o.JumpHost, err)
		}
		nc, err = jump.DialContext(ctx, "tcp", addr)
		if err != nil {
			jump.Close()
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return nil, fmt.Errorf("forward through jump host %q: %w", o.JumpHost, err)
		}
	} else {
		nc, err = dialTCP(ctx, addr)
		if err != nil {
			return nil, err
		}
		// Read before any data flows: later samples include the peer's
		// delayed acknowledgements.
		rtt, _ = tcpRoundTrip(nc)
	}

	client, err := handshake(ctx, nc, addr, o.User, hk, keys)
	if err != nil {
		if jump != nil {
			jump.Close()
		}
		return nil, err
	}
	c := &Conn{
		name:   o.Name,
		rtt:    rtt,
		sudo:   o.Sudo && o.User != "root",
		root:   o.User == "root",
		client: client,
		jump:   jump,
		slots:  make(chan struct{}, o.MaxSessions),
		gone:   make(chan struct{}),
	}
	go c.watch()
	if o.KeepAlive > 0 {
		go c.keepAlive(o.KeepAlive)
	}
	return c, nil
}

func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		return nc, nil
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	// The address is already in the caller's message.
	var oe *net.OpError
	if errors.As(err, &oe) {
		return nil, oe.Err
	}
	return nil, err
}

// handshake runs the SSH handshake on nc, closing nc when ctx ends first.
func handshake(ctx context.Context, nc net.Conn, addr, user string, hk *hostKeyChecker, keys *keySet) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:              user,
		Auth:              keys.methods(),
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hk.algorithms,
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, context.Cause(ctx)
	}
	if err != nil {
		nc.Close()
		var hke *HostKeyError
		if errors.As(err, &hke) {
			return nil, hke
		}
		if hk.accepted {
			return nil, fmt.Errorf("authenticate as %q (%s): %w", user, keys.describe(), err)
		}
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

type jumpHost struct {
	User    string
	Address string
	Port    int
}

// CheckJumpHost returns the error Dial would give for the jump host s,
// "[user@]host[:port]", or nil: a deployment is checked with the same
// parser before any host is touched.
func CheckJumpHost(s string) error {
	_, err := parseJumpHost(s, DefaultUser)
	return err
}

// parseJumpHost parses "[user@]host[:port]".
func parseJumpHost(s, defaultUser string) (jumpHost, error) {
	j := jumpHost{User: defaultUser, Port: DefaultPort}
	rest := s
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		j.User, rest = rest[:i], rest[i+1:]
	}
	j.Address = rest
	if host, port, err := net.SplitHostPort(rest); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			return j, fmt.Errorf("parse jump host %q: bad port %q", s, port)
		}
		j.Address, j.Port = host, p
	}
	if j.Address == "" || j.User == "" {
		return j, fmt.Errorf("parse jump host %q: want [user@]host[:port]", s)
	}
	return j, nil
}

// keySet is the keys offered to a host.
type keySet struct {
	signers []ssh.Signer
	tried   []string // where the keys came from, for messages
	agent   net.Conn // open until the handshakes are done
}

// loadKeys gathers the keys to offer: the identity file alone, or the
// agent's keys and the default key files.
func loadKeys(ctx context.Context, identityFile string) (*keySet, error) {
	ks := &keySet{}
	var ag agent.ExtendedAgent
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", sock)
		if err != nil {
			ks.tried = append(ks.tried, fmt.Sprintf("agent unreachable: %v", err))
		} else {
			if dl, ok := ctx.Deadline(); ok {
				conn.SetDeadline(dl)
			}
			ks.agent = conn
			ag = agent.NewClient(conn)
		}
	}

	if identityFile != "" {
		path := expandHome(identityFile)
		pem, err := os.ReadFile(path)
		if err != nil {
			ks.close()
			return nil, fmt.Errorf("read identity file: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var pe *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pe):
			if s := agentSigner(ag, pe.PublicKey); s != nil {
				ks.add(s, "agent key of "+identityFile)
				return ks, nil
			}
			ks.close()
			return nil, fmt.Errorf("identity file %q is passphrase-protected: load it into ssh-agent (ssh-add %s)", path, ShellQuote(path))
		case err != nil:
			ks.close()
			return nil, fmt.Errorf("parse identity file %q: %w", path, err)
		}
		ks.add(signer, identityFile)
		return ks, nil
	}

	if ag != nil {
		signers, err := ag.Signers()
		if err != nil {
			ks.tried = append(ks.tried, fmt.Sprintf("agent failed: %v", err))
		}
		for _, s := range signers {
			ks.add(s, "agent")
		}
	} else if os.Getenv("SSH_AUTH_SOCK") == "" {
		ks.tried = append(ks.tried, "no agent (SSH_AUTH_SOCK unset)")
	}
	if home, err := os.UserHomeDir(); err == nil {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			path := filepath.Join(home, ".ssh", name)
			pem, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			signer, err := ssh.ParsePrivateKey(pem)
			if err != nil {
				// Protected keys are usable only through the agent, which
				// has been asked already.
				ks.tried = append(ks.tried, fmt.Sprintf("skipped %s: %v", path, err))
				continue
			}
			ks.add(signer, path)
		}
	}
	return ks, nil
}

func agentSigner(ag agent.ExtendedAgent, pub ssh.PublicKey) ssh.Signer {
	if ag == nil || pub == nil {
		return nil
	}
	signers, err := ag.Signers()
	if err != nil {
		return nil
	}
	want := string(pub.Marshal())
	for _, s := range signers {
		if string(s.PublicKey().Marshal()) == want {
			return s
		}
	}
	return nil
}

func (ks *keySet) add(s ssh.Signer, from string) {
	pub := string(s.PublicKey().Marshal())
	for _, have := range ks.signers {
		if string(have.PublicKey().Marshal()) == pub {
			return
		}
	}
	ks.signers = append(ks.signers, s)
	ks.tried = append(ks.tried, fmt.Sprintf("%s %s from %s", s.PublicKey().Type(), ssh.FingerprintSHA256(s.PublicKey()), from))
}

func (ks *keySet) methods() []ssh.AuthMethod {
	if len(ks.signers) == 0 {
		return nil
	}
	return []ssh.AuthMethod{ssh.PublicKeys(ks.signers...)}
}

func (ks *keySet) describe() string {
	if len(ks.signers) == 0 {
		return "no key to offer: set ssh.identityFile or load a key into ssh-agent; " + strings.Join(ks.tried, ", ")
	}
	return "offered " + strings.Join(ks.tried, ", ")
}

func (ks *keySet) close() {
	if ks.agent != nil {
		ks.agent.Close()
	}
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// Where implements Executor: it is the host's name.
func (c *Conn) Where() string { return c.name }

// ErrNotRoot says a host's Unix socket was not opened because the
// connection's user is not root: what answers there would not trust it.
var ErrNotRoot = errors.New("the connection's user is not root")

// ErrSessionRefused is what Run returns when the host refuses to open one
// more session on the connection (sshd's MaxSessions, while others are
// open).
var ErrSessionRefused = errors.New("the host refused another session on the connection")

// DialUnix opens a stream to the Unix socket at path on the host, forwarded
// by the host's sshd (direct-streamlocal), as root only: no process is
// started on the host.
func (c *Conn) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	if !c.root {
		return nil, ErrNotRoot
	}
	nc, err := c.client.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("open %s on %s: %w", path, c.name, err)
	}
	return nc, nil
}

// RoundTrip returns the round trip of the TCP handshake with the host, as
// the kernel measured it (no process scheduling in it); false through a
// jump host or where the kernel does not say.
func (c *Conn) RoundTrip() (time.Duration, bool) { return c.rtt, c.rtt > 0 }

// Close closes the connection, ending its sessions.
func (c *Conn) Close() error {
	err := c.client.Close()
	if c.jump != nil {
		c.jump.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// watch closes gone when the connection ends, and the jump connection
// with it.
func (c *Conn) watch() {
	c.client.Wait()
	if c.jump != nil {
		c.jump.Close()
	}
	close(c.gone)
}

// keepAlive closes the connection when it stops answering requests.
func (c *Conn) keepAlive(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-c.gone:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		limit := time.NewTimer(keepAliveMisses * every)
		select {
		case err := <-reply:
			limit.Stop()
			if err != nil {
				return
			}
		case <-limit.C:
			c.mu.Lock()
			c.lost = fmt.Errorf("no answer to keepalive within %s", keepAliveMisses*every)
			c.mu.Unlock()
			c.client.Close()
			return
		case <-c.gone:
			limit.Stop()
			return
		}
	}
}

// Command returns the line Run sends for cmd: argv shell-quoted, after
// `env NAME=VALUE...` for cmd.Env and `sudo -n --` for a privileged command
// of a non-root user with sudo.
func (c *Conn) Command(cmd Cmd) (string, error) {
	return commandLine(cmd, c.sudo)
}

func commandLine(cmd Cmd, sudo bool) (string, error) {
	if len(cmd.Argv) == 0 {
		return "", errors.New("empty command")
	}
	var words []string
	if sudo && cmd.Privileged {
		words = append(words, "sudo", "-n", "--")
	}
	if len(cmd.Env) > 0 {
		words = append(words, "env")
		for _, e := range cmd.Env {
			name, _, ok := strings.Cut(e, "=")
			if !ok || !validEnvName(name) {
				return "", fmt.Errorf("bad environment entry %q: want NAME=VALUE", e)
			}
			words = append(words, e)
		}
		if strings.Contains(cmd.Argv[0], "=") {
			// env would take it for one more assignment.
			return "", fmt.Errorf("program %q contains '=' and cannot follow env", cmd.Argv[0])
		}
	}
	words = append(words, cmd.Argv...)
	return ShellJoin(words), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Run implements Executor: it runs cmd in a new session and waits for it.
// When ctx ends, the remote command is sent SIGTERM and its session closed;
// Run then returns within a moment even if the host no longer answers.
func (c *Conn) Run(ctx context.Context, cmd Cmd) error {
	line, err := c.Command(cmd)
	if err != nil {
		return fmt.Errorf("run on %q: %w", c.name, err)
	}
	fail := func(err error) error {
		return fmt.Errorf("run %q on %q: %w", cmd.Argv[0], c.name, err)
	}

	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return fail(context.Cause(ctx))
	}
	defer func() { <-c.slots }()

	sess, err := c.newSession(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fail(err)
		}
		return fail(c.explain(err))
	}
	defer sess.Close()

	// The gates stop the session's copiers from writing to the caller's
	// writers once Run has returned.
	tail := NewTail(4096)
	var stderr io.Writer = tail
	if cmd.Stderr != nil {
		stderr = io.MultiWriter(cmd.Stderr, tail)
	}
	errGate := &gate{w: stderr}
	defer errGate.shut()
	sess.Stderr = errGate
	if cmd.Stdout != nil {
		outGate := &gate{w: cmd.Stdout}
		defer outGate.shut()
		sess.Stdout = outGate
	}
	var stdin io.WriteCloser
	if cmd.Stdin != nil {
		if stdin, err = sess.StdinPipe(); err != nil {
			return fail(err)
		}
	}
	if err := sess.Start(line); err != nil {
		return fail(fmt.Errorf("start: %w", c.explain(err)))
	}

	var stdinErr errBox
	if stdin != nil {
		go func() {
			r := &readErrReader{r: cmd.Stdin}
			io.Copy(stdin, r)
			if r.err != nil {
				// Do not let the command take a truncated input for
				// a complete one.
				stdinErr.set(fmt.Errorf("read standard input: %w", r.err))
				sess.Signal(ssh.SIGTERM)
				sess.Close()
				return
			}
			stdin.Close()
		}()
	}

	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		go func() {
			sess.Signal(ssh.SIGTERM)
			sess.Close()
		}()
		limit := time.NewTimer(waitDelay)
		defer limit.Stop()
		select {
		case <-waited:
		case <-limit.C:
		}
		return fail(context.Cause(ctx))
	}
	if e := stdinErr.get(); e != nil {
		return fail(e)
	}
	if err == nil {
		return nil
	}
	errGate.shut() // the tail is complete once Wait has returned
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		code, stderr := ee.ExitStatus(), tail.String()
		if ee.Signal() != "" {
			code = -1
			stderr = strings.TrimSpace(stderr + "\n(killed by signal " + ee.Signal() + ")")
		}
		return &ExitError{Where: c.name, Argv: cmd.Argv, Code: code, Stderr: stderr}
	}
	return fail(c.explain(err))
}

// newSession opens a session, giving up when ctx ends.
func (c *Conn) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	opened := make(chan result, 1)
	go func() {
		s, err := c.client.NewSession()
		// A host that limits sessions per connection (sshd's
		// MaxSessions) may not yet have counted the end of the one just
		// closed: a refusal is retried for a moment.
		for wait := 50 * time.Millisecond; refused(err) && wait <= 400*time.Millisecond && ctx.Err() == nil; wait *= 2 {
			time.Sleep(wait)
			s, err = c.client.NewSession()
		}
		opened <- result{s, err}
	}()
	select {
	case r := <-opened:
		if r.err != nil {
			if refused(r.err) {
				return nil, fmt.Errorf("open session: %w: %w", ErrSessionRefused, r.err)
			}
			return nil, fmt.Errorf("open session: %w", r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		go func() {
			if r := <-opened; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, context.Cause(ctx)
	}
}

// refused reports whether err is the host's refusal to open a channel.
func refused(err error) bool {
	var oce *ssh.OpenChannelError
	return errors.As(err, &oce)
}

// explain adds to err that the connection is gone, and why, if it is.
func (c *Conn) explain(err error) error {
	var missing *ssh.ExitMissingError
	// A session fails as the connection breaks, a moment before the
	// connection is seen to have ended.
	gone := false
	settle := time.NewTimer(50 * time.Millisecond)
	defer settle.Stop()
	select {
	case <-c.gone:
		gone = true
	case <-settle.C:
	}
	if !gone && !errors.As(err, &missing) && !errors.Is(err, io.EOF) {
		return err
	}
	c.mu.Lock()
	lost := c.lost
	c.mu.Unlock()
	if lost != nil {
		return fmt.Errorf("connection lost: %w", lost)
	}
	if gone {
		return fmt.Errorf("connection lost: %w", err)
	}
	return fmt.Errorf("no exit status (connection lost or command killed): %w", err)
}

// gate is a writer that can be shut; writes after that fail.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, io.ErrClosedPipe
	}
	return g.w.Write(p)
}

func (g *gate) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// readErrReader records the first read error other than EOF, so that it
// can be told from a write error.
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

type errBox struct {
	mu  sync.Mutex
	err error
}

func (b *errBox) set(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

func (b *errBox) get() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
