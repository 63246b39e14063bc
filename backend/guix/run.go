package guix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
)

// ErrNoGuix is returned (wrapped) by Instantiate when the deployer has no
// guix program.
var ErrNoGuix = errors.New("guix not found on PATH")

// InstallHint explains a missing guix to the user. Every Guix host is
// evaluated on the deployer, even with build: "target", so there is no
// setting that avoids it.
const InstallHint = "Guix hosts are evaluated on the deployer (guix system build -d), " +
	"even with build: \"target\"; install GNU Guix on the deployer (https://guix.gnu.org/manual/en/html_node/Installation.html), " +
	"or run `deploy eval` without --instantiate to see the plan with placeholders"

var errNoGuixHelp = fmt.Errorf("%w: %s", ErrNoGuix, InstallHint)

func phase(p string, err error) error {
	if err == nil {
		return nil
	}
	return &backend.PhaseError{Phase: p, Err: err}
}

// each runs f for every target, at most b.Parallel at once. `guix system`
// evaluates one operating-system file per process (unlike nix-instantiate,
// which takes many attributes), and each host may name its own channels, so
// there is no single process to batch them into; separate processes share
// the daemon, which builds shared derivations once.
func (b *Backend) each(ts []*backend.Target, f func(i int, t *backend.Target) error) []error {
	errs := make([]error, len(ts))
	n := b.Parallel
	if n < 1 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i, t)
		}()
	}
	wg.Wait()
	return errs
}

// Instantiate implements backend.Backend.
func (b *Backend) Instantiate(ctx context.Context, local hosts.Executor, ts []*backend.Target) []error {
	if err := local.Run(ctx, hosts.Cmd{Argv: VersionArgv()}); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			err = errNoGuixHelp
		} else {
			err = fmt.Errorf("probe guix: %w", err)
		}
		errs := make([]error, len(ts))
		for i := range errs {
			errs[i] = phase(backend.PhaseEval, err)
		}
		return errs
	}
	return b.each(ts, func(_ int, t *backend.Target) error {
		return phase(backend.PhaseEval, instantiate(ctx, local, t))
	})
}

func instantiate(ctx context.Context, local hosts.Executor, t *backend.Target) error {
	lines, err := hosts.Lines(ctx, local, hosts.Cmd{Argv: InstantiateArgv(t.Host.Guix)})
	if err != nil {
		return fmt.Errorf("instantiate %q: %w", t.Host.Guix.Config, err)
	}
	if len(lines) == 0 || !strings.HasSuffix(lines[len(lines)-1], ".drv") {
		return fmt.Errorf("instantiate %q: guix printed no derivation", t.Host.Guix.Config)
	}
	drv := lines[len(lines)-1]
	text, err := hosts.Output(ctx, local, hosts.Cmd{Argv: ReadDrvArgv(drv)})
	if err != nil {
		return fmt.Errorf("read derivation: %w", err)
	}
	outs, err := backend.DrvOutputs(text)
	if err != nil {
		return fmt.Errorf("read derivation %q: %w", drv, err)
	}
	if outs["out"] == "" {
		return fmt.Errorf("read derivation %q: no output \"out\"", drv)
	}
	t.Drv, t.Out = drv, outs["out"]
	return nil
}

// Build implements backend.Backend.
func (b *Backend) Build(ctx context.Context, local hosts.Executor, ts []*backend.Target) []error {
	var mkdir sync.Once
	var mkdirErr error
	return b.each(ts, func(_ int, t *backend.Target) error {
		if t.Host.Build == "target" {
			return nil
		}
		mkdir.Do(func() { mkdirErr = local.Run(ctx, hosts.Cmd{Argv: GCRootsArgv(b.GCRoots)}) })
		if mkdirErr != nil {
			return phase(backend.PhaseBuild, fmt.Errorf("make GC root directory: %w", mkdirErr))
		}
		lines, err := hosts.Lines(ctx, local, hosts.Cmd{Argv: BuildArgv(t.Host.Guix, b.gcRoot(t))})
		if err != nil {
			return phase(backend.PhaseBuild, fmt.Errorf("build %q: %w", t.Host.Guix.Config, err))
		}
		if len(lines) == 0 || lines[len(lines)-1] != t.Out {
			return phase(backend.PhaseBuild, fmt.Errorf("build %q: guix built %q, not %q from the derivation",
				t.Host.Guix.Config, strings.Join(lines, " "), t.Out))
		}
		return nil
	})
}

// State implements backend.Backend.
func (b *Backend) State(ctx context.Context, remote hosts.Executor, t *backend.Target) (backend.State, error) {
	out, err := hosts.Output(ctx, remote, hosts.Cmd{Argv: StateArgv()})
	if err != nil {
		return backend.State{}, phase(backend.PhaseConnect, fmt.Errorf("read system state: %w", err))
	}
	return parseState(out)
}

func parseState(out string) (backend.State, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		return backend.State{}, phase(backend.PhaseConnect, fmt.Errorf("read system state: unexpected output %q", out))
	}
	return backend.State{Current: lines[0], Profile: lines[1], Generation: backend.Generation(lines[2])}, nil
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// stream runs from on the deployer with its output fed to to on the host,
// over the host's connection, and returns the bytes sent.
func stream(ctx context.Context, local, remote hosts.Executor, from []string, to hosts.Cmd) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := local.Run(ctx, hosts.Cmd{Argv: from, Stdout: pw})
		pw.CloseWithError(err)
		done <- err
	}()
	c := &counter{r: pr}
	to.Stdin = c
	rerr := remote.Run(ctx, to)
	// Unblock the deployer's side if the host stopped reading early.
	pr.CloseWithError(io.ErrClosedPipe)
	lerr := <-done
	switch {
	case rerr != nil && lerr != nil:
		return c.n, fmt.Errorf("%w (on the deployer: %v)", rerr, lerr)
	case rerr != nil:
		return c.n, rerr
	}
	return c.n, lerr
}

// Push implements backend.Backend.
func (b *Backend) Push(ctx context.Context, local, remote hosts.Executor, t *backend.Target) (backend.CopyStats, error) {
	var stats backend.CopyStats
	g := t.Host.Guix
	if g.Authorize {
		if _, err := stream(ctx, local, remote, KeyArgv(), hosts.Cmd{Argv: AuthorizeArgv(), Privileged: true}); err != nil {
			return stats, phase(backend.PhaseCopy, fmt.Errorf("authorize the deployer's key: %w", err))
		}
	}
	closure := t.Out
	if t.Host.Build == "target" {
		closure = t.Drv
	}
	var missing bytes.Buffer
	if _, err := stream(ctx, local, remote, RequisitesArgv(closure), hosts.Cmd{Argv: MissingArgv(), Stdout: &missing}); err != nil {
		return stats, phase(backend.PhaseCopy, fmt.Errorf("ask which paths are missing: %w", err))
	}
	paths := strings.Fields(missing.String())
	if len(paths) > 0 {
		n, err := stream(ctx, local, remote, ExportArgv(paths), hosts.Cmd{Argv: ImportArgv(), Privileged: true})
		stats.Bytes += n
		if err != nil {
			return stats, phase(backend.PhaseCopy, fmt.Errorf("copy %d paths: %w", len(paths), err))
		}
		stats.Paths = len(paths)
	}
	if t.Host.Build == "target" {
		lines, err := hosts.Lines(ctx, remote, hosts.Cmd{Argv: BuildDrvArgv(t.Drv)})
		if err != nil {
			return stats, phase(backend.PhaseBuild, fmt.Errorf("build %q: %w", t.Drv, err))
		}
		if len(lines) == 0 || lines[len(lines)-1] != t.Out {
			return stats, phase(backend.PhaseBuild, fmt.Errorf("build %q: guix built %q, not %q", t.Drv, strings.Join(lines, " "), t.Out))
		}
	}
	// The configuration files are not store paths: they are sent on every
	// push and counted in Bytes only.
	n, err := stream(ctx, local, remote, PackArgv(g), hosts.Cmd{Argv: UnpackArgv(b.Stage), Privileged: true})
	stats.Bytes += n
	if err != nil {
		return stats, phase(backend.PhaseCopy, fmt.Errorf("copy the configuration: %w", err))
	}
	return stats, nil
}

// Activate implements backend.Backend.
func (b *Backend) Activate(ctx context.Context, remote hosts.Executor, t *backend.Target, goal string) error {
	if goal != "switch" {
		return phase(backend.PhaseActivate, fmt.Errorf("goal %q: Guix System can only switch", goal))
	}
	log := &hosts.OutputLog{}
	bw := &beginWriter{w: log}
	err := remote.Run(ctx, hosts.Cmd{Argv: ReconfigureArgv(t.Host.Guix, b.Stage), Stdout: bw, Stderr: log, Privileged: true})
	t.Output = log.String()
	if err != nil {
		if pid := bw.pid(); pid > 0 && !hosts.Ended(err) {
			// Interrupted, not ended: it may run on (see Rollback).
			b.mu.Lock()
			if b.running == nil {
				b.running = map[*backend.Target]int{}
			}
			b.running[t] = pid
			b.mu.Unlock()
		}
		return phase(backend.PhaseActivate, fmt.Errorf("reconfigure: %w", err))
	}
	s, err := b.State(ctx, remote, t)
	if err != nil {
		return phase(backend.PhaseActivate, err)
	}
	if !s.Reached(goal, t.Out) {
		return phase(backend.PhaseActivate, fmt.Errorf("reconfigure left the host on %q (profile %q), not the pushed %q: "+
			"the host's Guix differs from the deployer's; pin both with guix.channels", s.Current, s.Profile, t.Out))
	}
	return nil
}

// beginWriter passes on what it is written but for the first line, which
// it keeps: ReconfigureArgv's begin line.
type beginWriter struct {
	w     io.Writer
	mu    sync.Mutex
	first []byte
	done  bool
}

func (w *beginWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if !w.done {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.first = append(w.first, p...)
			return n, nil
		}
		w.first, w.done, p = append(w.first, p[:i]...), true, p[i+1:]
	}
	if _, err := w.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// pid is the process number the begin line gave, or 0.
func (w *beginWriter) pid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		return 0
	}
	pid, _ := backend.BeginPID(string(w.first))
	return pid
}

// Rollback implements backend.Backend. After an interrupted reconfigure
// it first ends that reconfigure, which sshd's closing of the session
// does not (backend.StopArgv): else it could switch the host after the
// rollback.
func (b *Backend) Rollback(ctx context.Context, remote hosts.Executor, t *backend.Target, goal string, prev backend.State) error {
	b.mu.Lock()
	pid := b.running[t]
	delete(b.running, t)
	b.mu.Unlock()
	if pid > 0 {
		if err := remote.Run(ctx, hosts.Cmd{Argv: backend.StopArgv(strconv.Itoa(pid), stagedConfig(t.Host.Guix, b.Stage)), Privileged: true}); err != nil {
			return phase(backend.PhaseRollback, fmt.Errorf("end the interrupted reconfigure: %w", err))
		}
	}
	if prev.Generation == 0 {
		return phase(backend.PhaseRollback, errors.New("the host had no system generation before: nothing to roll back to"))
	}
	argv := SwitchGenerationArgv(strconv.Itoa(prev.Generation))
	if err := remote.Run(ctx, hosts.Cmd{Argv: argv, Privileged: true}); err != nil {
		return phase(backend.PhaseRollback, fmt.Errorf("switch to generation %d: %w", prev.Generation, err))
	}
	s, err := b.State(ctx, remote, t)
	if err != nil {
		return phase(backend.PhaseRollback, err)
	}
	if s.Current != prev.Current || s.Profile != prev.Profile {
		return phase(backend.PhaseRollback, fmt.Errorf("after switching to generation %d the host runs %q (profile %q), not %q",
			prev.Generation, s.Current, s.Profile, prev.Current))
	}
	return nil
}
