package nix

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// TestRollbackRestoresWhatRanAndBooted fails activations on a host whose
// running system is not the one its profile boots, and on one whose
// newest generation is already the failing system: a rollback puts back
// what ran and what booted, re-activates only what ran before, and keeps
// the generations that were there before the deploy.
func TestRollbackRestoresWhatRanAndBooted(t *testing.T) {
	needNix(t)
	ctx := context.Background()
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"rollback"}})
	h := f.Hosts[0]
	conn := dialHost(t, f, h)
	b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir()})
	env := filepath.Base(t.TempDir())
	good := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "rollback", "failActivation": "", "env": env})}
	bad := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "rollback", "failActivation": "forum-1", "env": env})}
	other := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "rollback-other", "failActivation": "", "env": env})}
	tested := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "rollback-tested", "failActivation": "", "env": env})}
	instantiateAndBuild(t, b, good, bad, other, tested)

	type hostState struct {
		current, profile string   // what runs; the generation the profile points at
		generations      []string // the profile's generation links and their systems
	}
	read := func() hostState {
		t.Helper()
		var s hostState
		s.current, _ = os.Readlink(h.Path("/run/current-system"))
		s.profile, _ = os.Readlink(h.Path(Profile))
		links, _ := filepath.Glob(h.Path(Profile) + "-*-link")
		for _, l := range links {
			to, _ := os.Readlink(l)
			s.generations = append(s.generations, filepath.Base(l)+" -> "+to)
		}
		return s
	}
	activations := func() []string {
		data, _ := os.ReadFile(h.Path("/run/cuedeploy-example/activations"))
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	// bootEntries is the boot menu the example's switch-to-configuration
	// writes for switch and boot: the profile's generations.
	bootEntries := func() string {
		data, _ := os.ReadFile(h.Path("/run/cuedeploy-example/boot-entries"))
		return strings.Join(strings.Fields(string(data)), " ")
	}
	// deployAs does what the runner does with one host: state, copy,
	// activation for goal, and a rollback to the state read first if it
	// fails, after meanwhile (if set) has run.
	deployAs := func(tg *backend.Target, goal string, meanwhile func()) (activateErr, rollbackErr error) {
		t.Helper()
		tg.Host.Activation = goal
		prev, err := b.State(ctx, conn, tg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(ctx, hosts.Local{}, conn, tg); err != nil {
			t.Fatal(err)
		}
		if activateErr = b.Activate(ctx, conn, tg, goal); activateErr != nil {
			if meanwhile != nil {
				meanwhile()
			}
			rollbackErr = b.Rollback(ctx, conn, tg, goal, prev)
		}
		b.Finish(tg)
		return activateErr, rollbackErr
	}
	deploy := func(tg *backend.Target) (activateErr, rollbackErr error) {
		t.Helper()
		return deployAs(tg, "switch", nil)
	}
	onHost := func(argv ...string) {
		t.Helper()
		if err := conn.Run(ctx, hosts.Cmd{Argv: argv}); err != nil {
			t.Fatalf("%s on the host: %v", strings.Join(argv, " "), err)
		}
	}

	if err, _ := deploy(good); err != nil {
		t.Fatal(err)
	}
	// The failing system becomes the profile's generation 2 (what deploy
	// --goal boot leaves), while the good one runs.
	if _, err := b.State(ctx, conn, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Push(ctx, hosts.Local{}, conn, bad); err != nil {
		t.Fatal(err)
	}
	b.Finish(bad)
	onHost("nix-env", "-p", Profile, "--set", bad.Out)

	t.Run("running another system than the profile boots", func(t *testing.T) {
		before, n := read(), len(activations())
		actErr, rbErr := deploy(bad)
		if actErr == nil || rbErr != nil {
			t.Fatalf("activation: %v, rollback: %v; want the activation to fail and the rollback to succeed", actErr, rbErr)
		}
		if after := read(); !slices.Equal(after.generations, before.generations) || after.current != before.current || after.profile != before.profile {
			t.Errorf("after the rollback the host is\n%+v\nwant as before\n%+v", after, before)
		}
		// What ran before is activated for this boot only: activating it
		// with switch would make it what boots, and activating what the
		// profile boots would run the failing system again.
		if got, want := activations()[n:], []string{"switch " + bad.Out, "test " + good.Out}; !slices.Equal(got, want) {
			t.Errorf("activations %q, want %q", got, want)
		}
	})

	t.Run("newest generation reused, then rolled back to the one before", func(t *testing.T) {
		onHost("nix-env", "-p", Profile, "--switch-generation", "1")
		before, n := read(), len(activations())
		actErr, rbErr := deploy(bad)
		if actErr == nil || rbErr != nil {
			t.Fatalf("activation: %v, rollback: %v; want the activation to fail and the rollback to succeed", actErr, rbErr)
		}
		// Generation 2 was there before the deploy, which reused it: it
		// stays.
		if after := read(); !slices.Equal(after.generations, before.generations) || after.current != before.current || after.profile != before.profile {
			t.Errorf("after the rollback the host is\n%+v\nwant as before\n%+v", after, before)
		}
		if got, want := activations()[n:], []string{"switch " + bad.Out, "switch " + good.Out}; !slices.Equal(got, want) {
			t.Errorf("activations %q, want %q", got, want)
		}
	})

	t.Run("new generation deleted", func(t *testing.T) {
		onHost("nix-env", "-p", Profile, "--switch-generation", "1")
		onHost("nix-env", "-p", Profile, "--delete-generations", "2")
		before := read()
		actErr, rbErr := deploy(bad)
		if actErr == nil || rbErr != nil {
			t.Fatalf("activation: %v, rollback: %v; want the activation to fail and the rollback to succeed", actErr, rbErr)
		}
		if after := read(); !slices.Equal(after.generations, before.generations) || after.current != before.current || after.profile != before.profile {
			t.Errorf("after the rollback the host is\n%+v\nwant as before\n%+v", after, before)
		}
		// The generation is gone before the boot loader is written again:
		// the menu does not offer the failed system.
		if got := bootEntries(); got != "system-1-link" {
			t.Errorf("boot menu %q after the rollback, want only generation 1", got)
		}
	})

	t.Run("running one system, booting another, a new generation failing", func(t *testing.T) {
		// The good system runs; the profile boots another one (what deploy
		// --goal boot leaves).
		if _, err := b.State(ctx, conn, other); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(ctx, hosts.Local{}, conn, other); err != nil {
			t.Fatal(err)
		}
		b.Finish(other)
		onHost("nix-env", "-p", Profile, "--set", other.Out)
		before, n := read(), len(activations())
		actErr, rbErr := deploy(bad)
		if actErr == nil || rbErr != nil {
			t.Fatalf("activation: %v, rollback: %v; want the activation to fail and the rollback to succeed", actErr, rbErr)
		}
		if after := read(); !slices.Equal(after.generations, before.generations) || after.current != before.current || after.profile != before.profile {
			t.Errorf("after the rollback the host is\n%+v\nwant as before\n%+v", after, before)
		}
		// The booted system's boot loader back (without the failed
		// generation), then the running one activated for this boot.
		if got, want := activations()[n:], []string{"switch " + bad.Out, "boot " + other.Out, "test " + good.Out}; !slices.Equal(got, want) {
			t.Errorf("activations %q, want %q", got, want)
		}
		var links []string
		for _, g := range before.generations {
			links = append(links, strings.Fields(g)[0])
		}
		if got, want := bootEntries(), strings.Join(links, " "); got != want {
			t.Errorf("boot menu %q after the rollback, want the generations before: %q", got, want)
		}
	})

	t.Run("what ran, in no generation, survives a garbage collection before the rollback", func(t *testing.T) {
		// A system runs that no generation has (what deploy --goal test
		// leaves): only /run/current-system points at it, which the
		// failing switch repoints. A garbage collection on the host
		// before the rollback must not take it.
		if actErr, _ := deployAs(tested, "test", nil); actErr != nil {
			t.Fatal(actErr)
		}
		before := read()
		actErr, rbErr := deployAs(bad, "switch", func() { onHost("nix-store", "--gc") })
		if actErr == nil || rbErr != nil {
			t.Fatalf("activation: %v, rollback: %v; want the activation to fail and the rollback to succeed", actErr, rbErr)
		}
		if after := read(); after.current != tested.Out || !slices.Equal(after.generations, before.generations) || after.profile != before.profile {
			t.Errorf("after the rollback the host is\n%+v\nwant as before\n%+v", after, before)
		}
	})
}

// TestActivationStoppedAtBeginChangesNothing stops a run just after an
// activation has said it begins, before the deployer's answer, through the
// host's daemon and through nix-store --serve: the activation did not
// start, so the runner will not roll it back, and indeed nothing changed.
func TestActivationStoppedAtBeginChangesNothing(t *testing.T) {
	needNix(t)
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"through-daemon", "through-serve"}})
	for i, noDaemon := range []bool{false, true} {
		h := f.Hosts[i]
		t.Run(h.Name, func(t *testing.T) {
			conn := dialHost(t, f, h)
			b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir(), NoDaemon: noDaemon})
			tg := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "stopped-at-begin", "failActivation": "", "env": filepath.Base(t.TempDir())})}
			instantiateAndBuild(t, b, tg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if _, err := b.State(ctx, conn, tg); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Push(ctx, hosts.Local{}, conn, tg); err != nil {
				t.Fatal(err)
			}
			afterBegin = cancel
			defer func() { afterBegin = nil }()
			err := b.Activate(ctx, conn, tg, "switch")
			b.Finish(tg)
			if !errors.Is(err, backend.ErrActivationNotStarted) {
				t.Errorf("Activate stopped at its begin line: %v; want it not started", err)
			}
			// Time for an activation that went on regardless.
			time.Sleep(500 * time.Millisecond)
			for _, p := range []string{"/run/current-system", Profile, Profile + "-1-link", "/run/cuedeploy-example/activations"} {
				if _, err := os.Lstat(h.Path(p)); !os.IsNotExist(err) {
					t.Errorf("the host has %s (%v), want none", p, err)
				}
			}
			// Each path was taken: the host's daemon logs the
			// connections it accepts.
			log, _ := os.ReadFile(filepath.Join(h.Dir, "nix-daemon.log"))
			if accepted := strings.Contains(string(log), "accepted connection"); accepted == noDaemon {
				t.Errorf("the host's daemon accepted a connection: %v, want %v", accepted, !noDaemon)
			}
		})
	}
}

// TestIsStorePath: only a path right under /nix/store is held as a root by
// the host's daemon, which refuses others (and the whole copy with them).
func TestIsStorePath(t *testing.T) {
	for p, want := range map[string]bool{
		"/nix/store/w3xfmrg3farjalzbqxsq4qxym5ayqd20-nixos-system-host-1": true,
		"/persist/nix/store/w3xfmrg3farjalzbqxsq4qxym5ayqd20-nixos":       false,
		"/nix/store/w3xfmrg3farjalzbqxsq4qxym5ayqd20-nixos/bin":           false,
		"/nix/store/": false,
		"":            false,
	} {
		if got := isStorePath(p); got != want {
			t.Errorf("isStorePath(%q) = %v, want %v", p, got, want)
		}
	}
}
