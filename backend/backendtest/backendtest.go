// Package backendtest is the contract every backend.Backend must pass: one
// suite, run by each backend's tests against real hosts (the local fleet
// over SSH) or, where the fleet cannot run, against Namespace hosts.
//
// A backend's test builds a Fixture (its backend, a deployer executor, a
// way to get a fresh host, and three systems) and calls Run. The suite
// deploys on one fresh host in order: state of a fresh host, push and
// activate, a second push that must send no store path, a failing
// activation and its rollback, then a second good system.
package backendtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// Fixture is what a backend brings to the suite.
type Fixture struct {
	Backend backend.Backend
	// Local runs commands on the deployer.
	Local hosts.Executor
	// NewHost returns an executor for a host nothing was ever deployed to.
	// It is called once per Run; the fixture closes what it opens when t
	// ends.
	NewHost func(t *testing.T) hosts.Executor
	// Good and Second are two different systems that build and activate;
	// Failing builds but its activation fails. The suite copies them.
	Good, Second, Failing *schema.Host
	// Goal is the activation goal to test; "switch" when empty.
	Goal string
	// Says is text Good's activation prints for Goal (on either stream);
	// Activate must keep it in the target's Output.
	Says []string
	// Timeout bounds the whole suite; 5 minutes when zero.
	Timeout time.Duration
}

// Skip skips t saying why, unless the environment variable CI is set, in
// which case a missing requirement is a failure.
func Skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so not skipping: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// Run runs the contract suite on f.
func Run(t *testing.T, f Fixture) {
	goal := f.Goal
	if goal == "" {
		goal = "switch"
	}
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b := f.Backend
	target := func(h *schema.Host) *backend.Target {
		c := *h
		c.Activation = goal // as in a run: the goal is the host's activation
		return &backend.Target{Host: &c}
	}
	good, second, failing := target(f.Good), target(f.Second), target(f.Failing)
	ts := []*backend.Target{good, second, failing}

	for _, tg := range ts {
		if errs := b.Check(tg.Host); len(errs) > 0 {
			t.Fatalf("Check(%s) = %v; the fixture's hosts must be valid", tg.Host.Name, errs)
		}
	}

	t.Run("Plan", func(t *testing.T) {
		p1, p2 := b.Plan(ts), b.Plan(ts)
		if !reflect.DeepEqual(p1, p2) {
			t.Fatal("Plan is not deterministic")
		}
		for i, steps := range p1 {
			checkPlan(t, ts[i], steps, true)
		}
	})

	ok := t.Run("Instantiate", func(t *testing.T) {
		for i, err := range b.Instantiate(ctx, f.Local, ts) {
			if err != nil {
				t.Fatalf("Instantiate %s: %v", ts[i].Host.Name, err)
			}
		}
		outs := map[string]bool{}
		for _, tg := range ts {
			if tg.Drv == "" || tg.Out == "" || !strings.HasSuffix(tg.Drv, ".drv") || tg.Drv == tg.Out {
				t.Errorf("%s: Drv %q, Out %q: want a .drv and its output", tg.Host.Name, tg.Drv, tg.Out)
			}
			outs[tg.Out] = true
		}
		if len(outs) != len(ts) {
			t.Errorf("the three systems share outputs: %v", outs)
		}
		for i, steps := range b.Plan(ts) {
			checkPlan(t, ts[i], steps, false)
		}
	})
	if !ok {
		t.FailNow()
	}

	if !t.Run("Build", func(t *testing.T) {
		for i, err := range b.Build(ctx, f.Local, ts) {
			if err != nil {
				t.Fatalf("Build %s: %v", ts[i].Host.Name, err)
			}
		}
	}) {
		t.FailNow()
	}

	host := f.NewHost(t)
	state := func(t *testing.T, tg *backend.Target) backend.State {
		t.Helper()
		s, err := b.State(ctx, host, tg)
		if err != nil {
			t.Fatalf("State: %v", err)
		}
		return s
	}

	steps := []struct {
		name string
		f    func(t *testing.T)
	}{
		{"FreshHostState", func(t *testing.T) {
			if s := state(t, good); s != (backend.State{}) {
				t.Errorf("State of a fresh host = %+v, want zero", s)
			}
		}},
		{"PushActivate", func(t *testing.T) {
			if _, err := b.Push(ctx, f.Local, host, good); err != nil {
				t.Fatalf("Push: %v", err)
			}
			if err := b.Activate(ctx, host, good, goal); err != nil {
				t.Fatalf("Activate: %v", err)
			}
			if s := state(t, good); !s.Reached(goal, good.Out) {
				t.Errorf("after Activate the host is in %+v, which does not reach %s with %s", s, goal, good.Out)
			}
			for _, say := range f.Says {
				if !strings.Contains(good.Output, say) {
					t.Errorf("Activate kept the output %q, which lacks what the activation printed: %q", good.Output, say)
				}
			}
		}},
		{"SecondPushSendsNoPath", func(t *testing.T) {
			st, err := b.Push(ctx, f.Local, host, good)
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if st.Paths != 0 {
				t.Errorf("second Push sent %d store paths, want 0", st.Paths)
			}
		}},
		{"FailedActivationRollsBack", func(t *testing.T) {
			prev := state(t, failing)
			if _, err := b.Push(ctx, f.Local, host, failing); err != nil {
				t.Fatalf("Push: %v", err)
			}
			err := b.Activate(ctx, host, failing, goal)
			if err == nil {
				t.Fatal("Activate of the failing system succeeded")
			}
			var pe *backend.PhaseError
			if !errors.As(err, &pe) || pe.Phase != backend.PhaseActivate {
				t.Errorf("Activate error %v is not a PhaseError in phase %q", err, backend.PhaseActivate)
			}
			if err := b.Rollback(ctx, host, failing, goal, prev); err != nil {
				t.Fatalf("Rollback: %v", err)
			}
			if s := state(t, failing); s != prev {
				t.Errorf("after Rollback the host is in %+v, want %+v", s, prev)
			}
		}},
		{"SecondSystem", func(t *testing.T) {
			if _, err := b.Push(ctx, f.Local, host, second); err != nil {
				t.Fatalf("Push: %v", err)
			}
			if err := b.Activate(ctx, host, second, goal); err != nil {
				t.Fatalf("Activate: %v", err)
			}
			if s := state(t, second); !s.Reached(goal, second.Out) {
				t.Errorf("after Activate the host is in %+v, which does not reach %s with %s", s, goal, second.Out)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.f) {
			t.FailNow() // each step starts from the state the last one left
		}
	}
}

// phases every plan must cover.
var phases = []string{backend.PhaseEval, backend.PhaseConnect, backend.PhaseCopy, backend.PhaseActivate, backend.PhaseRollback}

func checkPlan(t *testing.T, tg *backend.Target, steps []backend.Step, placeholders bool) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range steps {
		seen[s.Phase] = true
		switch {
		case len(s.Argv) == 0 && s.Socket == "":
			t.Errorf("%s: a %s step has neither argv nor socket", tg.Host.Name, s.Phase)
		case len(s.Argv) > 0 && s.Socket != "":
			t.Errorf("%s: a %s step has both argv and socket", tg.Host.Name, s.Phase)
		case s.Socket != "" && s.On != backend.OnTarget:
			t.Errorf("%s: a %s step opens socket %s on %q, not on the target", tg.Host.Name, s.Phase, s.Socket, s.On)
		}
		if s.On != backend.OnLocal && s.On != backend.OnTarget {
			t.Errorf("%s: step %v runs on %q", tg.Host.Name, s.Argv, s.On)
		}
		if !placeholders {
			for _, a := range append(slices.Clone(s.Argv), s.StdinFrom...) {
				if a == backend.PlaceDrv || a == backend.PlaceOut {
					t.Errorf("%s: instantiated plan still has %s in %v", tg.Host.Name, a, s.Argv)
				}
			}
		}
	}
	need := phases
	if tg.Host.Build != "target" {
		need = append(slices.Clone(phases), backend.PhaseBuild)
	}
	for _, p := range need {
		if !seen[p] {
			t.Errorf("%s: plan has no %s step", tg.Host.Name, p)
		}
	}
}

// Processes returns the command lines of this machine's processes (the
// local fleet's hosts share its process numbers) that contain s.
func Processes(t testing.TB, s string) []string {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(data), s) {
			found = append(found, strings.ReplaceAll(strings.TrimRight(string(data), "\x00"), "\x00", " "))
		}
	}
	return found
}

// Quiet waits until no process of this machine names s (see Processes),
// failing t after 30 s. A negative check that follows it cannot pass
// merely because what it looks for has not happened yet: nothing that
// names s runs any more to make it happen.
func Quiet(t testing.TB, s string) {
	t.Helper()
	var ps []string
	if !Poll(func() bool { ps = Processes(t, s); return len(ps) == 0 }) {
		t.Fatalf("processes naming %s still run after 30 s: %q", s, ps)
	}
}

// Poll calls cond every 20 ms until it holds, for at most 30 s, and
// reports whether it held.
func Poll(cond func() bool) bool {
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// WaitFor fails t unless cond comes to hold within 30 s (see Poll); what
// names what it waits for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Poll(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
