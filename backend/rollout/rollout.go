// Package rollout runs deployments: it evaluates and builds the selected
// systems in batches on the deployer, then takes every host through its own
// pipeline (connect, copy, activate, roll back on failure) in parallel,
// within a bound, over one SSH connection per host.
//
// It prints nothing: progress goes to an Observer and results are returned.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// Status is how a host's run ended.
type Status string

// The statuses of a host.
const (
	Deployed   Status = "deployed"    // the host reached its goal with a new system
	Unchanged  Status = "unchanged"   // the host already had the system; nothing was done
	Built      Status = "built"       // deploy build: the system was built
	Failed     Status = "failed"      // the host did not reach its goal
	RolledBack Status = "rolled-back" // activation failed and the host is back on its previous system
	Cancelled  Status = "cancelled"   // --fail-fast stopped the run before this host finished
)

// OK reports whether the status means the host reached what was asked.
func (s Status) OK() bool { return s == Deployed || s == Unchanged || s == Built }

// Result is one host's outcome.
type Result struct {
	Host    string `json:"host"`
	Backend string `json:"backend"`
	Status  Status `json:"status"`
	// Phase is the last phase the host reached (the failing one on failure).
	Phase      string        `json:"phase"`
	Goal       string        `json:"goal"`
	Duration   time.Duration `json:"-"`
	DurationMS int64         `json:"durationMs"`
	Drv        string        `json:"drvPath,omitempty"`
	System     string        `json:"system,omitempty"`
	// Previous is the system the host ran before, when known.
	Previous string            `json:"previous,omitempty"`
	Copied   backend.CopyStats `json:"copied"`
	Error    string            `json:"error,omitempty"`
}

// Conn is a connection to one host.
type Conn interface {
	hosts.Executor
	io.Closer
}

// Observer hears about progress; calls come from many goroutines.
type Observer interface {
	// Phase says host entered phase.
	Phase(host, phase string)
	// Done says host finished.
	Done(r Result)
}

// Request is one run.
type Request struct {
	Deployment string
	Hosts      []schema.Host
	// Backends by name; hosts whose backend is missing fail at eval.
	Backends map[string]backend.Backend
	Local    hosts.Executor
	// Dial opens the one connection a host's pipeline uses.
	Dial func(ctx context.Context, h *schema.Host) (Conn, error)
	// Parallel bounds how many hosts run their pipeline at once (default 10).
	Parallel int
	// FailFast cancels the hosts still running when one fails.
	FailFast bool
	// Timeout bounds each host's pipeline (connect to the end), unless the
	// host sets its own.
	Timeout time.Duration
	// BuildOnly stops after the local build (deploy build); hosts built on
	// the target are only evaluated.
	BuildOnly bool
	Observer  Observer
}

// Targets makes the run's targets of hosts.
func Targets(deployment string, hs []schema.Host) []*backend.Target {
	ts := make([]*backend.Target, len(hs))
	for i := range hs {
		ts[i] = &backend.Target{Host: &hs[i], Deployment: deployment}
	}
	return ts
}

// group is the targets of one backend, with their indexes in the run.
type group struct {
	b   backend.Backend
	ts  []*backend.Target
	idx []int
}

func groups(ts []*backend.Target, bs map[string]backend.Backend) ([]*group, []error) {
	errs := make([]error, len(ts))
	by := map[string]*group{}
	var out []*group
	for i, t := range ts {
		name := t.Host.Backend()
		b, ok := bs[name]
		if !ok {
			errs[i] = fmt.Errorf("no backend %q", name)
			continue
		}
		g := by[name]
		if g == nil {
			g = &group{b: b}
			by[name] = g
			out = append(out, g)
		}
		g.ts = append(g.ts, t)
		g.idx = append(g.idx, i)
	}
	return out, errs
}

// Plan returns every target's steps, by the target's backend.
func Plan(ts []*backend.Target, bs map[string]backend.Backend) ([][]backend.Step, error) {
	gs, errs := groups(ts, bs)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	plans := make([][]backend.Step, len(ts))
	for _, g := range gs {
		for k, p := range g.b.Plan(g.ts) {
			plans[g.idx[k]] = p
		}
	}
	return plans, nil
}

// Instantiate evaluates every target's system on the deployer, one batch per
// backend, the backends concurrently. errs[i] is target i's error.
func Instantiate(ctx context.Context, local hosts.Executor, ts []*backend.Target, bs map[string]backend.Backend) []error {
	gs, errs := groups(ts, bs)
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, err := range g.b.Instantiate(ctx, local, g.ts) {
				if err != nil {
					errs[g.idx[k]] = err
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// Run deploys (or builds) the request's hosts and returns one result per
// host, in the request's order.
func Run(ctx context.Context, req Request) []Result {
	if req.Parallel <= 0 {
		req.Parallel = 10
	}
	obs := req.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	ts := Targets(req.Deployment, req.Hosts)
	results := make([]Result, len(ts))
	start := time.Now()
	for i, t := range ts {
		results[i] = Result{Host: t.Host.Name, Backend: t.Host.Backend(), Goal: t.Host.Activation, Phase: backend.PhaseEval}
		obs.Phase(t.Host.Name, backend.PhaseEval)
	}
	done := make([]bool, len(ts))
	fail := func(i int, phase string, err error) {
		var pe *backend.PhaseError
		if errors.As(err, &pe) {
			phase, err = pe.Phase, pe.Err
		}
		results[i].Status, results[i].Phase, results[i].Error = Failed, phase, err.Error()
		results[i].Duration = time.Since(start)
		done[i] = true
		obs.Done(results[i])
	}

	for i, err := range Instantiate(ctx, req.Local, ts, req.Backends) {
		if err != nil {
			fail(i, backend.PhaseEval, err)
		}
		results[i].Drv, results[i].System = ts[i].Drv, ts[i].Out
	}

	// One batched build per backend over every locally built system. The
	// hosts connect meanwhile and wait for it before they copy.
	buildErrs := make([]error, len(ts))
	buildDone := make(chan struct{})
	gs, _ := groups(ts, req.Backends)
	var builds sync.WaitGroup
	for _, g := range gs {
		var live []*backend.Target
		var idx []int
		for k, t := range g.ts {
			if !done[g.idx[k]] {
				live = append(live, t)
				idx = append(idx, g.idx[k])
				if t.Host.Build != "target" {
					obs.Phase(t.Host.Name, backend.PhaseBuild)
				}
			}
		}
		if len(live) == 0 {
			continue
		}
		builds.Add(1)
		go func() {
			defer builds.Done()
			for k, err := range g.b.Build(ctx, req.Local, live) {
				buildErrs[idx[k]] = err
			}
		}()
	}
	go func() {
		builds.Wait()
		close(buildDone)
	}()

	if req.BuildOnly {
		<-buildDone
		for i := range ts {
			if done[i] {
				continue
			}
			if buildErrs[i] != nil {
				fail(i, backend.PhaseBuild, buildErrs[i])
				continue
			}
			results[i].Status, results[i].Phase = Built, backend.PhaseBuild
			if ts[i].Host.Build == "target" {
				results[i].Phase = backend.PhaseEval
			}
			results[i].Duration = time.Since(start)
			obs.Done(results[i])
		}
		return finish(results)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, req.Parallel)
	var wg sync.WaitGroup
	for i, t := range ts {
		if done[i] {
			continue
		}
		b := req.Backends[t.Host.Backend()]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			select {
			case sem <- struct{}{}:
			case <-runCtx.Done():
				r.Status, r.Error = Cancelled, "the run was cancelled before this host started"
				r.Duration = time.Since(start)
				obs.Done(*r)
				return
			}
			defer func() { <-sem }()
			hostStart := time.Now()
			built := func() error {
				select {
				case <-buildDone:
					return buildErrs[i]
				case <-runCtx.Done():
					return runCtx.Err()
				}
			}
			pipeline(runCtx, req, b, t, r, obs, built)
			r.Duration = time.Since(hostStart)
			if !r.Status.OK() && req.FailFast {
				cancel()
			}
			obs.Done(*r)
		}()
	}
	wg.Wait()
	return finish(results)
}

func finish(rs []Result) []Result {
	for i := range rs {
		rs[i].DurationMS = rs[i].Duration.Milliseconds()
	}
	return rs
}

// pipeline takes one host from connect to its goal, rolling back a failed
// activation.
//
// The host connects while the batched build runs; built waits for the
// build and returns this host's build error. The host's timeout covers
// connecting and everything after the build.
func pipeline(ctx context.Context, req Request, b backend.Backend, t *backend.Target, r *Result, obs Observer, built func() error) {
	timeout := req.Timeout
	if t.Host.Timeout > 0 {
		timeout = t.Host.Timeout
	}
	base := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(base, timeout)
		defer cancel()
	}
	phase := func(p string) {
		r.Phase = p
		obs.Phase(t.Host.Name, p)
	}
	failed := func(err error) {
		var pe *backend.PhaseError
		if errors.As(err, &pe) {
			r.Phase, err = pe.Phase, pe.Err
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("%w (timed out after %s)", err, timeout)
		}
		r.Status, r.Error = Failed, err.Error()
		if errors.Is(ctx.Err(), context.Canceled) {
			// Another host failed under --fail-fast, or the user interrupted.
			r.Status = Cancelled
		}
	}
	phase(backend.PhaseConnect)
	conn, err := req.Dial(ctx, t.Host)
	if err != nil {
		failed(err)
		return
	}
	defer conn.Close()
	if t.Host.Build != "target" {
		phase(backend.PhaseBuild)
	}
	if err := built(); err != nil {
		r.Phase = backend.PhaseBuild
		failed(err)
		return
	}
	if timeout > 0 {
		// The wait for the shared build does not count against the host.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(base, timeout)
		defer cancel()
	}
	prev, err := b.State(ctx, conn, t)
	if err != nil {
		failed(err)
		return
	}
	r.Previous = prev.Current
	goal := t.Host.Activation
	if prev.Reached(goal, t.Out) {
		r.Status, r.Phase = Unchanged, backend.PhaseDone
		return
	}
	phase(backend.PhaseCopy)
	stats, err := b.Push(ctx, req.Local, conn, t)
	r.Copied = stats
	if err != nil {
		failed(err)
		return
	}
	phase(backend.PhaseActivate)
	if err := b.Activate(ctx, conn, t, goal); err != nil {
		actErr := err
		var pe *backend.PhaseError
		if errors.As(err, &pe) {
			actErr = pe.Err
		}
		phase(backend.PhaseRollback)
		if goal == "dry-activate" {
			failed(&backend.PhaseError{Phase: backend.PhaseActivate, Err: actErr})
			return
		}
		if rbErr := b.Rollback(ctx, conn, t, goal, prev); rbErr != nil {
			failed(fmt.Errorf("activation failed: %v; rollback failed too: %w", actErr, rbErr))
			return
		}
		r.Status, r.Error = RolledBack, fmt.Sprintf("activation failed, rolled back to %s: %v", describe(prev), actErr)
		return
	}
	r.Status, r.Phase = Deployed, backend.PhaseDone
}

func describe(s backend.State) string {
	if s.Generation > 0 {
		return fmt.Sprintf("generation %d", s.Generation)
	}
	if s.Current != "" {
		return s.Current
	}
	return "the previous system"
}

type nopObserver struct{}

func (nopObserver) Phase(string, string) {}
func (nopObserver) Done(Result)          {}
