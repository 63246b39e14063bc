package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// client reaches fleet hosts with the system ssh client, pinning each
// host's key in its own known_hosts file, and counts its connections.
type client struct {
	t     *testing.T
	f     *fleet.Fleet
	known string
	conns map[string]int
}

func newClient(t *testing.T, f *fleet.Fleet) *client {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set, so not skipping: no ssh client on PATH (Debian package openssh-client)")
		}
		t.Skip("skipping: no ssh client on PATH (Debian package openssh-client)")
	}
	var kh strings.Builder
	for _, h := range f.Hosts {
		fmt.Fprintf(&kh, "[127.0.0.1]:%d %s\n", h.Port, h.HostKey)
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(kh.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return &client{t: t, f: f, known: known, conns: map[string]int{}}
}

// run runs script on host name as root, with stdin, and returns its
// standard output.
func (c *client) run(name string, stdin io.Reader, script string) (string, error) {
	c.t.Helper()
	h, ok := c.f.Host(name)
	if !ok {
		c.t.Fatalf("no host %q", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-i", c.f.ClientKey, "-p", strconv.Itoa(h.Port),
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+c.known,
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "root@127.0.0.1", script)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	c.conns[name]++
	if err != nil {
		return out.String(), fmt.Errorf("ssh %s %q: %w: %s", name, script, err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// must runs script on host name and fails the test when it fails.
func (c *client) must(name, script string) string {
	c.t.Helper()
	out, err := c.run(name, nil, script)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// fails runs script on host name and fails the test when it succeeds.
func (c *client) fails(name, script string) {
	c.t.Helper()
	if out, err := c.run(name, nil, script); err == nil {
		c.t.Fatalf("on %s, %q succeeded (%q); want it to fail", name, script, out)
	}
}

func TestFleet(t *testing.T) {
	standin := t.TempDir()
	prog := "#!/bin/sh\necho stand-in \"$@\"\n"
	if err := os.WriteFile(filepath.Join(standin, "fleet-stand-in"), []byte(prog), 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	f := fleettest.Up(t, fleet.Config{StateDir: state, Hosts: []string{"a", "b"}, ExtraPath: []string{standin}})
	c := newClient(t, f)
	a, b := f.Hosts[0], f.Hosts[1]
	if a.Port == b.Port || a.HostKey == b.HostKey || !strings.HasPrefix(a.HostKey, "ssh-ed25519 AAAA") {
		t.Fatalf("hosts share port or key, or key is not ed25519: %+v %+v", a, b)
	}
	for _, h := range f.Hosts {
		if n, err := h.Connections(); err != nil || n != 0 {
			t.Fatalf("%s: Connections() = %d, %v before any connection; want 0", h.Name, n, err)
		}
	}

	var stored string // a store path on a, and later on b
	t.Run("own store", func(t *testing.T) {
		payload := filepath.Join(t.TempDir(), "payload")
		content := "fleet test " + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.WriteFile(payload, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		p := c.must("a", "nix-store --add "+payload)
		if !strings.HasPrefix(p, "/nix/store/") {
			t.Fatalf("nix-store --add printed %q", p)
		}
		c.must("a", "nix-store --check-validity "+p)
		stored = p
		if got := c.must("a", "cat "+p); got != content {
			t.Errorf("on a, %s holds %q; want %q", p, got, content)
		}
		if _, err := os.Stat(a.Path(p)); err != nil {
			t.Errorf("a's store path is not in its directory: %v", err)
		}
		c.fails("b", "nix-store --check-validity "+p)
		c.fails("b", "test -e "+p)
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %s on the machine: %v; want not exist", p, err)
		}

		// Copy as deploy does: export on a, import on b, then set b's
		// system profile.
		nar, err := c.run("a", nil, "nix-store --export "+p)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := c.run("b", strings.NewReader(nar), "nix-store --import"); err != nil || out != p {
			t.Fatalf("nix-store --import on b: %q, %v; want %q", out, err, p)
		}
		c.must("b", "nix-store --check-validity "+p)
		c.must("b", "nix-env -p /nix/var/nix/profiles/system --set "+p)
		if got := c.must("b", "readlink -f /nix/var/nix/profiles/system"); got != p {
			t.Errorf("b's system profile is %q; want %q", got, p)
		}
		c.fails("a", "test -e /nix/var/nix/profiles/system")
		if got, _ := filepath.EvalSymlinks("/nix/var/nix/profiles/system"); got == p {
			t.Errorf("the machine's system profile is b's")
		}
	})

	t.Run("own environment", func(t *testing.T) {
		confA := c.must("a", `echo "$NIX_CONF_DIR"`)
		confB := c.must("b", `echo "$NIX_CONF_DIR"`)
		if confA == confB || !strings.HasPrefix(confA, a.Dir) || !strings.HasPrefix(confB, b.Dir) {
			t.Errorf("NIX_CONF_DIR is %q on a and %q on b; want each in its host's directory", confA, confB)
		}
		cfg := c.must("a", "nix --extra-experimental-features nix-command show-config")
		for _, want := range []string{"sandbox = false\n", "build-users-group = \n", "substituters = \n"} {
			if !strings.Contains(cfg+"\n", want) {
				t.Errorf("nix on a: setting %q missing from:\n%s", want, cfg)
			}
		}
		wantPath := standin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		if got := c.must("a", `echo "$PATH"`); got != wantPath {
			t.Errorf("PATH on a is %q; want %q", got, wantPath)
		}
		if got := c.must("b", "fleet-stand-in describe"); got != "stand-in describe" {
			t.Errorf("stand-in on b printed %q", got)
		}
	})

	t.Run("own run gnu and var guix", func(t *testing.T) {
		before, _ := os.Readlink("/run/current-system")
		target := "/nix/store/00000000000000000000000000000000-fleet-test-system"
		c.must("a", "ln -sfn "+target+" /run/current-system")
		if got := c.must("a", "readlink /run/current-system"); got != target {
			t.Errorf("on a, /run/current-system -> %q; want %q", got, target)
		}
		c.fails("b", "test -L /run/current-system")
		if got, _ := os.Readlink("/run/current-system"); got != before {
			t.Errorf("the machine's /run/current-system changed from %q to %q", before, got)
		}

		marker := "fleet-test-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		c.must("a", "mkdir /gnu/store/"+marker+" && touch /var/guix/"+marker)
		c.fails("b", "test -e /gnu/store/"+marker+" || test -e /var/guix/"+marker)
		for _, p := range []string{"/gnu/store/" + marker, "/var/guix/" + marker} {
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stat %s on the machine: %v; want not exist", p, err)
			}
			if _, err := os.Stat(a.Path(p)); err != nil {
				t.Errorf("a's %s is not in its directory: %v", p, err)
			}
		}
	})

	checkConnections := func(t *testing.T) {
		t.Helper()
		for _, h := range f.Hosts {
			n, err := h.Connections()
			if err != nil {
				t.Fatal(err)
			}
			if n != c.conns[h.Name] {
				t.Errorf("%s: Connections() = %d; made %d", h.Name, n, c.conns[h.Name])
			}
		}
	}
	t.Run("connections", checkConnections)

	t.Run("stop and start", func(t *testing.T) {
		if err := f.Stop("a"); err != nil {
			t.Fatal(err)
		}
		a, _ := f.Host("a")
		if a.Alive() || a.PID != 0 {
			t.Errorf("stopped host: alive %v, pid %d", a.Alive(), a.PID)
		}
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port)), 5*time.Second); err == nil {
			conn.Close()
			t.Fatalf("port %d of stopped host a accepts connections", a.Port)
		}
		if _, err := c.run("a", nil, "true"); err == nil {
			t.Fatal("ssh to stopped host a succeeded")
		}
		c.conns["a"]-- // refused, not accepted
		c.must("b", "true")

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.Start(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		a, _ = f.Host("a")
		if !a.Alive() {
			t.Fatal("started host a is not alive")
		}
		// Same pinned key (c checks it), same store.
		if stored != "" {
			c.must("a", "nix-store --check-validity "+stored)
		}
		checkConnections(t)
	})

	t.Run("load", func(t *testing.T) {
		g, err := fleet.Load(state)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(g.Hosts) != fmt.Sprint(f.Hosts) || g.ClientKey != f.ClientKey || g.StateDir != f.StateDir {
			t.Errorf("Load = %+v; want %+v", g, f)
		}
	})

	t.Run("down", func(t *testing.T) {
		if err := f.Down(); err != nil {
			t.Fatal(err)
		}
		if pids := fleetProcesses(t, state); len(pids) > 0 {
			t.Errorf("processes of the fleet still running after Down: %v", pids)
		}
		for _, h := range f.Hosts {
			if h.Alive() {
				t.Errorf("%s alive after Down", h.Name)
			}
		}
		if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("state directory after Down: %v; want removed", err)
		}
		if _, err := fleet.Load(state); !errors.Is(err, fleet.ErrNoFleet) {
			t.Errorf("Load after Down: %v; want ErrNoFleet", err)
		}
	})
}

// fleetProcesses lists live processes whose command line names dir (the
// hosts' sshd) or whose mount namespace holds a host of it.
func fleetProcesses(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	// A bind mount's source shows relative to its filesystem, so match the
	// state directory's last components.
	parts := strings.Split(dir, "/")
	tail := strings.Join(parts[max(0, len(parts)-3):], "/")
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		mounts, _ := os.ReadFile("/proc/" + e.Name() + "/mountinfo")
		if bytes.Contains(cmdline, []byte(dir)) || bytes.Contains(mounts, []byte(tail+"/hosts/")) {
			found = append(found, e.Name()+": "+string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

func TestUpFailureStopsWhatItStarted(t *testing.T) {
	fleettest.Require(t)
	// Hold the second host's port, so that the first starts and the second
	// cannot.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	state := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := fleet.Up(ctx, fleet.Config{StateDir: state, Hosts: []string{"first", "second"}, BasePort: port - 1})
	if err == nil {
		f.Down()
		t.Fatal("Up with a taken port succeeded")
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), `"second"`) {
		t.Errorf("error %q does not name host second and port %d", err, port)
	}
	if pids := fleetProcesses(t, state); len(pids) > 0 {
		t.Errorf("processes of the failed fleet still running: %v", pids)
	}
	if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state directory after failed Up: %v; want removed", err)
	}
}

func TestUpRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []fleet.Config{
		{StateDir: dir},
		{StateDir: dir, Hosts: []string{"a", "a"}},
		{StateDir: dir, Hosts: []string{"a/b"}},
		{StateDir: dir, Hosts: []string{".."}},
		{StateDir: filepath.Join(dir, "with space"), Hosts: []string{"a"}},
		{StateDir: dir, Hosts: []string{"a", "b"}, BasePort: 65535},
	} {
		if f, err := fleet.Up(context.Background(), c); err == nil {
			f.Down()
			t.Errorf("Up(%+v) succeeded; want an error", c)
		}
	}
}
