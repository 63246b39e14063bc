// Package rollout runs deployments: it evaluates and builds the selected
// systems in batches on the deployer, then takes every host through its own
// pipeline (connect, copy, activate, roll back on failure) in parallel,
// within a bound, over one SSH connection per host.
//
// It prints nothing: progress goes to an Observer and results are returned.
package rollout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
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
	Deployed Status = "deployed" // the host reached its goal with a new system
	// DryActivated: --goal dry-activate; the activation said what would
	// change (Result.Output) and nothing changed.
	DryActivated Status = "dry-activated"
	Unchanged    Status = "unchanged"   // the host already had the system; nothing was done
	Built        Status = "built"       // deploy build: the system was built
	Evaluated    Status = "evaluated"   // deploy build: the system evaluated; the host builds it (build: "target")
	Failed       Status = "failed"      // the host did not reach its goal
	RolledBack   Status = "rolled-back" // activation failed and the host is back on its previous system
	Cancelled    Status = "cancelled"   // --fail-fast or the user stopped the run before this host finished
)

// OK reports whether the status means the host reached what was asked.
func (s Status) OK() bool {
	return s == Deployed || s == DryActivated || s == Unchanged || s == Built || s == Evaluated
}

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
	// Output is what the activation printed (for dry-activate: what would
	// change), when the backend keeps it.
	Output string `json:"output,omitempty"`
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
	// Parallel bounds how many hosts copy and activate at once (default
	// 10); twice as many may be connected, waiting for their turn.
	Parallel int
	// FailFast cancels the hosts still running when one fails.
	FailFast bool
	// Timeout bounds each host's pipeline (connect to the end), unless the
	// host sets its own.
	Timeout time.Duration
	// BuildOnly stops after the local build (deploy build); hosts built on
	// the target are only evaluated. It dials no host, so Dial, Parallel,
	// Timeout and FailFast are not used.
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
//
// The deployer evaluates and then builds every system in batches while the
// hosts already connect; each host waits for its own system before it
// copies.
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

	evalErrs := make([]error, len(ts))
	buildErrs := make([]error, len(ts))
	evaluated, built := make(chan struct{}), make(chan struct{})
	// ready[i] is closed once target i's build is over (buildErrs[i] set).
	ready := make([]chan struct{}, len(ts))
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	cancel := func() { cancelRun(errFailFast) } // --fail-fast stops the run
	go func() {
		copy(evalErrs, Instantiate(ctx, req.Local, ts, req.Backends))
		close(evaluated)
		build(ctx, req, ts, evalErrs, buildErrs, ready, cancel)
		close(built)
	}()

	if req.BuildOnly {
		<-built
		for i, t := range ts {
			r := &results[i]
			r.Drv = t.Drv
			switch {
			case evalErrs[i] != nil:
				setFailed(r, backend.PhaseEval, evalErrs[i])
			case buildErrs[i] != nil:
				setFailed(r, backend.PhaseBuild, buildErrs[i])
				if ctx.Err() != nil {
					r.Status = Cancelled // interrupted, not failed
					if errors.Is(buildErrs[i], context.Canceled) {
						r.Error = "stopped: " + stopReason(ctx)
					}
				}
			case t.Host.Build == "target":
				r.Status, r.System = Evaluated, t.Out // the host builds it: nothing was built here
			default:
				r.Status, r.Phase, r.System = Built, backend.PhaseBuild, t.Out
			}
			r.Duration = time.Since(start)
			obs.Done(*r)
		}
		return finish(results)
	}

	// Twice as many hosts as may work at once connect and read their state
	// ahead: while the deployer builds, and while other hosts copy and
	// activate, the next ones are ready.
	connSem := make(chan struct{}, 2*req.Parallel)
	workSem := make(chan struct{}, req.Parallel)
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f, ok := req.Backends[t.Host.Backend()].(backend.Finisher); ok {
				defer f.Finish(t)
			}
			r := &results[i]
			select {
			case connSem <- struct{}{}:
			case <-runCtx.Done():
				r.Status, r.Error = Cancelled, "stopped before this host started: "+stopReason(runCtx)
				r.Duration = time.Since(start)
				obs.Done(*r)
				return
			}
			defer func() { <-connSem }()
			hostStart := time.Now()
			wait := func(ch <-chan struct{}, errs []error) func() error {
				return func() error {
					select {
					case <-ch: // over before the run was cancelled: its own error
						return errs[i]
					default:
					}
					select {
					case <-ch:
						return errs[i]
					case <-runCtx.Done():
						return runCtx.Err()
					}
				}
			}
			h := hostRun{req: req, b: req.Backends[t.Host.Backend()], t: t, r: r, obs: obs,
				evaluated: wait(evaluated, evalErrs), built: wait(ready[i], buildErrs),
				work: func() (func(), error) {
					select {
					case workSem <- struct{}{}:
						return func() { <-workSem }, nil
					case <-runCtx.Done():
						return nil, runCtx.Err()
					}
				}}
			h.pipeline(ctx, runCtx)
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

// build runs one batched build per backend over every evaluated system,
// the backends concurrently, and records each target's error; ready[i] is
// closed when target i's build is over: as soon as its own system is
// built with a backend that can tell (backend.EachBuilder), else when its
// backend's batch is.
//
// Under FailFast every host waits until all batches have ended (a failed
// build is known only then): the hosts whose build failed are let go
// first, then stop cancels the run, then the others see it cancelled.
func build(ctx context.Context, req Request, ts []*backend.Target, evalErrs, buildErrs []error, ready []chan struct{}, stop func()) {
	once := make([]sync.Once, len(ts))
	over := func(i int) { once[i].Do(func() { close(ready[i]) }) }
	defer func() {
		for i := range ts {
			over(i) // targets no backend took, or held under FailFast
		}
	}()
	done := over
	if req.FailFast {
		done = func(int) {}
	}
	gs, _ := groups(ts, req.Backends)
	var wg sync.WaitGroup
	for _, g := range gs {
		var live []*backend.Target
		var idx []int
		for k, t := range g.ts {
			if evalErrs[g.idx[k]] == nil { // a host that did not evaluate waits on no build
				live = append(live, t)
				idx = append(idx, g.idx[k])
			}
		}
		if len(live) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if eb, ok := g.b.(backend.EachBuilder); ok && !req.FailFast {
				eb.BuildEach(ctx, req.Local, live, func(k int, err error) {
					buildErrs[idx[k]] = err
					done(idx[k])
				})
				return
			}
			for k, err := range g.b.Build(ctx, req.Local, live) {
				buildErrs[idx[k]] = err
				done(idx[k])
			}
		}()
	}
	wg.Wait()
	if !req.FailFast {
		return
	}
	failed := false
	for i, err := range buildErrs {
		if err != nil {
			failed = true
			over(i)
		}
	}
	if failed {
		stop()
	}
}

// setFailed records err as r's failure in phase, unless err names its own;
// then the phase is said once, in Phase, and what was added around the
// backend's error (a time-out, the activation error before a failed
// rollback) stays in the message.
func setFailed(r *Result, phase string, err error) {
	msg := err.Error()
	var pe *backend.PhaseError
	if errors.As(err, &pe) {
		phase = pe.Phase
		msg = strings.Replace(msg, pe.Error(), pe.Err.Error(), 1)
	}
	r.Status, r.Phase, r.Error = Failed, phase, msg
}

func finish(rs []Result) []Result {
	for i := range rs {
		rs[i].DurationMS = rs[i].Duration.Milliseconds()
	}
	return rs
}

// hostRun is one host's pipeline and what it waits on.
type hostRun struct {
	req Request
	b   backend.Backend
	t   *backend.Target
	r   *Result
	obs Observer
	// evaluated and built wait for the deployer's batches and return this
	// host's error from them.
	evaluated, built func() error
	// work waits for one of the run's Parallel slots and returns its
	// release.
	work func() (release func(), err error)
}

// pipeline takes one host from connect to its goal, rolling back a failed
// activation. The host reads its state as soon as its system is evaluated,
// while the deployer still builds. The host's timeout covers connecting and
// every step on the host; waiting for the shared build and for a work slot
// does not count against it.
//
// user is the run's context as the user controls it (an interrupt cancels
// it); runCtx is also cancelled when --fail-fast stops the run. Until the host
// activates, either stops it. An activation under way is not cut short
// because another host failed: only the user or the host's timeout stop
// it, and then it is rolled back (rollbackContext).
func (h *hostRun) pipeline(user, runCtx context.Context) {
	t, r := h.t, h.r
	timeout := h.req.Timeout
	if t.Host.Timeout > 0 {
		timeout = t.Host.Timeout
	}
	// One context for the whole pipeline, as a session opened in one step
	// lives on in the next; its clock stops while the host waits on others.
	ctx, cancel := context.WithCancelCause(user)
	defer cancel(nil)
	unlink := context.AfterFunc(runCtx, func() { cancel(context.Cause(runCtx)) })
	defer unlink()
	linked := true // runCtx still stops this host
	var clock *time.Timer
	var left time.Duration = timeout
	var since time.Time
	run := func() {
		if timeout > 0 && clock == nil {
			since = time.Now()
			clock = time.AfterFunc(left, func() { cancel(context.DeadlineExceeded) })
		}
	}
	pause := func() {
		if clock != nil && clock.Stop() {
			left -= time.Since(since)
			clock = nil
		}
	}
	defer pause()
	run()
	phase := func(p string) {
		r.Phase = p
		h.obs.Phase(t.Host.Name, p)
	}
	// timedOut says the host's timeout stopped it; then its error says so.
	timedOut := func() bool { return errors.Is(context.Cause(ctx), context.DeadlineExceeded) }
	noted := func(err error) error {
		if timedOut() {
			return fmt.Errorf("%w (timed out after %s)", err, timeout)
		}
		return err
	}
	failed := func(err error) {
		timedOut := timedOut()
		setFailed(r, r.Phase, noted(err))
		stopped := ctx.Err() != nil || (linked && runCtx.Err() != nil)
		if stopped && !timedOut {
			// Another host failed under --fail-fast, or the user
			// interrupted: that is what stopped it, not the step's own
			// "context canceled".
			r.Status = Cancelled
			why := ctx
			if ctx.Err() == nil {
				why = runCtx
			}
			if errors.Is(err, context.Canceled) {
				r.Error = "stopped: " + stopReason(why)
			} else {
				// The step's own error (a connection closed under it)
				// follows the reason.
				r.Error = "stopped: " + stopReason(why) + "; " + r.Error
			}
		}
	}

	phase(backend.PhaseConnect)
	conn, dialErr := h.req.Dial(ctx, t.Host)
	if dialErr == nil {
		defer conn.Close()
	}
	// A system that does not evaluate is the first thing to report.
	pause()
	if err := h.evaluated(); err != nil {
		r.Phase = backend.PhaseEval
		failed(err)
		return
	}
	run()
	r.Drv, r.System = t.Drv, t.Out
	if dialErr != nil {
		failed(dialErr)
		return
	}
	prev, err := h.b.State(ctx, conn, t)
	if err != nil {
		failed(err)
		return
	}
	r.Previous = prev.Current
	pause()
	if t.Host.Build != "target" {
		phase(backend.PhaseBuild)
	}
	if err := h.built(); err != nil {
		r.Phase = backend.PhaseBuild
		if errors.Is(err, context.Canceled) {
			failed(err)
		} else {
			// Its own build failed: it may be what cancelled the run
			// (--fail-fast), but it is not cancelled itself.
			setFailed(r, r.Phase, err)
		}
		return
	}
	goal := t.Host.Activation
	if prev.Reached(goal, t.Out) {
		r.Status, r.Phase = Unchanged, backend.PhaseDone
		return
	}
	release, err := h.work()
	if err != nil {
		failed(err)
		return
	}
	defer release()
	run()
	phase(backend.PhaseCopy)
	stats, err := h.b.Push(ctx, h.req.Local, conn, t)
	r.Copied = stats
	if err != nil {
		failed(err)
		return
	}
	unlink()
	if err := cmp.Or(ctx.Err(), runCtx.Err()); err != nil {
		failed(err) // stopped before the host was touched (in copy)
		return
	}
	linked = false
	phase(backend.PhaseActivate)
	err = h.b.Activate(ctx, conn, t, goal)
	r.Output = t.Output
	if err != nil {
		if goal == "dry-activate" {
			failed(err)
			return
		}
		if errors.Is(err, backend.ErrActivationNotStarted) {
			failed(err) // nothing changed: nothing to roll back
			return
		}
		actErr := err
		var pe *backend.PhaseError
		if errors.As(err, &pe) {
			actErr = pe.Err
		}
		actErr = noted(actErr)
		what := "activation failed"
		if ctx.Err() != nil {
			// The time-out, the user: the backend stops what still runs.
			what = "activation interrupted"
		}
		// Interrupted or not, the host goes back: the activation may have
		// left it half switched.
		phase(backend.PhaseRollback)
		rbCtx, rbCancel := rollbackContext(ctx, timeout)
		defer rbCancel()
		if rbErr := h.b.Rollback(rbCtx, conn, t, goal, prev); rbErr != nil {
			setFailed(r, r.Phase, fmt.Errorf("%s: %v; rollback failed too: %w", what, actErr, rbErr))
			return
		}
		r.Status, r.Error = RolledBack, fmt.Sprintf("%s, rolled back to %s: %v", what, describe(prev), actErr)
		return
	}
	r.Status, r.Phase = Deployed, backend.PhaseDone
	if goal == "dry-activate" {
		r.Status = DryActivated
	}
}

// errFailFast is the cause of a run stopped by --fail-fast.
var errFailFast = errors.New("another host failed (--fail-fast)")

// stopReason says why ctx, a cancelled run's or host's context, was
// cancelled: another host's failure under --fail-fast, or what the user
// did ("interrupt signal received", from signal.NotifyContext).
func stopReason(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c.Error()
	}
	return "the run was cancelled"
}

// rollbackTime bounds a rollback when the host has no timeout of its own.
const rollbackTime = 5 * time.Minute

// rollbackContext is what a rollback runs under: not cancelled with ctx,
// since a rollback is what must happen when an activation was interrupted
// (the time-out, the user), but bounded by the host's timeout or, without
// one, by rollbackTime.
func rollbackContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = rollbackTime
	}
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

func describe(s backend.State) string {
	if s.Generation > 0 && !s.RunsBooted() {
		return fmt.Sprintf("generation %d, running %s", s.Generation, s.Current)
	}
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
