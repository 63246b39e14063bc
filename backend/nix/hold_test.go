package nix

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// TestCopyHoldsRootsUntilTheRunEnds collects garbage on a host at each
// point of a deploy, through the host's daemon and through nix-store
// --serve: what the copy put there, and the system the host runs in no
// generation, stay until the host's run has ended (Finish), a rollback
// included; then they are let go.
func TestCopyHoldsRootsUntilTheRunEnds(t *testing.T) {
	eachCopyPath(t, "held", func(t *testing.T, h fleet.Host, conn *hosts.Conn, b *Backend, tg *backend.Target, noDaemon bool) {
		ctx := context.Background()
		gc := func() {
			t.Helper()
			if err := conn.Run(ctx, hosts.Cmd{Argv: []string{"nix-store", "--gc"}}); err != nil {
				t.Fatalf("nix-store --gc on the host: %v", err)
			}
		}
		has := func(when, p string, want bool) {
			t.Helper()
			if _, err := os.Lstat(h.Path(p)); (err == nil) != want {
				t.Errorf("%s: the host has %s: %v, want %v", when, p, err == nil, want)
			}
		}
		env := tg.Host.Nix.Args["env"]
		other := func(release, fail string) *backend.Target {
			o := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": release, "failActivation": fail, "env": env})}
			instantiateAndBuild(t, b, o)
			return o
		}

		t.Run("what was copied", func(t *testing.T) {
			// dry-activate: nothing on the host refers to the system but
			// the copy.
			copyTo(ctx, t, b, conn, tg, "dry-activate")
			gc()
			has("after a collection between the copy and the activation", tg.Out, true)
			if err := b.Activate(ctx, conn, tg, "dry-activate"); err != nil {
				t.Fatal(err)
			}
			gc()
			has("after a collection after the activation", tg.Out, true)
			b.Finish(tg)
			gc()
			has("after the run had ended and a collection", tg.Out, false)
		})

		// build: "target" copies through nix-store --serve on either host:
		// once is enough.
		if noDaemon {
			t.Run("what the host built", func(t *testing.T) {
				built := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "held-built", "failActivation": "", "env": env})}
				built.Host.Build = "target"
				instantiate(t, b, built)
				copyTo(ctx, t, b, conn, built, "dry-activate") // the .drv closure, then the build on the host
				gc()
				has("after a collection between the build on the host and the activation", built.Out, true)
				if err := b.Activate(ctx, conn, built, "dry-activate"); err != nil {
					t.Fatal(err)
				}
				b.Finish(built)
				gc()
				has("after the run had ended and a collection", built.Out, false)
			})
		}

		t.Run("what ran in no generation, through a rollback", func(t *testing.T) {
			booted, tested, bad := other("held-booted", ""), other("held-tested", ""), other("held-bad", "forum-1")
			for _, step := range []struct {
				tg   *backend.Target
				goal string
			}{{booted, "switch"}, {tested, "test"}} {
				copyTo(ctx, t, b, conn, step.tg, step.goal)
				if err := b.Activate(ctx, conn, step.tg, step.goal); err != nil {
					t.Fatal(err)
				}
				b.Finish(step.tg)
			}
			// No generation has tested: on NixOS only /run/current-system
			// roots it, which the failing switch repoints (the fleet's
			// hosts do not even have that root). The run may also have
			// been stopped (an interrupt, the host's timeout) before
			// the rollback, which then runs on a context of its own, as
			// the runner's does.
			for _, stopped := range []bool{false, true} {
				runCtx, stop := context.WithCancel(ctx)
				prev := copyTo(runCtx, t, b, conn, bad, "switch")
				err := b.Activate(runCtx, conn, bad, "switch")
				if err == nil {
					t.Fatal("the failing system's activation succeeded")
				}
				// Named by what failed, on either path, not by the script.
				if want := bad.Out + "/bin/switch-to-configuration switch exited with status 1"; !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "sh -c") {
					t.Errorf("activation error %q, want it to say %q", err, want)
				}
				if stopped {
					stop()
				}
				gc()
				if err := b.Rollback(ctx, conn, bad, "switch", prev); err != nil {
					t.Fatalf("rollback after a collection (run stopped: %v): %v", stopped, err)
				}
				b.Finish(bad)
				stop()
				if got, _ := os.Readlink(h.Path("/run/current-system")); got != tested.Out {
					t.Errorf("run stopped: %v: after the rollback the host runs %s, want %s", stopped, got, tested.Out)
				}
				if got, _ := os.Readlink(h.Path(Profile)); got != "system-1-link" {
					t.Errorf("run stopped: %v: after the rollback the profile is %s, want system-1-link", stopped, got)
				}
			}
		})
	})
}

// TestOneSessionAtATime deploys to a host whose sshd takes one session at
// a time (MaxSessions 1) through nix-store --serve: the copy's held
// session gives way to the activation, the build on the host and the
// rollback, which then run as they did before it was held.
func TestOneSessionAtATime(t *testing.T) {
	needNix(t)
	ctx := context.Background()
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"one-session"}})
	h := f.Hosts[0]
	config := filepath.Join(h.Dir, "sshd_config")
	data, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	one := strings.Replace(string(data), "MaxSessions 64", "MaxSessions 1", 1)
	if one == string(data) {
		t.Fatal("the fleet's sshd_config has no MaxSessions 64 line")
	}
	if err := os.WriteFile(config, []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	// sshd reads its configuration again on SIGHUP (it starts itself
	// anew and says it listens); later connections get it.
	logFile := filepath.Join(h.Dir, "sshd.log")
	listening := func() int {
		data, _ := os.ReadFile(logFile)
		return strings.Count(string(data), "Server listening")
	}
	before := listening()
	if err := syscall.Kill(h.PID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	backendtest.WaitFor(t, "sshd to start again after SIGHUP", func() bool { return listening() != before })
	conn := dialHost(t, f, h)
	// Two sessions at once are refused on this connection.
	held := make(chan error, 1)
	sessions := func() int {
		_, n, err := h.SSHDCounts()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	started := sessions()
	go func() { held <- conn.Run(ctx, hosts.Cmd{Argv: []string{"sleep", "2"}}) }()
	backendtest.WaitFor(t, "the first session to start", func() bool { return sessions() != started })
	if err := conn.Run(ctx, hosts.Cmd{Argv: []string{"true"}}); !errors.Is(err, hosts.ErrSessionRefused) {
		t.Fatalf("a second session beside a running one: %v, want %v", err, hosts.ErrSessionRefused)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}

	b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir(), NoDaemon: true})
	env := filepath.Base(t.TempDir())
	good := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "one-good", "failActivation": "", "env": env})}
	bad := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "one-bad", "failActivation": "forum-1", "env": env})}
	instantiateAndBuild(t, b, good, bad)
	copyTo(ctx, t, b, conn, good, "switch")
	if err := b.Activate(ctx, conn, good, "switch"); err != nil {
		t.Fatalf("activation: %v", err)
	}
	b.Finish(good)
	prev := copyTo(ctx, t, b, conn, bad, "switch")
	if err := b.Activate(ctx, conn, bad, "switch"); err == nil {
		t.Fatal("the failing system's activation succeeded")
	}
	if err := b.Rollback(ctx, conn, bad, "switch", prev); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	b.Finish(bad)
	if got, _ := os.Readlink(h.Path("/run/current-system")); got != good.Out {
		t.Errorf("after the rollback the host runs %s, want %s", got, good.Out)
	}

	built := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "one-built", "failActivation": "", "env": env})}
	built.Host.Build = "target"
	instantiate(t, b, built)
	copyTo(ctx, t, b, conn, built, "switch")
	if err := b.Activate(ctx, conn, built, "switch"); err != nil {
		t.Fatalf("activation of a system built on the host: %v", err)
	}
	b.Finish(built)
	if got, _ := os.Readlink(h.Path("/run/current-system")); got != built.Out {
		t.Errorf("the host runs %s, want %s", got, built.Out)
	}
}
