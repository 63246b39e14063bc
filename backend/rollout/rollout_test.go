package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// fakeBackend records what the runner asks of it; hosts named in its maps
// fail in that phase. It stands in for a real backend only to test the
// runner's scheduling, which the end-to-end tests cannot pin down.
type fakeBackend struct {
	failEval, failBuild, failActivate map[string]bool
	failRollback                      map[string]bool
	slowActivate                      map[string]time.Duration // how long Activate takes
	notStarted                        map[string]bool          // Activate fails before it changes anything
	block                             map[string]bool          // Push waits for ctx
	running, maxRunning               atomic.Int32
	mu                                sync.Mutex
	calls                             []string
	state                             map[string]backend.State
}

func (f *fakeBackend) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (*fakeBackend) Name() string                            { return "nix" }
func (*fakeBackend) Check(*schema.Host) []backend.FieldError { return nil }
func (*fakeBackend) Plan(ts []*backend.Target) [][]backend.Step {
	return make([][]backend.Step, len(ts))
}

func (f *fakeBackend) Instantiate(_ context.Context, _ hosts.Executor, ts []*backend.Target) []error {
	f.record(fmt.Sprintf("instantiate %d", len(ts)))
	errs := make([]error, len(ts))
	for i, t := range ts {
		if f.failEval[t.Host.Name] {
			errs[i] = errors.New("eval broke")
			continue
		}
		t.Drv, t.Out = "/nix/store/d-"+t.Host.Name+".drv", "/nix/store/o-"+t.Host.Name
	}
	return errs
}

func (f *fakeBackend) Build(_ context.Context, _ hosts.Executor, ts []*backend.Target) []error {
	f.record(fmt.Sprintf("build %d", len(ts)))
	errs := make([]error, len(ts))
	for i, t := range ts {
		if f.failBuild[t.Host.Name] {
			errs[i] = errors.New("build broke")
		}
	}
	return errs
}

func (f *fakeBackend) State(_ context.Context, _ hosts.Executor, t *backend.Target) (backend.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[t.Host.Name], nil
}

func (f *fakeBackend) Push(ctx context.Context, _, _ hosts.Executor, t *backend.Target) (backend.CopyStats, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		m := f.maxRunning.Load()
		if n <= m || f.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	if f.block[t.Host.Name] {
		<-ctx.Done()
		// As the real backends: the phase's own error.
		return backend.CopyStats{}, &backend.PhaseError{Phase: backend.PhaseCopy, Err: ctx.Err()}
	}
	time.Sleep(20 * time.Millisecond) // overlap with other hosts, so the bound is exercised
	return backend.CopyStats{Paths: 1, Bytes: 10}, nil
}

func (f *fakeBackend) Activate(ctx context.Context, _ hosts.Executor, t *backend.Target, goal string) error {
	if d := f.slowActivate[t.Host.Name]; d > 0 {
		select {
		case <-ctx.Done():
			return &backend.PhaseError{Phase: backend.PhaseActivate, Err: ctx.Err()}
		case <-time.After(d):
		}
	}
	if f.notStarted[t.Host.Name] {
		return &backend.PhaseError{Phase: backend.PhaseActivate, Err: fmt.Errorf("%w: the system is not in the store", backend.ErrActivationNotStarted)}
	}
	if f.failActivate[t.Host.Name] {
		return &backend.PhaseError{Phase: backend.PhaseActivate, Err: errors.New("unit failed")}
	}
	f.mu.Lock()
	f.state[t.Host.Name] = backend.State{Current: t.Out, Profile: t.Out, Generation: f.state[t.Host.Name].Generation + 1}
	f.mu.Unlock()
	return nil
}

func (f *fakeBackend) Rollback(ctx context.Context, _ hosts.Executor, t *backend.Target, _ string, prev backend.State) error {
	f.record("rollback " + t.Host.Name)
	if err := ctx.Err(); err != nil { // as a real command would not start
		return &backend.PhaseError{Phase: backend.PhaseRollback, Err: err}
	}
	if f.failRollback[t.Host.Name] {
		return &backend.PhaseError{Phase: backend.PhaseRollback, Err: errors.New("nothing to roll back to")}
	}
	f.mu.Lock()
	f.state[t.Host.Name] = prev
	f.mu.Unlock()
	return nil
}

type fakeConn struct{ name string }

func (c fakeConn) Run(context.Context, hosts.Cmd) error { return nil }
func (c fakeConn) Where() string                        { return c.name }
func (c fakeConn) Close() error                         { return nil }

func request(f *fakeBackend, n int) Request {
	var hs []schema.Host
	for i := 1; i <= n; i++ {
		hs = append(hs, schema.Host{Name: fmt.Sprintf("h%02d", i), Build: "local", Activation: "switch", Nix: &schema.Nix{File: "/x.nix", Attribute: "a"}})
	}
	if f.state == nil {
		f.state = map[string]backend.State{}
	}
	return Request{
		Deployment: "t", Hosts: hs, Backends: map[string]backend.Backend{"nix": f}, Local: hosts.Local{},
		Dial: func(_ context.Context, h *schema.Host) (Conn, error) { return fakeConn{h.Name}, nil },
	}
}

func byHost(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Host] = r
	}
	return m
}

func TestParallelismIsBounded(t *testing.T) {
	f := &fakeBackend{}
	req := request(f, 12)
	req.Parallel = 3
	rs := Run(context.Background(), req)
	for _, r := range rs {
		if r.Status != Deployed {
			t.Errorf("%s: %s (%s)", r.Host, r.Status, r.Error)
		}
	}
	if got := f.maxRunning.Load(); got != 3 {
		t.Errorf("at most %d hosts ran at once, want exactly the bound 3", got)
	}
	if strings.Join(f.calls, ",") != "instantiate 12,build 12" {
		t.Errorf("calls %v, want one batched instantiate and one batched build", f.calls)
	}
}

// countedConn counts the connections open at once.
type countedConn struct {
	fakeConn
	open *atomic.Int32
}

func (c countedConn) Close() error {
	c.open.Add(-1)
	return nil
}

func TestHostsConnectAheadOfTheirTurn(t *testing.T) {
	f := &fakeBackend{}
	req := request(f, 12)
	req.Parallel = 2
	var open, maxOpen atomic.Int32
	req.Dial = func(_ context.Context, h *schema.Host) (Conn, error) {
		n := open.Add(1)
		for {
			m := maxOpen.Load()
			if n <= m || maxOpen.CompareAndSwap(m, n) {
				break
			}
		}
		return countedConn{fakeConn{h.Name}, &open}, nil
	}
	for _, r := range Run(context.Background(), req) {
		if r.Status != Deployed {
			t.Errorf("%s: %s (%s)", r.Host, r.Status, r.Error)
		}
	}
	if got := f.maxRunning.Load(); got != 2 {
		t.Errorf("at most %d hosts copied at once, want exactly the bound 2", got)
	}
	if got := maxOpen.Load(); got != 4 {
		t.Errorf("at most %d hosts were connected at once, want twice the bound: 4", got)
	}
	if got := open.Load(); got != 0 {
		t.Errorf("%d connections still open after the run", got)
	}
}

func TestFailuresAreNamedWithTheirPhaseAndOthersCarryOn(t *testing.T) {
	f := &fakeBackend{
		failEval:     map[string]bool{"h01": true},
		failBuild:    map[string]bool{"h02": true},
		failActivate: map[string]bool{"h03": true},
	}
	req := request(f, 5)
	f.state["h03"] = backend.State{Current: "/nix/store/old", Profile: "/nix/store/old", Generation: 4}
	f.state["h05"] = backend.State{Current: "/nix/store/o-h05", Profile: "/nix/store/o-h05", Generation: 1}
	rs := byHost(Run(context.Background(), req))
	want := map[string][2]string{
		"h01": {string(Failed), "eval"},
		"h02": {string(Failed), "build"},
		"h03": {string(RolledBack), "rollback"},
		"h04": {string(Deployed), "done"},
		"h05": {string(Unchanged), "done"},
	}
	for h, w := range want {
		if string(rs[h].Status) != w[0] || rs[h].Phase != w[1] {
			t.Errorf("%s: %s at %s (%s), want %s at %s", h, rs[h].Status, rs[h].Phase, rs[h].Error, w[0], w[1])
		}
	}
	if !strings.Contains(rs["h03"].Error, "generation 4") || !strings.Contains(rs["h03"].Error, "unit failed") {
		t.Errorf("h03 error %q does not say what failed and where it went back to", rs["h03"].Error)
	}
	if f.state["h03"].Current != "/nix/store/old" {
		t.Errorf("h03 was not rolled back: %+v", f.state["h03"])
	}
}

func TestFailFastCancelsTheRest(t *testing.T) {
	f := &fakeBackend{failActivate: map[string]bool{"h01": true}, block: map[string]bool{"h02": true, "h03": true}}
	req := request(f, 3)
	req.FailFast = true
	done := make(chan []Result)
	go func() { done <- Run(context.Background(), req) }()
	select {
	case rs := <-done:
		m := byHost(rs)
		if m["h01"].Status.OK() {
			t.Errorf("h01: %s, want a failure", m["h01"].Status)
		}
		for _, h := range []string{"h02", "h03"} {
			if m[h].Status != Cancelled {
				t.Errorf("%s: %s, want cancelled", h, m[h].Status)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--fail-fast did not stop the hosts still running")
	}
}

func TestTimeoutBoundsAHost(t *testing.T) {
	f := &fakeBackend{block: map[string]bool{"h01": true}}
	req := request(f, 2)
	req.Timeout = 100 * time.Millisecond
	start := time.Now()
	rs := byHost(Run(context.Background(), req))
	if rs["h01"].Status != Failed || !strings.Contains(rs["h01"].Error, "timed out after 100ms") {
		t.Errorf("h01: %s %q, want failed with a timeout", rs["h01"].Status, rs["h01"].Error)
	}
	if rs["h02"].Status != Deployed {
		t.Errorf("h02: %s, want deployed", rs["h02"].Status)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("run took %s", time.Since(start))
	}
}

// A failure's message keeps what the runner added to the backend's own
// error (the time-out, the activation error a failed rollback follows),
// with the phase named once, in Phase.
func TestFailureKeepsWhatWasAddedToIt(t *testing.T) {
	f := &fakeBackend{
		block:        map[string]bool{"h01": true},
		failActivate: map[string]bool{"h02": true},
		failRollback: map[string]bool{"h02": true},
	}
	req := request(f, 2)
	req.Timeout = 200 * time.Millisecond
	rs := byHost(Run(context.Background(), req))
	want := map[string]struct{ phase, err string }{
		"h01": {"copy", "context canceled (timed out after 200ms)"},
		"h02": {"rollback", "activation failed: unit failed; rollback failed too: nothing to roll back to"},
	}
	for h, w := range want {
		if rs[h].Status != Failed || rs[h].Phase != w.phase || rs[h].Error != w.err {
			t.Errorf("%s: %s at %s: %q, want failed at %s: %q", h, rs[h].Status, rs[h].Phase, rs[h].Error, w.phase, w.err)
		}
	}
}

// An activation the host's timeout or the user interrupts is rolled back:
// the rollback does not run under the context that stopped it.
func TestInterruptedActivationIsRolledBack(t *testing.T) {
	f := &fakeBackend{slowActivate: map[string]time.Duration{"h01": time.Second}}
	req := request(f, 1)
	f.state["h01"] = backend.State{Current: "/nix/store/old", Profile: "/nix/store/old", Generation: 3}
	req.Timeout = 150 * time.Millisecond
	rs := byHost(Run(context.Background(), req))
	if r := rs["h01"]; r.Status != RolledBack || !strings.HasPrefix(r.Error, "activation interrupted, rolled back to generation 3") || !strings.Contains(r.Error, "timed out after 150ms") {
		t.Errorf("timed out: %s at %s: %q, want rolled back to generation 3 after the time-out", r.Status, r.Phase, r.Error)
	}

	f = &fakeBackend{slowActivate: map[string]time.Duration{"h01": time.Second}}
	req = request(f, 1)
	f.state["h01"] = backend.State{Current: "/nix/store/old", Profile: "/nix/store/old", Generation: 3}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel) // the user's Ctrl-C, during activation
	rs = byHost(Run(ctx, req))
	if r := rs["h01"]; r.Status != RolledBack || f.state["h01"].Generation != 3 || !strings.HasPrefix(r.Error, "activation interrupted, rolled back") {
		t.Errorf("interrupted: %s at %s: %q, state %+v; want rolled back to generation 3", r.Status, r.Phase, r.Error, f.state["h01"])
	}
}

// Under --fail-fast, a host already activating when another fails finishes
// its activation: cutting it short would leave it half switched.
func TestFailFastLetsActivationsFinish(t *testing.T) {
	// Both start activating at once; h01 fails 100 ms in, h02 is done at 400.
	f := &fakeBackend{failActivate: map[string]bool{"h01": true},
		slowActivate: map[string]time.Duration{"h01": 100 * time.Millisecond, "h02": 400 * time.Millisecond}}
	req := request(f, 2)
	req.FailFast = true
	rs := byHost(Run(context.Background(), req))
	if rs["h01"].Status != RolledBack {
		t.Errorf("h01: %s, want rolled back", rs["h01"].Status)
	}
	if r := rs["h02"]; r.Status != Deployed {
		t.Errorf("h02: %s at %s: %q, want deployed (it was activating when h01 failed)", r.Status, r.Phase, r.Error)
	}
}

// An activation that failed before it changed anything is not rolled back:
// rolling back would run the old system's activation on a host that never
// left it.
func TestActivationThatDidNotStartIsNotRolledBack(t *testing.T) {
	f := &fakeBackend{notStarted: map[string]bool{"h01": true}}
	req := request(f, 1)
	f.state["h01"] = backend.State{Current: "/nix/store/old", Profile: "/nix/store/old", Generation: 3}
	rs := byHost(Run(context.Background(), req))
	if r := rs["h01"]; r.Status != Failed || r.Phase != backend.PhaseActivate || !strings.Contains(r.Error, "the host is as it was") {
		t.Errorf("h01: %s at %s: %q, want failed at activate, the host as it was", r.Status, r.Phase, r.Error)
	}
	if slices.Contains(f.calls, "rollback h01") {
		t.Error("h01 was rolled back, though its activation never started")
	}
}

func TestBuildOnlyTouchesNoHost(t *testing.T) {
	f := &fakeBackend{}
	req := request(f, 2)
	req.BuildOnly = true
	req.Dial = func(context.Context, *schema.Host) (Conn, error) {
		t.Error("deploy build dialled a host")
		return nil, errors.New("no")
	}
	req.Hosts[1].Build = "target"
	rs := byHost(Run(context.Background(), req))
	if r := rs["h01"]; r.Status != Built || r.System == "" {
		t.Errorf("h01: %s %q, want built with a system path", r.Status, r.System)
	}
	// A host that builds its own system is not said to be built here.
	if r := rs["h02"]; r.Status != Evaluated || !r.Status.OK() || r.System == "" {
		t.Errorf("h02 (build: target): %s %q, want evaluated, with its system path", r.Status, r.System)
	}
}

// eachBuilder is a fakeBackend whose batch hands each target on as soon as
// it is built: h01 at once, h02 only when release is closed.
type eachBuilder struct {
	*fakeBackend
	release chan struct{}
	pushed  chan string
}

func (e *eachBuilder) BuildEach(_ context.Context, _ hosts.Executor, ts []*backend.Target, ready func(int, error)) {
	e.record(fmt.Sprintf("build %d", len(ts)))
	for i, t := range ts {
		if t.Host.Name == "h01" {
			ready(i, nil)
		}
	}
	<-e.release
	for i, t := range ts {
		if t.Host.Name != "h01" {
			var err error
			if e.failBuild[t.Host.Name] {
				err = errors.New("build broke")
			}
			ready(i, err)
		}
	}
}

// Build, the batch waited for whole, hands nothing on before release.
func (e *eachBuilder) Build(ctx context.Context, local hosts.Executor, ts []*backend.Target) []error {
	<-e.release
	return e.fakeBackend.Build(ctx, local, ts)
}

func (e *eachBuilder) Push(ctx context.Context, local, remote hosts.Executor, t *backend.Target) (backend.CopyStats, error) {
	e.pushed <- t.Host.Name
	return e.fakeBackend.Push(ctx, local, remote, t)
}

func TestBuiltHostGoesOnWhileOthersBuild(t *testing.T) {
	e := &eachBuilder{fakeBackend: &fakeBackend{failBuild: map[string]bool{"h03": true}}, release: make(chan struct{}), pushed: make(chan string, 3)}
	req := request(e.fakeBackend, 3)
	req.Backends = map[string]backend.Backend{"nix": e}
	done := make(chan []Result)
	go func() { done <- Run(context.Background(), req) }()
	select {
	case h := <-e.pushed:
		if h != "h01" {
			t.Fatalf("%s copied while the batch still built it", h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("h01, built, did not copy while the others still built")
	}
	close(e.release)
	rs := byHost(<-done)
	for h, want := range map[string]Status{"h01": Deployed, "h02": Deployed, "h03": Failed} {
		if rs[h].Status != want {
			t.Errorf("%s: %s (%s), want %s", h, rs[h].Status, rs[h].Error, want)
		}
	}
	if rs["h03"].Phase != backend.PhaseBuild || !strings.Contains(rs["h03"].Error, "build broke") {
		t.Errorf("h03 failed in %q with %q, want the build's error", rs["h03"].Phase, rs["h03"].Error)
	}
	if got := strings.Join(e.calls, ","); got != "instantiate 3,build 3" {
		t.Errorf("calls %v, want one batched instantiate and one batched build", got)
	}
}

// TestFailFastWaitsForTheWholeBatch: under --fail-fast no host goes on
// before the batch has ended, since a failed build is known only then;
// when one has failed, the others are cancelled before they copy.
func TestFailFastWaitsForTheWholeBatch(t *testing.T) {
	e := &eachBuilder{fakeBackend: &fakeBackend{failBuild: map[string]bool{"h03": true}}, release: make(chan struct{}), pushed: make(chan string, 3)}
	req := request(e.fakeBackend, 3)
	req.Backends = map[string]backend.Backend{"nix": e}
	req.FailFast = true
	done := make(chan []Result)
	go func() { done <- Run(context.Background(), req) }()
	select {
	case h := <-e.pushed:
		t.Fatalf("%s copied under --fail-fast before the batch ended", h)
	case <-time.After(300 * time.Millisecond):
	}
	close(e.release)
	rs := byHost(<-done)
	if rs["h03"].Status != Failed || rs["h03"].Phase != backend.PhaseBuild || !strings.Contains(rs["h03"].Error, "build broke") {
		t.Errorf("h03: %s in %s (%s), want failed in build with the build's error", rs["h03"].Status, rs["h03"].Phase, rs["h03"].Error)
	}
	for _, h := range []string{"h01", "h02"} {
		if rs[h].Status != Cancelled {
			t.Errorf("%s: %s (%s), want cancelled by h03's failed build", h, rs[h].Status, rs[h].Error)
		}
	}
	select {
	case h := <-e.pushed:
		t.Errorf("%s copied although a build of the batch failed under --fail-fast", h)
	default:
	}
}

// finishing is a fakeBackend that counts Finish calls per host.
type finishing struct {
	*fakeBackend
	finished map[string]int
}

func (f *finishing) Finish(t *backend.Target) {
	f.mu.Lock()
	f.finished[t.Host.Name]++
	f.mu.Unlock()
}

// TestEveryHostIsFinished: the backend hears once of every host's end,
// whatever it was: deployed, unchanged, failed in eval or build.
func TestEveryHostIsFinished(t *testing.T) {
	f := &finishing{fakeBackend: &fakeBackend{failEval: map[string]bool{"h01": true}, failBuild: map[string]bool{"h02": true}}, finished: map[string]int{}}
	req := request(f.fakeBackend, 4)
	f.state["h04"] = backend.State{Current: "/nix/store/o-h04", Profile: "/nix/store/o-h04", Generation: 1}
	req.Backends = map[string]backend.Backend{"nix": f}
	rs := byHost(Run(context.Background(), req))
	for h, want := range map[string]Status{"h01": Failed, "h02": Failed, "h03": Deployed, "h04": Unchanged} {
		if rs[h].Status != want {
			t.Errorf("%s: %s (%s), want %s", h, rs[h].Status, rs[h].Error, want)
		}
		if f.finished[h] != 1 {
			t.Errorf("%s finished %d times, want once", h, f.finished[h])
		}
	}
}

// deploy build: a build that did not end is reported cancelled when the run
// was interrupted, failed otherwise; neither gets a system path, which
// would name nothing.
func TestBuildOnlyUnbuiltHasNoSystem(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		f := &fakeBackend{failBuild: map[string]bool{"h01": true}}
		req := request(f, 2)
		req.BuildOnly = true
		ctx, cancel := context.WithCancel(context.Background())
		if interrupted {
			cancel()
		}
		rs := byHost(Run(ctx, req))
		cancel()
		want := Failed
		if interrupted {
			want = Cancelled
		}
		if r := rs["h01"]; r.Status != want || r.System != "" {
			t.Errorf("interrupted %v: h01 %s %q, want %s without a system path", interrupted, r.Status, r.System, want)
		}
		if r := rs["h02"]; !interrupted && (r.Status != Built || r.System == "") {
			t.Errorf("h02: %s %q, want built with its system path", r.Status, r.System)
		}
	}
}

// A cancelled host says what stopped it, not the step's "context
// canceled": another host's failure under --fail-fast, or the user.
func TestCancelledSaysWhy(t *testing.T) {
	f := &fakeBackend{failActivate: map[string]bool{"h01": true}, block: map[string]bool{"h02": true}}
	req := request(f, 2)
	req.FailFast = true
	rs := byHost(Run(context.Background(), req))
	if r := rs["h02"]; r.Status != Cancelled || r.Error != "stopped: another host failed (--fail-fast)" {
		t.Errorf("--fail-fast: h02 %s: %q, want cancelled, saying another host failed", r.Status, r.Error)
	}

	f = &fakeBackend{block: map[string]bool{"h01": true}}
	req = request(f, 1)
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("interrupt signal received")) })
	rs = byHost(Run(ctx, req))
	if r := rs["h01"]; r.Status != Cancelled || r.Error != "stopped: interrupt signal received" {
		t.Errorf("interrupted: h01 %s: %q, want cancelled, saying it was interrupted", r.Status, r.Error)
	}
}
