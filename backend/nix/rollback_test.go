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
	"cuedeploy.dev/cuedeploy/backend/backendtest"
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
		prev := copyTo(ctx, t, b, conn, tg, goal)
		if activateErr = b.Activate(ctx, conn, tg, goal); activateErr != nil {
			if meanwhile != nil {
				meanwhile()
			}
			rollbackErr = b.Rollback(ctx, conn, tg, goal, prev)
		}
		b.Finish(tg)
		return activateErr, rollbackErr
	}
	// rolledBack deploys bad for goal switch, with meanwhile (if set)
	// between the failed activation and the rollback, and checks that the
	// activation failed, the rollback succeeded and the host runs, boots
	// and keeps the generations it did before. It returns the
	// activations the deploy ran and the host's state before.
	rolledBack := func(t *testing.T, meanwhile func()) (ran []string, before hostState) {
		t.Helper()
		before, n := read(), len(activations())
		actErr, rbErr := deployAs(bad, "switch", meanwhile)
		if actErr == nil || rbErr != nil {
			t.Fatalf("activation: %v, rollback: %v; want the activation to fail and the rollback to succeed", actErr, rbErr)
		}
		if after := read(); !slices.Equal(after.generations, before.generations) || after.current != before.current || after.profile != before.profile {
			t.Errorf("after the rollback the host is\n%+v\nwant as before\n%+v", after, before)
		}
		return activations()[n:], before
	}
	// copyOnly puts tg's system in the host's store, as a deploy stopped
	// before its activation does.
	copyOnly := func(tg *backend.Target) {
		t.Helper()
		copyTo(ctx, t, b, conn, tg, tg.Host.Activation)
		b.Finish(tg)
	}
	onHost := func(argv ...string) {
		t.Helper()
		if err := conn.Run(ctx, hosts.Cmd{Argv: argv}); err != nil {
			t.Fatalf("%s on the host: %v", strings.Join(argv, " "), err)
		}
	}

	if err, _ := deployAs(good, "switch", nil); err != nil {
		t.Fatal(err)
	}
	// The failing system becomes the profile's generation 2 (what deploy
	// --goal boot leaves), while the good one runs.
	copyOnly(bad)
	onHost("nix-env", "-p", Profile, "--set", bad.Out)

	t.Run("running another system than the profile boots", func(t *testing.T) {
		ran, _ := rolledBack(t, nil)
		// What ran before is activated for this boot only: activating it
		// with switch would make it what boots, and activating what the
		// profile boots would run the failing system again.
		if want := []string{"switch " + bad.Out, "test " + good.Out}; !slices.Equal(ran, want) {
			t.Errorf("activations %q, want %q", ran, want)
		}
	})

	t.Run("newest generation reused, then rolled back to the one before", func(t *testing.T) {
		onHost("nix-env", "-p", Profile, "--switch-generation", "1")
		// Generation 2 was there before the deploy, which reused it: it
		// stays.
		ran, _ := rolledBack(t, nil)
		if want := []string{"switch " + bad.Out, "switch " + good.Out}; !slices.Equal(ran, want) {
			t.Errorf("activations %q, want %q", ran, want)
		}
	})

	t.Run("new generation deleted", func(t *testing.T) {
		onHost("nix-env", "-p", Profile, "--switch-generation", "1")
		onHost("nix-env", "-p", Profile, "--delete-generations", "2")
		rolledBack(t, nil)
		// The generation is gone before the boot loader is written again:
		// the menu does not offer the failed system.
		if got := bootEntries(); got != "system-1-link" {
			t.Errorf("boot menu %q after the rollback, want only generation 1", got)
		}
	})

	t.Run("running one system, booting another, a new generation failing", func(t *testing.T) {
		// The good system runs; the profile boots another one (what deploy
		// --goal boot leaves).
		copyOnly(other)
		onHost("nix-env", "-p", Profile, "--set", other.Out)
		ran, before := rolledBack(t, nil)
		// The booted system's boot loader back (without the failed
		// generation), then the running one activated for this boot.
		if want := []string{"switch " + bad.Out, "boot " + other.Out, "test " + good.Out}; !slices.Equal(ran, want) {
			t.Errorf("activations %q, want %q", ran, want)
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
		rolledBack(t, func() { onHost("nix-store", "--gc") })
		if got := read().current; got != tested.Out {
			t.Errorf("after the rollback the host runs %s, want %s", got, tested.Out)
		}
	})
}

// TestActivationStoppedAtBeginChangesNothing stops a run just after an
// activation has said it begins, before the deployer's answer, through the
// host's daemon and through nix-store --serve: the activation did not
// start, so the runner will not roll it back, and indeed nothing changed.
func TestActivationStoppedAtBeginChangesNothing(t *testing.T) {
	eachCopyPath(t, "stopped-at-begin", func(t *testing.T, h fleet.Host, conn *hosts.Conn, b *Backend, tg *backend.Target, noDaemon bool) {
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
		// No activation that went on regardless runs any more.
		backendtest.Quiet(t, tg.Out)
		absent(t, h, "after the stopped activation", "/run/current-system", Profile, Profile+"-1-link", "/run/cuedeploy-example/activations")
		// Each path was taken: the host's daemon logs the connections it
		// accepts.
		if n, err := h.DaemonConnections(); err != nil {
			t.Error(err)
		} else if (n > 0) == noDaemon {
			t.Errorf("the host's daemon accepted a connection: %v, want %v", n > 0, !noDaemon)
		}
	})
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

// TestInterruptedActivationIsStoppedFirst interrupts an activation while
// its switch-to-configuration runs (a slow one, which holds NixOS's lock as
// the real one does), after a copy through the host's daemon and through
// nix-store --serve. sshd does not pass the deployer's signal on to a root
// login's session, so the rollback ends the activation first: otherwise its
// own switch-to-configuration finds the lock taken, and the interrupted one
// would switch the host after the rollback.
func TestInterruptedActivationIsStoppedFirst(t *testing.T) {
	eachCopyPath(t, "interrupted", func(t *testing.T, h fleet.Host, conn *hosts.Conn, b *Backend, good *backend.Target, _ bool) {
		ctx := context.Background()
		copyTo(ctx, t, b, conn, good, "switch")
		if err := b.Activate(ctx, conn, good, "switch"); err != nil {
			t.Fatal(err)
		}
		b.Finish(good)
		slow := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "interrupted", "slowActivation": "forum-1"})}
		instantiateAndBuild(t, b, slow)
		prev := copyTo(ctx, t, b, conn, slow, "switch")

		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err := b.Activate(actx, conn, slow, "switch")
		if err == nil || errors.Is(err, backend.ErrActivationNotStarted) {
			t.Fatalf("Activate interrupted after 3s: %v; want it interrupted after it began", err)
		}
		stc := slow.Out + "/bin/switch-to-configuration"
		if len(backendtest.Processes(t, stc)) == 0 {
			t.Fatalf("no %s running once the activation was interrupted; the test needs it running", stc)
		}
		if err := b.Rollback(ctx, conn, slow, "switch", prev); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		b.Finish(slow)
		if ps := backendtest.Processes(t, slow.Out); len(ps) > 0 {
			t.Errorf("after the rollback the interrupted activation still runs: %q", ps)
		}
		if cur, _ := os.Readlink(h.Path("/run/current-system")); cur != good.Out {
			t.Errorf("after the rollback the host runs %s, want %s", cur, good.Out)
		}
		if p, _ := os.Readlink(h.Path(Profile)); p != "system-1-link" {
			t.Errorf("after the rollback the profile is %s, want system-1-link", p)
		}
		data, _ := os.ReadFile(h.Path("/run/cuedeploy-example/activations"))
		if want := "switch " + good.Out + "\nswitch " + good.Out + "\n"; string(data) != want {
			t.Errorf("activations on the host:\n%s\nwant\n%s", data, want)
		}
	})
}
