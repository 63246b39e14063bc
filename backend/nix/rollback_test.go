package nix

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	instantiateAndBuild(t, b, good, bad)

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
	// deploy does what the runner does with one host: state, copy,
	// activation, and a rollback to the state read first if it fails.
	deploy := func(tg *backend.Target) (activateErr, rollbackErr error) {
		t.Helper()
		prev, err := b.State(ctx, conn, tg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(ctx, hosts.Local{}, conn, tg); err != nil {
			t.Fatal(err)
		}
		if activateErr = b.Activate(ctx, conn, tg, "switch"); activateErr != nil {
			rollbackErr = b.Rollback(ctx, conn, tg, "switch", prev)
		}
		b.Finish(tg)
		return activateErr, rollbackErr
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
		onHost("nix-env", "-p", Profile, "--delete-generations", "2")
		before := read()
		actErr, rbErr := deploy(bad)
		if actErr == nil || rbErr != nil {
			t.Fatalf("activation: %v, rollback: %v; want the activation to fail and the rollback to succeed", actErr, rbErr)
		}
		if after := read(); !slices.Equal(after.generations, before.generations) || after.current != before.current || after.profile != before.profile {
			t.Errorf("after the rollback the host is\n%+v\nwant as before\n%+v", after, before)
		}
	})
}
