package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cuedeploy.dev/cuedeploy/backend/rollout"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

// run runs argv in dir and returns its stdout and how long it took. The
// command gets its own process group, which is what a cancelled ctx (Ctrl-C)
// stops, so that no nix-build or ssh of a killed loop keeps running.
func run(ctx context.Context, dir string, env []string, argv ...string) (string, time.Duration, error) {
	out, took, _, err := runCPU(ctx, dir, env, argv...)
	return out, took, err
}

// runCPU is run that also returns the CPU time the command and the
// descendants it waited for used.
func runCPU(ctx context.Context, dir string, env []string, argv ...string) (string, time.Duration, time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", took, cpu, ctx.Err()
		}
		return stdout.String(), took, cpu, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail(stderr.String(), 15))
	}
	return stdout.String(), took, cpu, nil
}

// clockTick is the kernel's USER_HZ, the unit of /proc/PID/stat's times.
const clockTick = 100

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// counts are what the fleet's hosts have done so far: per host from its
// sshd log, and the CPU time of all of them.
type counts struct {
	conns    map[string]int // SSH connections accepted
	sessions map[string]int // sessions (one per remote command) started
	cpu      time.Duration
}

func readCounts(f *fleet.Fleet) (counts, error) {
	c := counts{conns: map[string]int{}, sessions: map[string]int{}}
	for _, h := range f.Hosts {
		conns, sessions, err := h.SSHDCounts()
		if err != nil {
			return c, err
		}
		c.conns[h.Name], c.sessions[h.Name] = conns, sessions
		t, err := h.CPU()
		if err != nil {
			return c, err
		}
		c.cpu += t
	}
	return c, nil
}

// sub returns after minus before, by host.
func sub(after, before map[string]int) map[string]int {
	d := map[string]int{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// storePaths lists what host h's own store holds.
func storePaths(h fleet.Host) (map[string]bool, error) {
	es, err := os.ReadDir(h.Path("/nix/store"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list the store of %q: %w", h.Name, err)
	}
	m := map[string]bool{}
	for _, e := range es {
		m["/nix/store/"+e.Name()] = true
	}
	return m, nil
}

// checkRunning errs unless every host of f runs the system want names.
func checkRunning(f *fleet.Fleet, want map[string]string) error {
	var errs []error
	for _, h := range f.Hosts {
		got, err := os.Readlink(h.Path("/run/current-system"))
		if err != nil || got != want[h.Name] {
			errs = append(errs, fmt.Errorf("%s runs %q, want %q", h.Name, got, want[h.Name]))
		}
	}
	return errors.Join(errs...)
}

// deployOutput is what deploy --json prints.
type deployOutput struct {
	OK      bool             `json:"ok"`
	Results []rollout.Result `json:"results"`
}

func parseDeploy(out string, want rollout.Status) (map[string]rollout.Result, error) {
	var d deployOutput
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		return nil, fmt.Errorf("read deploy --json: %w", err)
	}
	by := map[string]rollout.Result{}
	var errs []error
	for _, r := range d.Results {
		by[r.Host] = r
		if r.Status != want {
			errs = append(errs, fmt.Errorf("%s: %s in phase %s, want %s: %s", r.Host, r.Status, r.Phase, want, r.Error))
		}
	}
	return by, errors.Join(errs...)
}

// closures returns each system's closure from the local store.
func closures(ctx context.Context, systems map[string]string) (map[string][]string, error) {
	m := map[string][]string{}
	for name, sys := range systems {
		out, _, err := run(ctx, "", nil, "nix-store", "--query", "--requisites", sys)
		if err != nil {
			return nil, err
		}
		m[name] = strings.Fields(out)
	}
	return m, nil
}

// narInfo returns, per path, its NAR size and the bytes deploy's copy adds
// around its NAR: the host's nix daemon takes the copy (AddToStoreNar), so
// the operation, the path, its deriver, its NAR hash ("sha256:" and 64 hex
// digits), its references, the registration time, NAR size and trust flag,
// an empty signature list, an empty content address, the repair and
// signature-check flags, and the length of each 64 KiB frame of the NAR
// and the empty frame that ends them. One nix-store --dump-db says all of
// it for every path.
func narInfo(ctx context.Context, paths []string) (sizes, frames map[string]int64, err error) {
	str := func(s string) int64 { return 8 + int64(len(s)+7)/8*8 }
	out, _, err := run(ctx, "", nil, append([]string{"nix-store", "--dump-db"}, paths...)...)
	if err != nil {
		return nil, nil, err
	}
	sizes, frames = map[string]int64{}, map[string]int64{}
	lines := strings.Split(out, "\n")
	for i := 0; i+4 < len(lines); {
		path := lines[i]
		size, err1 := strconv.ParseInt(lines[i+2], 10, 64)
		nrefs, err2 := strconv.Atoi(lines[i+4])
		if err1 != nil || err2 != nil || i+5+nrefs > len(lines) {
			return nil, nil, fmt.Errorf("nix-store --dump-db: cannot read the entry of %q", path)
		}
		const frame = 64 << 10 // deploy's frame size
		n := 8 + str(path) + str(lines[i+3]) + str(strings.Repeat("x", 71)) + 8 + 8 + 8 + 8 + 8 + str("") + 8 + 8 +
			8*((size+frame-1)/frame) + 8
		for _, r := range lines[i+5 : i+5+nrefs] {
			n += str(r)
		}
		sizes[path], frames[path] = size, n
		i += 5 + nrefs
	}
	if len(sizes) != len(paths) {
		return nil, nil, fmt.Errorf("nix-store --dump-db: %d entries for %d paths", len(sizes), len(paths))
	}
	return sizes, frames, nil
}

// machineBusy is the CPU time the whole machine has spent busy (user,
// nice, system, irq, softirq, steal) since boot, from /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTick
}
