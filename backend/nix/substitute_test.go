package nix

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
	"cuedeploy.dev/cuedeploy/schema"
)

// TestHostSubstitutesFirst gives the hosts a binary cache (a file://
// substituter holding the system's closure) and deploys with substitute:
// true, through the host's daemon and through nix-store --serve: the hosts
// fetch every path themselves, deploy sends none, and the system runs. A
// host deployed without substitute gets the paths from deploy.
func TestHostSubstitutesFirst(t *testing.T) {
	needNix(t)
	ctx := context.Background()
	release := "substitute-" + filepath.Base(t.TempDir())
	host := func(name string, substitute bool) *schema.Host {
		h := forumHost(t, name, map[string]string{"release": release, "failActivation": "", "env": "substitute"})
		h.Substitute = substitute
		return h
	}
	opts := Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir()}

	// Build the system and put its closure in a cache the hosts can read.
	b := New(opts)
	built := &backend.Target{Host: host("builder", false)}
	instantiateAndBuild(t, b, built)
	cache := filepath.Join(t.TempDir(), "cache")
	if out, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "copy", "--to", "file://"+cache, built.Out).CombinedOutput(); err != nil {
		t.Fatalf("nix copy to the cache: %v: %s", err, out)
	}

	f := fleettest.Up(t, fleet.Config{
		Hosts:   []string{"through-daemon", "through-serve", "no-substitute"},
		NixConf: []string{"substituters = file://" + cache, "require-sigs = false"},
	})
	for i, c := range []struct {
		substitute, noDaemon bool
	}{{true, false}, {true, true}, {false, false}} {
		h := f.Hosts[i]
		t.Run(h.Name, func(t *testing.T) {
			conn := dialHost(t, f, h)
			o := opts
			o.NoDaemon = c.noDaemon
			b := New(o)
			tg := &backend.Target{Host: host(h.Name, c.substitute)}
			instantiateAndBuild(t, b, tg)
			if _, err := b.State(ctx, conn, tg); err != nil {
				t.Fatal(err)
			}
			stats, err := b.Push(ctx, hosts.Local{}, conn, tg)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Activate(ctx, conn, tg, "switch"); err != nil {
				t.Fatal(err)
			}
			if c.substitute && (stats.Paths != 0 || stats.Bytes != 0) {
				t.Errorf("deploy sent %d paths (%d bytes); the host should have fetched them all from its cache", stats.Paths, stats.Bytes)
			}
			if !c.substitute && stats.Paths != len(tg.Closure) {
				t.Errorf("without substitute deploy sent %d paths, want the whole closure (%d)", stats.Paths, len(tg.Closure))
			}
			running, err := hosts.Output(ctx, conn, hosts.Cmd{Argv: []string{"readlink", "/run/current-system"}})
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(running) != tg.Out {
				t.Errorf("the host runs %q, want %s", running, tg.Out)
			}
			if n, err := h.DaemonConnections(); err != nil {
				t.Error(err)
			} else if (n > 0) == c.noDaemon {
				t.Errorf("the host's daemon accepted a connection: %v; want %v", n > 0, !c.noDaemon)
			}
		})
	}
}
