package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/backend/rollout"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// The end-to-end tests deploy the forum example's cd environment onto a
// real local fleet (sshd hosts with their own /nix), with the real nix, and
// check what a user sees: exit codes, output, and the hosts' state.

var deployBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploy-bin-")
	if err != nil {
		panic(err)
	}
	deployBin = filepath.Join(dir, "deploy")
	if out, err := exec.Command("go", "build", "-o", deployBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// forum copies examples/forum into a temporary directory and writes the
// fleet's CUE into its cd package; it returns the cd package's directory.
func forum(t *testing.T, f *fleet.Fleet) string {
	return forumPackage(t, f, "cd", "")
}

// forumPackage copies examples/forum into a temporary directory, adds
// package pkg (with source src, unless it exists already) and writes the
// fleet's CUE into it; it returns the package's directory.
func forumPackage(t *testing.T, f *fleet.Fleet, pkg, src string) string {
	t.Helper()
	dst := copyForum(t)
	dir := filepath.Join(dst, pkg)
	files := map[string]string{}
	if src != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		files["deployment.cue"] = src
	}
	writePackage(t, f, dir, pkg, files)
	return dir
}

// writePackage writes files into dir, with the fleet's CUE for package
// pkg beside them as localfleet.cue.
func writePackage(t *testing.T, f *fleet.Fleet, dir, pkg string, files map[string]string) {
	t.Helper()
	src, err := f.CUE(pkg)
	if err != nil {
		t.Fatal(err)
	}
	files["localfleet.cue"] = string(src)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// wrap, when set, wraps the deploy command line (to run it in a mount
// namespace).
var wrap func(args ...string) []string

type runResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func deploy(t *testing.T, dir string, args ...string) runResult {
	t.Helper()
	argv := append([]string{deployBin, "-C", dir}, args...)
	if wrap != nil {
		argv = wrap(argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := runResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run deploy: %v", err)
	}
	t.Logf("deploy %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

type deployJSON struct {
	Deployment string           `json:"deployment"`
	OK         bool             `json:"ok"`
	Results    []rollout.Result `json:"results"`
}

// deployJSONRun runs deploy --json and decodes its results by host.
func deployJSONRun(t *testing.T, dir string, args ...string) (runResult, map[string]rollout.Result) {
	t.Helper()
	args = append([]string{"deploy", "--json", "--nix-option", "substituters="}, args...)
	r := deploy(t, dir, args...)
	var out deployJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, r.stdout)
	}
	by := map[string]rollout.Result{}
	for _, res := range out.Results {
		by[res.Host] = res
	}
	return r, by
}

// hostState is what a host runs and boots, read from its own directories.
type hostState struct {
	current, profile string
	generations      []string
	activations      []string
}

func state(t *testing.T, h fleet.Host) hostState {
	t.Helper()
	var s hostState
	s.current, _ = os.Readlink(h.Path("/run/current-system"))
	if link, err := os.Readlink(h.Path("/nix/var/nix/profiles/system")); err == nil {
		s.profile, _ = os.Readlink(h.Path(filepath.Join("/nix/var/nix/profiles", link)))
	}
	gens, _ := filepath.Glob(h.Path("/nix/var/nix/profiles/system-*-link"))
	for _, g := range gens {
		s.generations = append(s.generations, filepath.Base(g))
	}
	if b, err := os.ReadFile(h.Path("/run/cuedeploy-example/activations")); err == nil {
		s.activations = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	return s
}

func connections(t *testing.T, f *fleet.Fleet) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, h := range f.Hosts {
		n, err := h.Connections()
		if err != nil {
			t.Fatal(err)
		}
		m[h.Name] = n
	}
	return m
}

func host(t *testing.T, f *fleet.Fleet, name string) fleet.Host {
	t.Helper()
	h, ok := f.Host(name)
	if !ok {
		t.Fatalf("no fleet host %q", name)
	}
	return h
}

func TestDeployForumOnLocalFleet(t *testing.T) {
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"lb", "forum-1", "forum-2"}})
	dir := forum(t, f)
	names := []string{"lb", "forum-1", "forum-2"}
	// counted is deployJSONRun that also counts, in each host's sshd log, the
	// connections the run opened: one for each host it selected and
	// connected (a host cancelled under --fail-fast may not have), none
	// for the others.
	counted := func(t *testing.T, args ...string) (runResult, map[string]rollout.Result) {
		t.Helper()
		before := connections(t, f)
		r, res := deployJSONRun(t, dir, args...)
		after := connections(t, f)
		for _, n := range names {
			got := after[n] - before[n]
			rs, selected := res[n]
			switch {
			case !selected || rs.Phase == "connect":
				if got != 0 {
					t.Errorf("%s (%s at %s): %d SSH connections, want none", n, rs.Status, rs.Phase, got)
				}
			case rs.Status == rollout.Cancelled:
				if got > 1 {
					t.Errorf("%s (cancelled): %d SSH connections, want at most one", n, got)
				}
			case got != 1:
				t.Errorf("%s (%s): %d SSH connections in one run, want exactly 1", n, rs.Status, got)
			}
		}
		return r, res
	}

	t.Run("build touches no host", func(t *testing.T) {
		before := connections(t, f)
		// Systems no earlier run built: their GC roots can only be this
		// run's.
		release := fmt.Sprintf("release=built-%d", time.Now().UnixNano())
		r := deploy(t, dir, "build", "-t", release, "--nix-option", "substituters=")
		if r.code != 0 {
			t.Fatalf("exit %d, want 0", r.code)
		}
		for _, n := range names {
			line := ""
			for _, l := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(l, n+" ") {
					line = l
				}
			}
			fields := strings.Fields(line)
			if len(fields) != 3 || fields[1] != "built" || !strings.HasPrefix(fields[2], "/nix/store/") {
				t.Errorf("%s: line %q, want NAME built /nix/store/...", n, line)
				continue
			}
			if _, err := os.Stat(fields[2]); err != nil {
				t.Errorf("%s: the printed system is not in the deployer's store: %v", n, err)
			}
			if root, err := os.Readlink(filepath.Join("/nix/var/nix/gcroots/cuedeploy/forum-cd", n)); err != nil || root != fields[2] {
				t.Errorf("%s: GC root points at %q (%v), want %s", n, root, err, fields[2])
			}
		}
		if after := connections(t, f); !equalCounts(before, after) {
			t.Errorf("deploy build connected to hosts: %v -> %v", before, after)
		}
	})

	t.Run("first deploy", func(t *testing.T) {
		before := connections(t, f)
		r, res := counted(t)
		if r.code != 0 {
			t.Fatalf("exit %d, want 0", r.code)
		}
		after := connections(t, f)
		for _, n := range names {
			if res[n].Status != rollout.Deployed {
				t.Errorf("%s: status %q, want deployed (%s)", n, res[n].Status, res[n].Error)
			}
			s := state(t, host(t, f, n))
			if s.current != res[n].System || s.profile != res[n].System {
				t.Errorf("%s: runs %q and boots %q, want %q", n, s.current, s.profile, res[n].System)
			}
			if len(s.generations) != 1 {
				t.Errorf("%s: generations %v, want one", n, s.generations)
			}
			if res[n].Copied.Paths == 0 || res[n].Copied.Bytes == 0 {
				t.Errorf("%s: copied %+v, want the closure", n, res[n].Copied)
			}
			if got := after[n] - before[n]; got != 1 {
				t.Errorf("%s: %d SSH connections in one run, want exactly 1", n, got)
			}
		}
	})

	t.Run("no-op redeploy", func(t *testing.T) {
		before := map[string]hostState{}
		for _, n := range names {
			before[n] = state(t, host(t, f, n))
		}
		r, res := counted(t)
		if r.code != 0 {
			t.Fatalf("exit %d, want 0", r.code)
		}
		for _, n := range names {
			if res[n].Status != rollout.Unchanged {
				t.Errorf("%s: status %q, want unchanged", n, res[n].Status)
			}
			after := state(t, host(t, f, n))
			if len(after.generations) != len(before[n].generations) || len(after.activations) != len(before[n].activations) {
				t.Errorf("%s: a no-op made a generation or an activation: %v -> %v", n, before[n], after)
			}
		}
	})

	t.Run("tag selection touches only tagged hosts", func(t *testing.T) {
		lbBefore := state(t, host(t, f, "lb"))
		r, res := counted(t, "-t", "release=2", "--on", "tag:forum")
		if r.code != 0 {
			t.Fatalf("exit %d, want 0", r.code)
		}
		if _, ok := res["lb"]; ok {
			t.Errorf("lb is in the results of --on tag:forum")
		}
		for _, n := range []string{"forum-1", "forum-2"} {
			if res[n].Status != rollout.Deployed {
				t.Errorf("%s: status %q, want deployed", n, res[n].Status)
			}
			if s := state(t, host(t, f, n)); s.current != res[n].System || len(s.generations) != 2 {
				t.Errorf("%s: state %+v, want running %s in generation 2", n, s, res[n].System)
			}
		}
		if lbAfter := state(t, host(t, f, "lb")); len(lbAfter.activations) != len(lbBefore.activations) {
			t.Errorf("lb was activated by a deploy --on tag:forum")
		}
	})

	t.Run("build on target", func(t *testing.T) {
		// A system no earlier run built here: if the deployer has it
		// afterwards, it built it.
		release := fmt.Sprintf("release=target-%d", time.Now().UnixNano())
		r, res := counted(t, "-t", release, "--on", "forum-1", "--build", "target")
		if r.code != 0 {
			t.Fatalf("exit %d, want 0", r.code)
		}
		h := host(t, f, "forum-1")
		got := res["forum-1"]
		if got.Status != rollout.Deployed {
			t.Fatalf("status %q, want deployed (%s)", got.Status, got.Error)
		}
		if _, err := os.Stat(h.Path(got.Drv)); err != nil {
			t.Errorf("the derivation was not copied to the host: %v", err)
		}
		if _, err := os.Stat(got.System); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the system is in the deployer's store (%v): it was built here, not on the host", err)
		}
		if s := state(t, h); s.current != got.System {
			t.Errorf("runs %q, want %q", s.current, got.System)
		}
	})

	t.Run("through a jump host", func(t *testing.T) {
		// forum-1 is reached through lb's sshd, its key pinned: the run
		// opens one connection to lb, which forwards one to forum-1.
		lb := host(t, f, "lb")
		jump := filepath.Join(dir, "jump.cue")
		src := fmt.Sprintf("package cd\n\nhosts: \"forum-1\": ssh: {jumpHost: \"root@127.0.0.1:%d\", jumpHostKey: %q}\n", lb.Port, lb.HostKey)
		if err := os.WriteFile(jump, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(jump)
		before := connections(t, f)
		r, res := deployJSONRun(t, dir, "-t", "release=jump", "--on", "forum-1")
		after := connections(t, f)
		if r.code != 0 || res["forum-1"].Status != rollout.Deployed {
			t.Fatalf("exit %d, forum-1 %+v; want it deployed", r.code, res["forum-1"])
		}
		if s := state(t, host(t, f, "forum-1")); s.current != res["forum-1"].System {
			t.Errorf("forum-1 runs %q, want %q", s.current, res["forum-1"].System)
		}
		for n, want := range map[string]int{"lb": 1, "forum-1": 1, "forum-2": 0} {
			if got := after[n] - before[n]; got != want {
				t.Errorf("%s: %d SSH connections, want %d", n, got, want)
			}
		}

		// A jump host whose key is not the pinned one is refused, and
		// forum-1 is not reached.
		other := host(t, f, "forum-2").HostKey
		if err := os.WriteFile(jump, bytes.Replace([]byte(src), []byte(lb.HostKey), []byte(other), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		before = connections(t, f)
		r, res = deployJSONRun(t, dir, "-t", "release=jump-refused", "--on", "forum-1")
		after = connections(t, f)
		if got := res["forum-1"]; r.code != 1 || got.Status != rollout.Failed || got.Phase != "connect" || !strings.Contains(got.Error, "ssh.jumpHostKey pins") {
			t.Errorf("exit %d, forum-1 %+v; want exit 1, failed at connect on the jump host's key", r.code, got)
		}
		if got := after["forum-1"] - before["forum-1"]; got != 0 {
			t.Errorf("forum-1: %d SSH connections through a refused jump host", got)
		}
	})

	t.Run("goals", func(t *testing.T) {
		h := host(t, f, "forum-2")
		before := state(t, h)

		_, res := counted(t, "-t", "release=4", "--on", "forum-2", "--goal", "dry-activate")
		if s := state(t, h); res["forum-2"].Status != rollout.DryActivated || s.current != before.current || s.profile != before.profile {
			t.Errorf("dry-activate: status %q, state %+v; want nothing changed", res["forum-2"].Status, s)
		}
		// What would change is shown: the example's stand-in prints it as
		// NixOS's switch-to-configuration does, to standard error.
		would := "would activate the configuration... (/run/current-system -> " + res["forum-2"].System + ")"
		if !strings.Contains(res["forum-2"].Output, would) {
			t.Errorf("dry-activate: output %q, want it to say %q", res["forum-2"].Output, would)
		}
		if r := deploy(t, dir, "-t", "release=4", "--on", "forum-2", "--goal", "dry-activate"); r.code != 0 ||
			!strings.Contains(r.stdout, "forum-2 would change (dry-activate):\n  "+would) {
			t.Errorf("dry-activate, text: exit %d, stdout:\n%s\nwant what would change under the host", r.code, r.stdout)
		}

		_, res = counted(t, "-t", "release=4", "--on", "forum-2", "--goal", "boot")
		s := state(t, h)
		if res["forum-2"].Status != rollout.Deployed || s.profile != res["forum-2"].System || s.current != before.current {
			t.Errorf("boot: status %q, state %+v; want the new system booted, the old one running", res["forum-2"].Status, s)
		}

		_, res = counted(t, "-t", "release=5", "--on", "forum-2", "--goal", "test")
		s2 := state(t, h)
		if res["forum-2"].Status != rollout.Deployed || s2.current != res["forum-2"].System || s2.profile != s.profile {
			t.Errorf("test: status %q, state %+v; want the new system running, the profile as it was", res["forum-2"].Status, s2)
		}

		_, res = counted(t, "-t", "release=5", "--on", "forum-2", "--goal", "switch")
		s3 := state(t, h)
		if res["forum-2"].Status != rollout.Deployed || s3.current != res["forum-2"].System || s3.profile != res["forum-2"].System {
			t.Errorf("switch: status %q, state %+v; want the system running and booted", res["forum-2"].Status, s3)
		}
	})

	t.Run("live status on a terminal", func(t *testing.T) {
		// script(1) gives deploy a terminal: the per-host table is drawn and
		// redrawn in place on it instead of log lines; the summary follows.
		if _, err := exec.LookPath("script"); err != nil {
			backendtest.Skip(t, "script(1) (bsdutils) not found")
		}
		argv := append([]string{deployBin, "-C", dir}, "-t", "release=live", "--on", "tag:forum", "deploy", "--nix-option", "substituters=")
		if wrap != nil {
			argv = wrap(argv...)
		}
		cmd := exec.Command("script", "-q", "-e", "-c", hosts.ShellJoin(argv), "/dev/null")
		cmd.Env = append(os.Environ(), "TERM=xterm")
		out, err := cmd.CombinedOutput()
		t.Logf("on a terminal:\n%q", out)
		if err != nil {
			t.Fatalf("deploy on a terminal: %v", err)
		}
		screen := string(out)
		for _, want := range []string{"\x1b[2K  forum-1", "\x1b[2K  forum-2", "elapsed", "\x1b[3A", "deployed"} {
			if !strings.Contains(screen, want) {
				t.Errorf("the terminal output lacks %q", want)
			}
		}
		for _, phase := range []string{"copy", "activate"} {
			if !strings.Contains(screen, "forum-1                  "+phase) {
				t.Errorf("the table never showed forum-1 in phase %s", phase)
			}
		}
		if strings.Contains(screen, "host done") {
			t.Errorf("log lines on a terminal, where the table replaces them")
		}
		if !strings.Contains(screen, "2 hosts: 2 deployed") {
			t.Errorf("no summary after the table")
		}
	})

	t.Run("failing activation is rolled back on that host only", func(t *testing.T) {
		h1, h2 := host(t, f, "forum-1"), host(t, f, "forum-2")
		before := state(t, h1)
		r, res := counted(t, "-t", "release=6", "-t", "failActivation=forum-1", "--on", "tag:forum")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		got := res["forum-1"]
		if got.Status != rollout.RolledBack || !strings.Contains(got.Error, "activation of forum-1 failed") {
			t.Errorf("forum-1: status %q error %q; want rolled-back with the activation's error", got.Status, got.Error)
		}
		after := state(t, h1)
		if after.current != before.current || after.profile != before.profile || len(after.generations) != len(before.generations) {
			t.Errorf("forum-1 after rollback: %+v, want as before: %+v", after, before)
		}
		if res["forum-2"].Status != rollout.Deployed || state(t, h2).current != res["forum-2"].System {
			t.Errorf("forum-2: status %q; want deployed while forum-1 failed", res["forum-2"].Status)
		}
	})

	t.Run("fail-fast stops the rest, none half switched", func(t *testing.T) {
		before := map[string]hostState{}
		for _, n := range names {
			before[n] = state(t, host(t, f, n))
		}
		r, res := counted(t, "-t", "release=8", "-t", "failActivation=forum-1", "--fail-fast")
		if r.code != 1 || res["forum-1"].Status != rollout.RolledBack {
			t.Errorf("exit %d, forum-1 %q; want 1 and forum-1 rolled back", r.code, res["forum-1"].Status)
		}
		// Every other host either got the new system whole, or was
		// stopped before its activation (or had nothing to do) and is
		// exactly as it was.
		for _, n := range names {
			got, now := res[n], state(t, host(t, f, n))
			switch got.Status {
			case rollout.RolledBack, rollout.Cancelled, rollout.Unchanged:
				if now.current != before[n].current || now.profile != before[n].profile || len(now.generations) != len(before[n].generations) {
					t.Errorf("%s %s: %+v, want as before: %+v", n, got.Status, now, before[n])
				}
			case rollout.Deployed:
				if now.current != got.System || now.profile != got.System {
					t.Errorf("%s deployed, but runs %q and boots %q, want %s", n, now.current, now.profile, got.System)
				}
			default:
				t.Errorf("%s: %s (%s), want deployed, unchanged, rolled back or cancelled", n, got.Status, got.Error)
			}
		}
	})

	t.Run("wrong host key is refused and nothing changes", func(t *testing.T) {
		other := host(t, f, "forum-2").HostKey
		// The fleet's file pins the right key; move it aside for this run.
		fleetFile := filepath.Join(dir, "localfleet.cue")
		orig, err := os.ReadFile(fleetFile)
		if err != nil {
			t.Fatal(err)
		}
		lbKey := host(t, f, "lb").HostKey
		if err := os.WriteFile(fleetFile, bytes.Replace(orig, []byte(lbKey), []byte(other), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(fleetFile, orig, 0o644)
		before := state(t, host(t, f, "lb"))
		r, res := counted(t, "-t", "release=7", "--on", "lb")
		if r.code != 1 || res["lb"].Status != rollout.Failed || res["lb"].Phase != "connect" || !strings.Contains(res["lb"].Error, "host key") {
			t.Errorf("exit %d, lb %+v; want exit 1, failed at connect with a host key error", r.code, res["lb"])
		}
		if after := state(t, host(t, f, "lb")); len(after.activations) != len(before.activations) || after.current != before.current {
			t.Errorf("lb changed although its key was refused")
		}
	})

	t.Run("stopped host fails within its timeout, the others carry on", func(t *testing.T) {
		// Stopped, not gone: its port still takes connections (the
		// kernel's backlog) and never answers, so only the time-out ends
		// the wait.
		sshd := host(t, f, "forum-2").PID
		if err := syscall.Kill(sshd, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(sshd, syscall.SIGCONT)
		r, res := counted(t, "-t", "release=8", "--on", "tag:forum", "--connect-timeout", "5s", "--timeout", "60s")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		if got := res["forum-2"]; got.Status != rollout.Failed || got.Phase != "connect" || !strings.Contains(got.Error, "5s") {
			t.Errorf("forum-2: %+v, want failed at connect, naming the 5s time-out", got)
		}
		if res["forum-1"].Status != rollout.Deployed {
			t.Errorf("forum-1: %+v, want deployed", res["forum-1"])
		}
		if d := time.Duration(res["forum-2"].DurationMS) * time.Millisecond; d < 5*time.Second || d > 15*time.Second {
			t.Errorf("forum-2 failed after %s, want its 5s connect time-out", d)
		}
		if !strings.Contains(r.stderr, "forum-2") {
			t.Errorf("stderr does not name the failed host")
		}
	})
}

// TestDeployFlakeOutsideModule deploys a host whose system is a flake's
// nixosConfigurations entry, from a CUE package that is not in a CUE module.
func TestDeployFlakeOutsideModule(t *testing.T) {
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"web-1"}})
	dir := t.TempDir()
	flake := `{
  outputs = { self }: {
    nixosConfigurations."web-1".config.system.build.toplevel = derivation {
      name = "nixos-system-web-1";
      system = "x86_64-linux"; # flakes are pure: no builtins.currentSystem
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" ''
        mkdir -p $out/bin
        printf '#!/bin/sh\nln -sfn %s /run/current-system\n' $out > $out/bin/switch-to-configuration
        chmod +x $out/bin/switch-to-configuration
      '' ];
    };
  };
}
`
	dep := `package web

name: "flake-test"
hosts: "web-1": nix: flake: ".#web-1"
`
	writePackage(t, f, dir, "web", map[string]string{"flake.nix": flake, "deployment.cue": dep})
	r, res := deployJSONRun(t, dir)
	if r.code != 0 || res["web-1"].Status != rollout.Deployed {
		t.Fatalf("exit %d, web-1 %+v; want deployed", r.code, res["web-1"])
	}
	if s := state(t, host(t, f, "web-1")); s.current != res["web-1"].System || !strings.HasSuffix(s.current, "-nixos-system-web-1") {
		t.Errorf("web-1 runs %q, want %q", s.current, res["web-1"].System)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSlowSystemDoesNotHoldBackOthers builds two systems in one batch, one
// of them slow: the host whose system is built goes on (copy, activation)
// while the other system still builds, instead of waiting for the batch.
func TestSlowSystemDoesNotHoldBackOthers(t *testing.T) {
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"quick", "slow"}})
	const slowBuild = 10 * time.Second
	dir := t.TempDir()
	systems := `{ salt }:
let
  system = name: pause: derivation {
    name = "nixos-system-${name}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    inherit salt;
    args = [ "-c" ''
      sleep ${pause}
      mkdir -p $out/bin
      printf '#!/bin/sh\nln -sfn %s /run/current-system\n' $out > $out/bin/switch-to-configuration
      chmod +x $out/bin/switch-to-configuration
    '' ];
  };
in {
  quick = system "quick" "0";
  slow = system "slow" "` + fmt.Sprint(slowBuild.Seconds()) + `";
}
`
	dep := `package pace

name: "pace-test"
_salt: string @tag(salt)
hosts: [Name=string]: nix: {file: "systems.nix", attribute: Name, args: salt: _salt}
`
	writePackage(t, f, dir, "pace", map[string]string{"systems.nix": systems, "deployment.cue": dep})
	r, res := deployJSONRun(t, dir, "-t", "salt="+strconv.FormatInt(time.Now().UnixNano(), 36))
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	quick, slow := res["quick"], res["slow"]
	for _, h := range []string{"quick", "slow"} {
		if res[h].Status != rollout.Deployed {
			t.Fatalf("%s: %+v, want deployed", h, res[h])
		}
		if s := state(t, host(t, f, h)); s.current != res[h].System {
			t.Errorf("%s runs %q, want %q", h, s.current, res[h].System)
		}
	}
	took := func(r rollout.Result) time.Duration { return time.Duration(r.DurationMS) * time.Millisecond }
	if took(slow) < slowBuild {
		t.Fatalf("slow took %s, less than its build alone (%s): the test proves nothing", took(slow), slowBuild)
	}
	if took(quick) > took(slow)-slowBuild/4 {
		t.Errorf("quick took %s and slow %s: quick, built at once, waited for slow's build", took(quick), took(slow))
	}
}
