// Command deploybench is `make bench-deploy`: on local test fleets of 20
// hosts it times a first deploy and a no-op redeploy with deploy against a
// serial shell loop (nix-build, nix-copy-closure, activation over ssh, host
// after host) in the same run, and prints the ratios next to the goals of
// DESIGN.md. It also counts SSH connections and sessions per host and
// compares the bytes deploy copied with the NAR size of the missing paths.
//
// Rules it keeps:
//   - Both sides do the same work: each run brings up two fresh fleets (one
//     per side, empty stores) and gives each side its own new salt, which
//     every derivation takes, so both really evaluate and build everything
//     locally and copy every path.
//   - The sides alternate which goes first from run to run.
//   - Every timed command starts with nothing left to write back (sync):
//     the previous command's store paths do not land in its fsyncs.
//   - Every fleet it brings up is taken down again, on error and on Ctrl-C
//     too; only processes it started are ever stopped.
//
// It needs what the local fleet needs: root, nix-bin, openssh-server.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"cuedeploy.dev/cuedeploy/backend/rollout"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

type cli struct {
	Hosts    int    `default:"20" help:"Hosts per fleet (${default})."`
	Runs     int    `default:"3" help:"Measurements of each scenario; the median is reported (${default})."`
	Deploy   string `default:"bin/deploy" type:"path" help:"The deploy binary (${default})."`
	Parallel int    `default:"0" placeholder:"N" help:"Pass --parallel N to deploy (0: deploy's default)."`
	Shared   int    `default:"4" placeholder:"N" help:"Libraries every host's closure shares (${default})."`
	Size     int    `default:"256" placeholder:"KiB" help:"Payload of each library in KiB (${default})."`
	Keep     bool   `help:"Keep the work directory (loop script, deployment) for a look afterwards."`
	Check    bool   `help:"Exit 1 when a goal or a check is not met (a benchmark reports by default)."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var c cli
	kong.Parse(&c,
		kong.Name("deploybench"),
		kong.Description("Time deploy against a serial shell loop on local test fleets (make bench-deploy)."))
	code := 0
	if err := c.run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "deploybench: %v\n", err)
		code = 1
		var missing *fleet.MissingError
		if errors.As(err, &missing) {
			code = 3 // as localfleet: this machine cannot run the fleet
		}
	}
	// Signals stay caught until here, so a second Ctrl-C cannot cut the
	// fleets' cleanup short.
	stop()
	os.Exit(code)
}

// errUnmet says --check found a goal or check not met.
var errUnmet = errors.New("goals or checks not met")

// bench is one invocation: its work directory and the fleets it keeps up.
type bench struct {
	cli
	w      workload
	work   string
	stderr io.Writer
	live   map[*fleet.Fleet]bool
}

func (c *cli) run(ctx context.Context, stdout, stderr io.Writer) (err error) {
	if c.Hosts < 1 || c.Runs < 1 || c.Shared < 1 || c.Size < 0 {
		return errors.New("--hosts, --runs and --shared must be at least 1")
	}
	if err := fleet.Requirements(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(c.Deploy); err != nil {
		return fmt.Errorf("find deploy: %w (make build makes it)", err)
	}
	work, err := os.MkdirTemp("", "deploybench-")
	if err != nil {
		return err
	}
	b := &bench{cli: *c, work: work, stderr: stderr, live: map[*fleet.Fleet]bool{}}
	for i := 1; i <= c.Hosts; i++ {
		b.w.names = append(b.w.names, fmt.Sprintf("host-%d", i))
	}
	b.w.shared, b.w.sizeKiB = c.Shared, c.Size
	defer func() {
		for f := range b.live {
			err = errors.Join(err, b.down(f))
		}
		// deploy keeps a GC root per host under the deployment's name; the
		// benchmark's systems need not outlive it.
		os.RemoveAll("/nix/var/nix/gcroots/cuedeploy/deploybench")
		if c.Keep {
			fmt.Fprintf(stderr, "kept %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()

	fmt.Fprintf(stderr, "deploybench: %d hosts, %d runs; each run: two fresh fleets, new salts (nothing built yet on either side)\n", c.Hosts, c.Runs)
	var rs []runStats
	for r := 0; r < c.Runs; r++ {
		s, err := b.oneRun(ctx, r)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		fmt.Fprintf(stderr, "run %d/%d: loop first %s, no-op %s; deploy first %s, no-op %s\n", r+1, c.Runs,
			secs(s.loop[first]), secs(s.loop[noop]), secs(s.deploy[first]), secs(s.deploy[noop]))
		rs = append(rs, s)
	}
	if ok := report(stdout, c, rs); !ok && c.Check {
		return errUnmet
	}
	return nil
}

func (b *bench) up(ctx context.Context, dir string) (*fleet.Fleet, error) {
	f, err := fleet.Up(ctx, fleet.Config{StateDir: dir, Hosts: b.w.names})
	if err != nil {
		return nil, err
	}
	b.live[f] = true
	return f, nil
}

func (b *bench) down(f *fleet.Fleet) error {
	delete(b.live, f)
	if err := f.Down(); err != nil {
		return fmt.Errorf("take fleet %s down: %w", f.StateDir, err)
	}
	return nil
}

const (
	first = 0
	noop  = 1
)

// runStats is one run of both sides.
type runStats struct {
	loop, deploy [2]time.Duration
	// CPU time used here (the command and its children) and on the hosts.
	loopCPU, deployCPU, loopRemoteCPU, deployRemoteCPU [2]time.Duration
	// The machine's busy CPU time during each timed command, ours included.
	loopBusy, deployBusy [2]time.Duration
	// Per host, for the first deploy and the no-op.
	loopConns, deployConns, deploySessions [2]map[string]int
	// closure is the number of paths in each host's closure.
	closure map[string]int
	// sent and nar are, per host, the bytes deploy streamed and the NAR
	// size of the paths the host lacked; paths is how many it lacked.
	sent, nar [2]map[string]int64
	// frame is what the add-to-store-nar commands add around those NARs.
	frame  [2]map[string]int64
	paths  [2]map[string]int
	copied [2]map[string]int
}

func (b *bench) oneRun(ctx context.Context, r int) (s runStats, err error) {
	dir := filepath.Join(b.work, fmt.Sprintf("run-%d", r+1))
	loopF, err := b.up(ctx, filepath.Join(dir, "loop-fleet"))
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, b.down(loopF)) }()
	deployF, err := b.up(ctx, filepath.Join(dir, "deploy-fleet"))
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, b.down(deployF)) }()

	loopDir, deployDir := filepath.Join(dir, "loop"), filepath.Join(dir, "deploy")
	if err := b.w.write(loopDir, nil); err != nil {
		return s, err
	}
	if err := b.w.write(deployDir, deployF); err != nil {
		return s, err
	}
	script, err := writeLoop(loopDir, filepath.Join(loopDir, "bench.nix"), loopF)
	if err != nil {
		return s, err
	}
	loopSide := func() error { return b.loopSide(ctx, &s, loopDir, script, salt(), loopF) }
	deploySide := func() error { return b.deploySide(ctx, &s, deployDir, salt(), deployF) }
	sides := []func() error{loopSide, deploySide}
	if r%2 == 1 {
		sides[0], sides[1] = sides[1], sides[0]
	}
	for _, side := range sides {
		if err := side(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// salt is new for every side of every run.
func salt() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// measured is one timed command and what the fleet's hosts did meanwhile.
type measured struct {
	out                        string
	took, cpu, busy, remoteCPU time.Duration
	conns, sessions            map[string]int
}

// measure runs argv in dir and reads the fleet's counters around it.
func measure(ctx context.Context, f *fleet.Fleet, dir string, argv ...string) (measured, error) {
	var m measured
	// What the previous command left to write back (tens of MB of store
	// paths) goes to disk now, not during this one's fsyncs.
	syscall.Sync()
	before, err := readCounts(f)
	if err != nil {
		return m, err
	}
	busy := machineBusy()
	m.out, m.took, m.cpu, err = runCPU(ctx, dir, nil, argv...)
	if err != nil {
		return m, err
	}
	m.busy = machineBusy() - busy
	settle()
	after, err := readCounts(f)
	if err != nil {
		return m, err
	}
	m.remoteCPU = after.cpu - before.cpu
	m.conns, m.sessions = sub(after.conns, before.conns), sub(after.sessions, before.sessions)
	return m, nil
}

func (b *bench) loopSide(ctx context.Context, s *runStats, dir, script, salt string, f *fleet.Fleet) error {
	for pass := first; pass <= noop; pass++ {
		m, err := measure(ctx, f, dir, "bash", script, salt)
		if err != nil {
			return fmt.Errorf("the loop: %w", err)
		}
		s.loop[pass], s.loopCPU[pass], s.loopBusy[pass] = m.took, m.cpu, m.busy
		s.loopRemoteCPU[pass], s.loopConns[pass] = m.remoteCPU, m.conns
		systems, err := loopSystems(dir, f)
		if err != nil {
			return err
		}
		if err := checkRunning(f, systems); err != nil {
			return fmt.Errorf("after the loop: %w", err)
		}
	}
	return nil
}

func (b *bench) deploySide(ctx context.Context, s *runStats, dir, salt string, f *fleet.Fleet) error {
	argv := []string{b.Deploy, "-C", dir, "-t", "salt=" + salt, "deploy", "--json", "--nix-option", "substituters="}
	if b.Parallel > 0 {
		argv = append(argv, "--parallel", fmt.Sprint(b.Parallel))
	}
	for pass := first; pass <= noop; pass++ {
		had := map[string]map[string]bool{}
		for _, h := range f.Hosts {
			m, err := storePaths(h)
			if err != nil {
				return err
			}
			had[h.Name] = m
		}
		m, err := measure(ctx, f, "", argv...)
		if err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
		out := m.out
		s.deploy[pass], s.deployCPU[pass], s.deployBusy[pass] = m.took, m.cpu, m.busy
		s.deployRemoteCPU[pass], s.deployConns[pass], s.deploySessions[pass] = m.remoteCPU, m.conns, m.sessions
		want := rollout.Unchanged
		if pass == first {
			want = rollout.Deployed
		}
		res, err := parseDeploy(out, want)
		if err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
		systems := map[string]string{}
		for name, r := range res {
			systems[name] = r.System
		}
		if err := checkRunning(f, systems); err != nil {
			return fmt.Errorf("after deploy: %w", err)
		}
		cl, err := closures(ctx, systems)
		if err != nil {
			return err
		}
		var all []string
		seen := map[string]bool{}
		s.closure = map[string]int{}
		for name, paths := range cl {
			s.closure[name] = len(paths)
			for _, p := range paths {
				if !seen[p] {
					seen[p] = true
					all = append(all, p)
				}
			}
		}
		sizes, frames, err := narInfo(ctx, all)
		if err != nil {
			return err
		}
		s.sent[pass], s.nar[pass], s.frame[pass] = map[string]int64{}, map[string]int64{}, map[string]int64{}
		s.paths[pass], s.copied[pass] = map[string]int{}, map[string]int{}
		for name, paths := range cl {
			for _, p := range paths {
				if !had[name][p] {
					s.nar[pass][name] += sizes[p]
					s.frame[pass][name] += frames[p]
					s.paths[pass][name]++
				}
			}
			s.sent[pass][name] = res[name].Copied.Bytes
			s.copied[pass][name] = res[name].Copied.Paths
		}
	}
	return nil
}

// settle gives the hosts' sshd a moment to log and reap the connections
// that just ended, before they are counted; it is never timed.
func settle() { time.Sleep(300 * time.Millisecond) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
