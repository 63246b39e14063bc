// Package hosts is where commands run: the one exec seam for local
// processes, the one SSH transport for remote ones, and the local test fleet.
//
// Everything that spawns a process or opens a remote session goes through an
// Executor, so that backends are written once against a single interface and
// tests can count, record or replace what runs.
package hosts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is one command to run, locally or on a host.
type Cmd struct {
	// Argv is the program and its arguments; never passed through a shell
	// locally, and shell-quoted word by word remotely.
	Argv []string
	// Env adds NAME=VALUE pairs to the environment.
	Env []string
	// Stdin, Stdout and Stderr may be nil.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Privileged commands run as root on a host whose user is not root
	// (through sudo). Locally it has no effect.
	Privileged bool
}

// Executor runs commands in one place: this machine or one host.
type Executor interface {
	// Run runs c to completion. A command that exits non-zero returns an
	// *ExitError carrying the tail of its standard error.
	Run(ctx context.Context, c Cmd) error
	// Where names the place for messages: "local" or the host's name.
	Where() string
}

// Ended reports whether a command that returned err ran to an end that
// was reported (nil, or an ExitError), rather than being stopped by its
// context: one stopped that way may still run on a host, since sshd does
// not signal a root login's session.
func Ended(err error) bool {
	var ee *ExitError
	return err == nil || errors.As(err, &ee)
}

// ExitError is a command that ran and failed.
type ExitError struct {
	Where  string
	Argv   []string
	Code   int    // exit status, or -1 when killed or the connection broke
	Stderr string // the last lines of standard error
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: %s exited with status %d", e.Where, ShellJoin(e.Argv), e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Output runs argv on e and returns its standard output.
func Output(ctx context.Context, e Executor, c Cmd) (string, error) {
	var out bytes.Buffer
	c.Stdout = &out
	err := e.Run(ctx, c)
	return out.String(), err
}

// Lines runs c on e and returns the non-empty lines of its output.
func Lines(ctx context.Context, e Executor, c Cmd) ([]string, error) {
	out, err := Output(ctx, e, c)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// localStopGrace is how long a stopped local command has to end after
// TERM.
const localStopGrace = 10 * time.Second

// Local runs commands on this machine.
type Local struct {
	// Env is added to every command's environment (before Cmd.Env).
	Env []string
}

// Where implements Executor.
func (Local) Where() string { return "local" }

// Run implements Executor.
func (l Local) Run(ctx context.Context, c Cmd) error {
	if len(c.Argv) == 0 {
		return errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	// Stopped, a command gets TERM, so that nix tears its builds down (a
	// KILL left the builders running); KILL only if it has not ended
	// localStopGrace later.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = localStopGrace
	cmd.Env = append(append(os.Environ(), l.Env...), c.Env...)
	cmd.Stdin = c.Stdin
	cmd.Stdout = c.Stdout
	tail := NewTail(4096)
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(c.Stderr, tail)
	} else {
		cmd.Stderr = tail
	}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ctx.Err() != nil {
			return fmt.Errorf("run %s: %w", c.Argv[0], ctx.Err())
		}
		return &ExitError{Where: "local", Argv: c.Argv, Code: code, Stderr: tail.String()}
	}
	return fmt.Errorf("run %s: %w", c.Argv[0], err)
}

// Tail keeps the last bytes written to it, cut at a line start.
type Tail struct {
	max int
	buf []byte
}

// NewTail returns a Tail keeping at most max bytes.
func NewTail(max int) *Tail { return &Tail{max: max} }

// Write implements io.Writer.
func (t *Tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// kept returns what is kept: at most max bytes, cut at a line start.
func (t *Tail) kept() []byte {
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b
}

// String returns the kept text, trimmed, at most max bytes and the last 20
// lines.
func (t *Tail) String() string {
	lines := strings.Split(strings.TrimSpace(string(t.kept())), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// OutputLog keeps what a command prints, from both streams as they come:
// the last 64 KiB, cut at a line start. Unlike a Tail, it may be written
// from several goroutines.
type OutputLog struct {
	mu sync.Mutex
	t  *Tail
}

// Write implements io.Writer.
func (o *OutputLog) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.t == nil {
		o.t = NewTail(64 << 10)
	}
	return o.t.Write(p)
}

// String returns the kept output without its last newline.
func (o *OutputLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.t == nil {
		return ""
	}
	return strings.TrimRight(string(o.t.kept()), "\n")
}

// ShellJoin quotes argv for a POSIX shell, leaving plain words bare.
func ShellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// ShellQuote quotes one word for a POSIX shell.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%#", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
