package nix

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
	"cuedeploy.dev/cuedeploy/schema"
)

// forumHost is a host called name, reached as root on the local fleet's
// address, that runs the example forum-1 system built here with args.
func forumHost(t *testing.T, name string, args map[string]string) *schema.Host {
	t.Helper()
	file, err := filepath.Abs("../../examples/forum/nix/forum.nix")
	if err != nil {
		t.Fatal(err)
	}
	return &schema.Host{
		Name: name, Address: fleet.Address, Build: "local", Activation: "switch",
		SSH: schema.SSH{User: "root", Port: 22},
		Nix: &schema.Nix{File: file, Attribute: "nixosConfigurations.forum-1.config.system.build.toplevel", Args: args},
	}
}

// dialHost connects to fleet host h for the rest of the test.
func dialHost(t *testing.T, f *fleet.Fleet, h fleet.Host) *hosts.Conn {
	t.Helper()
	conn, err := hosts.Dial(context.Background(), hosts.DialOptions{Name: h.Name, Address: fleet.Address, Port: h.Port, IdentityFile: f.ClientKey, HostKey: h.HostKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// instantiateAndBuild evaluates and builds ts here with b.
func instantiateAndBuild(t *testing.T, b *Backend, ts ...*backend.Target) {
	t.Helper()
	instantiate(t, b, ts...)
	for _, err := range b.Build(context.Background(), hosts.Local{}, ts) {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// instantiate evaluates ts here with b (a system built on the host is
// only evaluated here).
func instantiate(t *testing.T, b *Backend, ts ...*backend.Target) {
	t.Helper()
	for _, err := range b.Instantiate(context.Background(), hosts.Local{}, ts) {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// eachCopyPath runs test on two fresh fleet hosts, one copied to through
// its nix daemon, the other through nix-store --serve (noDaemon), each with
// a backend of its own and a target for the example forum-1 system of
// release, built.
func eachCopyPath(t *testing.T, release string, test func(t *testing.T, h fleet.Host, conn *hosts.Conn, b *Backend, tg *backend.Target, noDaemon bool)) {
	t.Helper()
	needNix(t)
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"through-daemon", "through-serve"}})
	for i, noDaemon := range []bool{false, true} {
		h := f.Hosts[i]
		t.Run(h.Name, func(t *testing.T) {
			conn := dialHost(t, f, h)
			b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir(), NoDaemon: noDaemon})
			tg := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": release, "failActivation": "", "env": filepath.Base(t.TempDir())})}
			instantiateAndBuild(t, b, tg)
			test(t, h, conn, b, tg, noDaemon)
		})
	}
}

// absent checks that host h has none of paths (as the host sees them);
// when says at which point of the test.
func absent(t *testing.T, h fleet.Host, when string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(h.Path(p)); !os.IsNotExist(err) {
			t.Errorf("%s: the host has %s (%v), want none", when, p, err)
		}
	}
}

// copyTo reads the state of tg's host and copies tg's system to it for
// goal, as the runner does before it activates; it returns the state.
func copyTo(ctx context.Context, t *testing.T, b *Backend, conn *hosts.Conn, tg *backend.Target, goal string) backend.State {
	t.Helper()
	tg.Host.Activation = goal
	prev, err := b.State(ctx, conn, tg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(ctx, hosts.Local{}, conn, tg); err != nil {
		t.Fatal(err)
	}
	return prev
}
