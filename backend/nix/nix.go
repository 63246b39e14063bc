package nix

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

func init() { backend.Register(New(Options{})) }

// Backend deploys NixOS-style systems.
type Backend struct {
	opts Options

	mu sync.Mutex
	// info is what the local store records of the paths closures found.
	info map[string]pathInfo
	// open are the sessions State started, waiting for Push, and those
	// Push left waiting for Activate's "go".
	open map[*backend.Target]*openCopy
	// nars keeps the archives several hosts lack, for the run.
	nars *narCache
	// shared are the targets whose closures nars counts; finished, those
	// whose run has ended (their closures are not counted any more).
	shared, finished map[*backend.Target]bool
	// begun is what failed activations said as they began, for Rollback.
	begun map[*backend.Target]begun
}

// openCopy is a host's session from State on: waiting for the copy until
// Push; after a copy through the daemon, waiting for Activate's "go"; after
// the activation, ended, its daemon connection open until Finish. After a
// copy through its nix-store --serve, it stays open until Finish.
type openCopy struct {
	s      *serveSession
	pushed bool // Push has copied through the daemon: the session waits for "go"
	// held: Push has copied through the session's nix-store --serve,
	// which holds the closure (and holds) as temporary roots until the
	// host's run has ended (Finish), a rollback included.
	held bool
	// holds are paths the copy holds as temporary roots besides the
	// closure (see hostStore): the system the host runs where no
	// generation has it.
	holds []string
	// daemon, when the host's nix daemon can take the copy, is open from
	// State until the host's run has ended (Finish), a rollback included:
	// its worker holds the closure as temporary GC roots until the
	// profile refers to it, and the system the host ran before where no
	// generation does.
	daemon *daemonConn
}

// end ends the session and the daemon connection.
func (oc *openCopy) end() {
	oc.s.wait()
	oc.dropDaemon()
}

func (oc *openCopy) dropDaemon() {
	if oc.daemon != nil {
		oc.daemon.Close()
		oc.daemon = nil
	}
}

// New returns a Nix backend with run options o.
func New(o Options) *Backend {
	return &Backend{opts: o, info: map[string]pathInfo{}, open: map[*backend.Target]*openCopy{}, nars: newNARCache(),
		shared: map[*backend.Target]bool{}, finished: map[*backend.Target]bool{}, begun: map[*backend.Target]begun{}}
}

// share counts t's closure in the archive cache, unless t's run has ended.
func (b *Backend) share(t *backend.Target) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.finished[t] && !b.shared[t] {
		b.shared[t] = true
		b.nars.share(t.Closure)
	}
}

// unshare stops counting t's closure in the archive cache: t has copied,
// or will not.
func (b *Backend) unshare(t *backend.Target) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shared[t] {
		delete(b.shared, t)
		b.nars.done(t.Closure)
	}
}

// Finish implements backend.Finisher: a host that ends without copying
// (unchanged, or failed before) lets go of the archives kept for it; the
// daemon connection or nix-store --serve kept through the activation and a
// rollback, holding roots, is closed.
func (b *Backend) Finish(t *backend.Target) {
	if oc := b.release(t); oc != nil {
		oc.end() // a host stopped before it activated: its session waits
	}
	b.unshare(t)
	b.takeBegun(t)
	b.mu.Lock()
	b.finished[t] = true
	b.mu.Unlock()
}

// takeBegun returns what t's failed activation said as it began, if it
// did, and forgets it.
func (b *Backend) takeBegun(t *backend.Target) (begun, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	said, ok := b.begun[t]
	delete(b.begun, t)
	return said, ok
}

// Name implements backend.Backend.
func (*Backend) Name() string { return "nix" }

// Check implements backend.Backend: every goal exists for NixOS.
func (*Backend) Check(h *schema.Host) []backend.FieldError {
	if h.Nix != nil && h.Nix.Flake != "" && len(h.Nix.Args) > 0 {
		return []backend.FieldError{{Path: "nix.args", Message: "args apply to nix.file only; a flake takes no arguments"}}
	}
	return nil
}

// evalGroup is one process of instantiation: a file with its arguments, or
// a flake, and the targets it serves.
type evalGroup struct {
	argv    []string
	flake   bool
	targets []int // indexes into the target list
}

// groups batches targets by the process that evaluates them, in the order
// the first target of each group appears.
func (b *Backend) groups(ts []*backend.Target) []*evalGroup {
	byKey := map[string]*evalGroup{}
	var out []*evalGroup
	attrs := map[*evalGroup][]string{}
	for i, t := range ts {
		nx := t.Host.Nix
		var key string
		if nx.Flake != "" {
			ref, _, _ := strings.Cut(nx.Flake, "#")
			key = "flake\x00" + ref
		} else {
			a, _ := json.Marshal(nx.Args)
			key = "file\x00" + nx.File + "\x00" + string(a)
		}
		g := byKey[key]
		if g == nil {
			g = &evalGroup{flake: nx.Flake != ""}
			byKey[key] = g
			out = append(out, g)
		}
		g.targets = append(g.targets, i)
		attrs[g] = append(attrs[g], evalAttr(nx))
	}
	for _, g := range out {
		g.argv = b.evalArgv(ts[g.targets[0]].Host.Nix, attrs[g])
	}
	return out
}

// evalArgv evaluates attrs (flake outputs, or attributes of the file) of
// the flake or file nx names.
func (b *Backend) evalArgv(nx *schema.Nix, attrs []string) []string {
	if nx.Flake != "" {
		ref, _, _ := strings.Cut(nx.Flake, "#")
		return b.opts.flakeEvalArgv(ref, attrs)
	}
	return b.opts.instantiateArgv(nx.File, nx.Args, attrs)
}

// evalAttr is what nx evaluates: the flake's output or the file's attribute.
func evalAttr(nx *schema.Nix) string {
	if nx.Flake != "" {
		_, name, _ := strings.Cut(nx.Flake, "#")
		return name
	}
	return nx.Attribute
}

// alone is the group that evaluates t by itself.
func (b *Backend) alone(t *backend.Target) *evalGroup {
	nx := t.Host.Nix
	return &evalGroup{argv: b.evalArgv(nx, []string{evalAttr(nx)}), flake: nx.Flake != "", targets: []int{0}}
}

func orPlace(v, place string) string {
	if v == "" {
		return place
	}
	return v
}

// Plan implements backend.Backend.
func (b *Backend) Plan(ts []*backend.Target) [][]backend.Step {
	plans := make([][]backend.Step, len(ts))
	groups := b.groups(ts)
	var drvs, localDrvs, roots []string
	for _, t := range ts {
		drv := orPlace(t.Drv, backend.PlaceDrv+"("+t.Host.Name+")")
		drvs = append(drvs, drv)
		if t.Host.Build != "target" {
			localDrvs = append(localDrvs, drv)
		}
		roots = append(roots, closureRoot(t))
	}
	for k, g := range groups {
		id := batchID(len(g.targets) > 1, fmt.Sprintf("nix-eval-%d", k+1))
		for _, i := range g.targets {
			plans[i] = append(plans[i], backend.Step{Phase: backend.PhaseEval, On: backend.OnLocal, Argv: g.argv, Batch: id})
			if id != "" {
				plans[i] = append(plans[i], backend.Step{Phase: backend.PhaseEval, On: backend.OnLocal, Argv: b.alone(ts[i]).argv,
					When: "the batch failed: each host alone, so that only a host whose system does not evaluate fails"})
			}
		}
	}
	batch := len(ts) > 1
	outputs := b.opts.outputsArgv(drvs)
	realise := b.opts.realiseArgv(localDrvs)
	closures := b.opts.pathInfoArgv(roots)
	serve := b.opts.localServeArgv()
	// One string for every host: a copy per host would make the plan grow
	// with the square of the fleet.
	serveStdin := "query-valid-paths " + strings.Join(roots, " ") + " (every " + buildPoll.String() + " until the build has ended); " +
		"query-closure, query-path-infos of each system built, when its host goes on"
	for i, t := range ts {
		drv := orPlace(t.Drv, backend.PlaceDrv)
		out := orPlace(t.Out, backend.PlaceOut)
		goal := t.Host.Activation
		s := []backend.Step{{Phase: backend.PhaseEval, On: backend.OnLocal, Argv: outputs, Batch: batchID(batch, "nix-outputs"),
			When: "the .drv does not fix its out path (content-addressed)"}}
		if t.Host.Build != "target" {
			s = append(s, backend.Step{Phase: backend.PhaseBuild, On: backend.OnLocal, Argv: realise, Batch: batchID(len(localDrvs) > 1, "nix-realise")})
		}
		s = append(s,
			backend.Step{Phase: backend.PhaseBuild, On: backend.OnLocal, Argv: serve, Batch: batchID(batch, "nix-closures"),
				Stdin: serveStdin, Note: "goes on " + handOn(t)},
			backend.Step{Phase: backend.PhaseBuild, On: backend.OnLocal, Argv: closures, Batch: batchID(batch, "nix-path-info"),
				When: "the local nix-store --serve fails"},
			backend.Step{Phase: backend.PhaseConnect, On: backend.OnTarget, Root: true, Argv: stateServeArgv(goal, out, t.Host.Build != "target")})
		when := "the host does not run " + out + " for " + goal
		serveWhen := when
		if b.usesDaemon(t) {
			s = append(s, backend.Step{Phase: backend.PhaseCopy, On: backend.OnTarget, Root: true, Socket: daemonSocket,
				Stdin: daemonStdin(t.Host.Substitute), When: when + " and the host's nix daemon answers"})
			serveWhen = when + " and the host's nix daemon does not answer"
		}
		s = append(s, backend.Step{Phase: backend.PhaseCopy, On: backend.OnTarget, Root: true, Argv: serveArgv(), Continues: true,
			Stdin: queryStdin(t.Host.Substitute, t.Host.Build == "target") + "; add-to-store-nar " + backend.PlaceMissing +
				" (archives written by deploy); the session stays open, holding them, until the host's run has ended (a rollback included)", When: serveWhen})
		if t.Host.Build == "target" {
			s = append(s, backend.Step{Phase: backend.PhaseBuild, On: backend.OnTarget, Root: true, Argv: remoteRealiseArgv(drv), When: when})
		}
		if b.usesDaemon(t) {
			// After a copy through the daemon the waiting session
			// activates when told "go"; otherwise a session of its own.
			s = append(s,
				backend.Step{Phase: backend.PhaseActivate, On: backend.OnTarget, Root: true, Argv: sessionActivateArgv(out, goal), Stdin: "go; " + confirmStdin,
					When: when + " and the copy went through the host's nix daemon", Continues: true},
				backend.Step{Phase: backend.PhaseActivate, On: backend.OnTarget, Root: true, Argv: activateArgv(out, goal), Stdin: confirmStdin,
					When: when + " and the copy went through nix-store --serve"})
		} else {
			s = append(s, backend.Step{Phase: backend.PhaseActivate, On: backend.OnTarget, Root: true, Argv: activateArgv(out, goal), Stdin: confirmStdin, When: when})
		}
		for _, r := range rollbackSteps(goal, backend.PlaceActivationPID, out, backend.PlacePrevious, backend.PlacePreviousPath, backend.PlacePreviousRunning, backend.PlaceFailedGen) {
			when := "the activation failed or was interrupted after deploy answered its \"" + beginLine + "\""
			if r.when != "" {
				when += ", and " + r.when
			}
			s = append(s, backend.Step{Phase: backend.PhaseRollback, On: backend.OnTarget, Root: true, Argv: r.argv, When: when})
		}
		plans[i] = append(plans[i], s...)
	}
	return plans
}

// confirmStdin says in a plan what the deployer answers an activation.
const confirmStdin = confirmLine + " once it says " + beginLine + " (unless the run has stopped)"

// handOn says when a host goes on from the build (see BuildEach).
func handOn(t *backend.Target) string {
	if t.Host.Build == "target" {
		return "at once (it builds on the host; with --fail-fast when every build has ended)"
	}
	return "once its system has been built for " + handAfter.String() + ", or when the build has ended (with --fail-fast when every build has ended)"
}

// batchID names a batched step, or nothing when it serves one host.
func batchID(batched bool, id string) string {
	if batched {
		return id
	}
	return ""
}

// closureRoot is what a host needs the closure of: the system, or its
// derivation when the host builds it.
func closureRoot(t *backend.Target) string {
	if t.Host.Build == "target" {
		return orPlace(t.Drv, backend.PlaceDrv+"("+t.Host.Name+")")
	}
	return orPlace(t.Out, backend.PlaceOut+"("+t.Host.Name+")")
}

// begun is what an activation that began said (see activateScript and
// setProfileScript): its script's process number, the profile generation
// it sets (0 for test and dry-activate, which set none, or if it did not
// say) and whether it made that generation; and whether its process is
// known to have ended (it exited, with a status or a signal), or may
// still run (interrupted, the connection lost).
type begun struct {
	pid   int
	gen   int
	made  bool
	ended bool
}

// undo is what a rollback goes by: the host's state before the failed
// activation, and what the activation began to change.
type undo struct {
	prev backend.State
	// moved: the activation set another generation than prev's, or may
	// have (it did not say which).
	moved bool
	// made: the activation made that generation (one it reused was
	// there before, and stays).
	made bool
	// running: the activation's process may still run (see
	// backend.StopArgv).
	running bool
}

// rollbackStep is one command of a rollback; runs says whether it is
// needed, when says so in a plan ("" for always).
type rollbackStep struct {
	argv []string
	when string
	runs func(undo) bool
}

// rollbackSteps take a host back to what it ran and booted before a failed
// activation for goal: the profile back at generation prevGen (system
// prevProfile) under the profile's lock, so after an interrupted
// activation's own change to it; the generation the activation made
// (madeGen) deleted before the boot loader is written again, so that it
// lists it no more; the boot loader and the running system (prevCurrent)
// as they were.
func rollbackSteps(goal, pid, system, prevGen, prevProfile, prevCurrent, madeGen string) []rollbackStep {
	always := func(undo) bool { return true }
	moved := func(u undo) bool { return u.moved }
	// switch-to-configuration's command line names the system.
	stop := rollbackStep{argv: backend.StopArgv(pid, system), when: backend.StopWhen,
		runs: func(u undo) bool { return u.running }}
	switch goal {
	case "test":
		return []rollbackStep{stop, {argv: switchArgv(prevCurrent, "test"), runs: always}}
	case "switch", "boot":
	default:
		return nil // dry-activate changes nothing
	}
	set := "the activation set another generation"
	steps := []rollbackStep{
		stop,
		{argv: switchGenerationArgv(prevGen), when: set, runs: moved},
		{argv: deleteGenerationArgv(madeGen), when: "the activation made that generation (one it reused was there before)",
			runs: func(u undo) bool { return u.made }},
	}
	if goal == "boot" {
		return append(steps, rollbackStep{argv: switchArgv(prevProfile, "boot"), when: set, runs: moved})
	}
	other := "the host ran another system than the one it booted"
	return append(steps,
		rollbackStep{argv: switchArgv(prevProfile, "switch"), when: "the host ran the system it booted, or none",
			runs: func(u undo) bool { return u.prev.RunsBooted() }},
		rollbackStep{argv: switchArgv(prevProfile, "boot"), when: other + ", and " + set,
			runs: func(u undo) bool { return !u.prev.RunsBooted() && u.moved }},
		rollbackStep{argv: switchArgv(prevCurrent, "test"), when: other, runs: func(u undo) bool { return !u.prev.RunsBooted() }})
}

// Instantiate implements backend.Backend.
func (b *Backend) Instantiate(ctx context.Context, local hosts.Executor, ts []*backend.Target) []error {
	errs := make([]error, len(ts))
	for _, g := range b.groups(ts) {
		drvs, err := b.evaluate(ctx, local, g, ts)
		if err != nil && len(g.targets) > 1 && ctx.Err() == nil {
			b.evaluateEach(ctx, local, g, ts, errs, err)
			continue
		}
		for k, i := range g.targets {
			errs[i] = setDrv(ts[i], drvs, k, err)
		}
	}
	// The output paths are in the .drv files; nix is asked only for those
	// a file does not fix (content-addressed) or that cannot be read here.
	var drvs []string
	var idx []int
	for i, t := range ts {
		if errs[i] != nil {
			continue
		}
		if out, err := drvOutput(t.Drv); err == nil {
			t.Out = out
			continue
		}
		drvs = append(drvs, t.Drv)
		idx = append(idx, i)
	}
	if len(drvs) == 0 {
		return errs
	}
	outs, err := hosts.Lines(ctx, local, hosts.Cmd{Argv: b.opts.outputsArgv(drvs)})
	for k, i := range idx {
		switch {
		case err != nil:
			errs[i] = err
		case len(outs) != len(drvs):
			errs[i] = fmt.Errorf("query outputs: got %d paths for %d derivations", len(outs), len(drvs))
		default:
			ts[i].Out = outs[k]
		}
	}
	return errs
}

// setDrv gives t the k-th of drvs, what one evaluation returned, or
// returns why it cannot.
func setDrv(t *backend.Target, drvs []string, k int, err error) error {
	switch {
	case err != nil:
		return err
	case k >= len(drvs) || !strings.HasSuffix(drvs[k], ".drv"):
		return fmt.Errorf("evaluate %q: no derivation in nix's output", t.Host.Name)
	}
	t.Drv = drvs[k]
	return nil
}

// evaluateEach evaluates each of g's targets on its own after the batch
// failed with batchErr: nix stops at the first attribute that fails, so
// the batch's error may be one host's, and only that host should fail
// with it. At most evalEachAtOnce run at once (a NixOS evaluation takes a
// GB or two). A mistake every host shares would cost one evaluation per
// host to say the same thing: once the first sharedAfter hosts have all
// failed with the batch's own message, the rest are given it unevaluated.
func (b *Backend) evaluateEach(ctx context.Context, local hosts.Executor, g *evalGroup, ts []*backend.Target, errs []error, batchErr error) {
	var mu sync.Mutex
	done, same := 0, 0
	shared := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return done >= sharedAfter && same == done
	}
	sem := make(chan struct{}, min(runtime.GOMAXPROCS(0), evalEachAtOnce))
	var wg sync.WaitGroup
	for _, i := range g.targets {
		sem <- struct{}{}
		if shared() {
			<-sem
			errs[i] = fmt.Errorf("%s (not evaluated alone: the first %d hosts evaluated alone all failed with this)", nixSaid(batchErr), sharedAfter)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			one := ts[i : i+1]
			drvs, err := b.evaluate(ctx, local, b.alone(ts[i]), one)
			errs[i] = setDrv(ts[i], drvs, 0, err)
			mu.Lock()
			done++
			if err != nil && nixSaid(err) == nixSaid(batchErr) {
				same++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
}

const (
	evalEachAtOnce = 4
	sharedAfter    = 4
)

// nixSaid is what a failed command said (its standard error), without the
// command line, which names the attributes it evaluated.
func nixSaid(err error) string {
	if ee, ok := errors.AsType[*hosts.ExitError](err); ok && ee.Stderr != "" {
		return ee.Stderr
	}
	return err.Error()
}

// evaluate runs one instantiation process and returns the .drv of each of
// its targets, in order.
func (b *Backend) evaluate(ctx context.Context, local hosts.Executor, g *evalGroup, ts []*backend.Target) ([]string, error) {
	if !g.flake {
		return hosts.Lines(ctx, local, hosts.Cmd{Argv: g.argv})
	}
	out, err := hosts.Output(ctx, local, hosts.Cmd{Argv: g.argv})
	if err != nil {
		return nil, err
	}
	var byName map[string]string
	if err := json.Unmarshal([]byte(out), &byName); err != nil {
		return nil, fmt.Errorf("evaluate flake: %w", err)
	}
	var drvs []string
	for _, i := range g.targets {
		_, name, _ := strings.Cut(ts[i].Host.Nix.Flake, "#")
		drvs = append(drvs, byName[name])
	}
	return drvs, nil
}

// Build implements backend.Backend: BuildEach, waited for.
func (b *Backend) Build(ctx context.Context, local hosts.Executor, ts []*backend.Target) []error {
	errs := make([]error, len(ts))
	b.BuildEach(ctx, local, ts, func(i int, err error) { errs[i] = err })
	return errs
}

const (
	// buildPoll is how often BuildEach asks which systems are built yet.
	buildPoll = 250 * time.Millisecond
	// handAfter is how long a built system waits for the rest of its
	// batch before its host goes on alone (see BuildEach).
	handAfter = 5 * time.Second
)

// BuildEach implements backend.EachBuilder. It runs one realise over every
// locally built system, so shared derivations are built once, and keeps GC
// roots for them. Meanwhile a local nix-store --serve answers, every
// buildPoll, which of the systems are valid yet, and gives their closures
// with what the store records of each path (what nix path-info would).
//
// A host is handed on when its system is built and the batch has ended,
// or once its system has been built for handAfter while the batch goes on:
// one slow system does not hold back the others' copies, but a batch that
// ends within seconds is not slowed by copies competing with it for the
// deployer's CPU and disk (and, on a local test fleet, the hosts'). A host
// that builds its own system needs only the closure of its derivation and
// is handed on at once. If the session fails, whatever is left is handed
// on when the realise has ended, with one nix path-info for all.
func (b *Backend) BuildEach(ctx context.Context, local hosts.Executor, ts []*backend.Target, ready func(i int, err error)) {
	if len(ts) == 0 {
		return
	}
	var drvs []string
	for _, t := range ts {
		if t.Host.Build != "target" {
			drvs = append(drvs, t.Drv)
		}
	}
	var stderr bytes.Buffer
	realised := make(chan error, 1)
	if len(drvs) == 0 {
		realised <- nil
	} else {
		go func() {
			realised <- local.Run(ctx, hosts.Cmd{Argv: b.opts.realiseArgv(drvs), Stderr: &stderr})
		}()
	}

	w := &buildWatch{b: b, ts: ts, ready: ready, validSince: map[int]time.Time{}}
	for i := range ts {
		w.pending = append(w.pending, i)
	}
	s := startSession(ctx, local, b.opts.localServeArgv())
	defer s.wait()
	watching := s.hello() == nil
	tick := time.NewTicker(buildPoll)
	defer tick.Stop()
	var realiseErr error
	for over := false; ; {
		if watching && w.poll(s, over) != nil {
			watching = false
		}
		if over || len(w.pending) == 0 && len(drvs) == 0 {
			break
		}
		select {
		case realiseErr = <-realised:
			over = true
		case <-tick.C:
		}
	}
	if len(w.pending) == 0 {
		return
	}
	// What is still pending after the last poll of a working session is
	// known not to be built.
	b.finishBuild(ctx, local, ts, w.pending, watching, realiseErr, stderr.String(), ready)
}

// finishBuild hands on, after the realise has ended, the targets in
// pending: an error for those whose system was not built; the others with
// their GC roots and closures, from one nix path-info. With unbuilt, the
// caller knows that no locally built system in pending is valid.
func (b *Backend) finishBuild(ctx context.Context, local hosts.Executor, ts []*backend.Target, pending []int, unbuilt bool, realiseErr error, stderr string, ready func(int, error)) {
	errs := make([]error, len(ts))
	var built []int
	for _, i := range pending {
		if ts[i].Host.Build != "target" {
			built = append(built, i)
		}
	}
	if realiseErr != nil && ctx.Err() != nil {
		for _, i := range built {
			errs[i] = realiseErr
		}
	} else if realiseErr != nil {
		// With --keep-going the others are built: find out which are not.
		var outs []string
		for _, i := range built {
			outs = append(outs, ts[i].Out)
		}
		invalid := outs
		if !unbuilt {
			if v, err := hosts.Lines(ctx, local, hosts.Cmd{Argv: invalidArgv(), Stdin: strings.NewReader(lines(outs))}); err == nil {
				invalid = v
			}
		}
		bad := map[string]bool{}
		for _, p := range invalid {
			bad[p] = true
		}
		blocks, inputs := errorBlocks(stderr), drvInputs{}
		for _, i := range built {
			if bad[ts[i].Out] {
				errs[i] = fmt.Errorf("build %s: %w", ts[i].Drv, buildError(realiseErr, blocks, inputs, ts[i].Drv))
			}
		}
	}
	for _, i := range built {
		if errs[i] == nil {
			errs[i] = b.addRoot(ts[i])
		}
	}
	b.closures(ctx, local, ts, pending, errs)
	for _, i := range pending {
		ready(i, errs[i])
	}
}

// buildWatch is BuildEach's view of which targets are built.
type buildWatch struct {
	b     *Backend
	ts    []*backend.Target
	ready func(int, error)
	// pending are the targets not handed on yet; validSince says since
	// when those known to be built are.
	pending    []int
	validSince map[int]time.Time
}

// poll asks s which pending closure roots are valid and hands on those
// that are due (all of them once the batch is over), with their closures.
func (w *buildWatch) poll(s *serveSession, over bool) error {
	now := time.Now()
	var ask []string
	for _, i := range w.pending {
		if _, ok := w.validSince[i]; !ok {
			ask = append(ask, closureRoot(w.ts[i]))
		}
	}
	if len(ask) > 0 {
		valid, err := s.queryValid(ask, false, false)
		if err != nil {
			return err
		}
		for _, i := range w.pending {
			if _, ok := w.validSince[i]; !ok && valid[closureRoot(w.ts[i])] {
				w.validSince[i] = now
			}
		}
	}
	var due, left []int
	for _, i := range w.pending {
		since, ok := w.validSince[i]
		if ok && (over || w.ts[i].Host.Build == "target" || now.Sub(since) >= handAfter) {
			due = append(due, i)
		} else {
			left = append(left, i)
		}
	}
	if len(due) == 0 {
		return nil
	}
	if err := w.learn(s, due); err != nil {
		return err
	}
	for _, i := range due {
		t := w.ts[i]
		var err error
		if t.Host.Build != "target" {
			err = w.b.addRoot(t)
		}
		if err == nil {
			t.Closure = w.b.closureOf(closureRoot(t))
			w.b.share(t)
		}
		w.ready(i, err)
	}
	w.pending = left
	return nil
}

// learn asks s for the closures of the due targets and records what the
// store says of the paths not known yet.
func (w *buildWatch) learn(s *serveSession, due []int) error {
	roots := make([]string, len(due))
	for k, i := range due {
		roots[k] = closureRoot(w.ts[i])
	}
	closure, err := s.queryClosure(roots)
	if err != nil {
		return err
	}
	var unknown []string
	w.b.mu.Lock()
	for _, p := range closure {
		if _, ok := w.b.info[p]; !ok {
			unknown = append(unknown, p)
		}
	}
	w.b.mu.Unlock()
	info, err := s.queryPathInfos(unknown)
	if err != nil {
		return err
	}
	for _, p := range unknown {
		if in, ok := info[p]; !ok || in.narSize == 0 {
			return fmt.Errorf("the local store has no record of %s", p)
		}
	}
	w.b.remember(info)
	return nil
}

// closureOf cuts root's closure, in dependency order, from what info
// records.
func (b *Backend) closureOf(root string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub := map[string]pathInfo{}
	stack := []string{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, seen := sub[p]; seen {
			continue
		}
		sub[p] = b.info[p]
		stack = append(stack, b.info[p].references...)
	}
	return dependencyOrder(sub)
}

// closures sets the Closure of the targets in idx without an error, with
// one process for all of them: nix path-info over the union of the
// closures gives every path's hash, size and references, from which each
// target's own closure is cut, in dependency order. A failure leaves
// Closure unset; Push then asks per host.
func (b *Backend) closures(ctx context.Context, local hosts.Executor, ts []*backend.Target, idx []int, errs []error) {
	var roots []string
	for _, i := range idx {
		if errs[i] == nil {
			roots = append(roots, closureRoot(ts[i]))
		}
	}
	if len(roots) == 0 {
		return
	}
	out, err := hosts.Output(ctx, local, hosts.Cmd{Argv: b.opts.pathInfoArgv(roots)})
	if err != nil {
		return
	}
	info, err := parsePathInfo(out)
	if err != nil {
		return
	}
	for _, r := range roots {
		if _, ok := info[r]; !ok {
			return
		}
	}
	b.remember(info)
	for _, i := range idx {
		if errs[i] == nil {
			ts[i].Closure = b.closureOf(closureRoot(ts[i]))
			b.share(ts[i])
		}
	}
}

// parseDumpDB reads nix-store --dump-db output: per path its NAR hash
// (base16), NAR size, deriver and references.
func parseDumpDB(out string) (map[string]pathInfo, error) {
	lines := strings.Split(out, "\n")
	info := map[string]pathInfo{}
	for i := 0; i < len(lines); {
		if strings.TrimSpace(lines[i]) == "" {
			i++
			continue
		}
		if i+4 >= len(lines) {
			return nil, fmt.Errorf("parse dump-db: truncated entry for %q", lines[i])
		}
		path := lines[i]
		size, err := strconv.ParseInt(strings.TrimSpace(lines[i+2]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse dump-db: bad NAR size for %q", path)
		}
		n, err := strconv.Atoi(strings.TrimSpace(lines[i+4]))
		if err != nil || n < 0 || i+5+n > len(lines) {
			return nil, fmt.Errorf("parse dump-db: bad reference count for %q", path)
		}
		pi := pathInfo{narSize: size, deriver: lines[i+3], references: append([]string{}, lines[i+5:i+5+n]...)}
		if h := strings.TrimSpace(lines[i+1]); h != "" {
			pi.narHash = "sha256:" + h
		}
		info[path] = pi
		i += 5 + n
	}
	return info, nil
}

// buildError picks out of the realise's errors (errorBlocks of its
// standard error, nix-store --no-build-output) those that concern drv: that
// name drv or a derivation its closure has (read through inputs). So a
// host whose system was not built because a dependency failed shows that
// dependency's log too.
func buildError(err error, blocks []string, inputs drvInputs, drv string) error {
	closure := inputs.closure(drv)
	var mine []string
	for _, block := range blocks {
		if strings.HasPrefix(block, "error: build of '") {
			continue // --keep-going's last word: every failed one, named
		}
		for _, d := range drvPath.FindAllString(block, -1) {
			if closure[d] {
				mine = append(mine, block)
				break
			}
		}
	}
	if len(mine) == 0 {
		return err
	}
	if len(mine) > 5 {
		mine = mine[len(mine)-5:]
	}
	return errors.New(strings.Join(mine, "\n"))
}

// drvPath matches a derivation's store path.
var drvPath = regexp.MustCompile(`/nix/store/[0-9a-z]{32}-[^'"\s]+\.drv`)

// errorBlocks returns nix's errors in stderr: each line that starts with
// "error:", with the indented lines that follow it (a failed builder's last
// log lines).
func errorBlocks(stderr string) []string {
	var blocks []string
	var cur []string
	flush := func() {
		if cur != nil {
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, l := range strings.Split(stderr, "\n") {
		switch {
		case strings.HasPrefix(l, "error:"):
			flush()
			cur = []string{l}
		case cur != nil && strings.HasPrefix(l, " ") && strings.TrimSpace(l) != "":
			cur = append(cur, strings.TrimSpace(l))
		default:
			flush()
		}
	}
	flush()
	return blocks
}

// drvInputs are the derivation paths each .drv file read so far names,
// read once however many hosts' closures share it.
type drvInputs map[string][]string

// closure returns drv and the derivations it depends on, read from the
// .drv files; what cannot be read is left out.
func (in drvInputs) closure(drv string) map[string]bool {
	seen := map[string]bool{drv: true}
	for todo := []string{drv}; len(todo) > 0; {
		d := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		deps, ok := in[d]
		if !ok {
			if data, err := os.ReadFile(d); err == nil {
				deps = drvPath.FindAllString(string(data), -1)
			}
			in[d] = deps
		}
		for _, dep := range deps {
			if !seen[dep] {
				seen[dep] = true
				todo = append(todo, dep)
			}
		}
	}
	return seen
}

// addRoot keeps the built system alive across garbage collections:
// GCROOTS/DEPLOYMENT/HOST points at it.
func (b *Backend) addRoot(t *backend.Target) error {
	dir := b.opts.GCRootDir
	if dir == "" {
		dir = "/nix/var/nix/gcroots/cuedeploy"
		if os.Geteuid() != 0 {
			dir = filepath.Join("/nix/var/nix/gcroots/per-user", os.Getenv("USER"), "cuedeploy")
		}
	}
	dep := t.Deployment
	if dep == "" {
		dep = "default"
	}
	dir = filepath.Join(dir, dep)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("add gc root: %w", err)
	}
	link := filepath.Join(dir, t.Host.Name)
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(t.Out, tmp); err != nil {
		return fmt.Errorf("add gc root: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("add gc root: %w", err)
	}
	return nil
}

// remember keeps what the local store records of paths.
func (b *Backend) remember(info map[string]pathInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	maps.Copy(b.info, info)
}

// infoOf returns the local store's records of paths, asking the store
// (one process) for those closures did not see.
func (b *Backend) infoOf(ctx context.Context, local hosts.Executor, paths []string) (map[string]pathInfo, error) {
	m := make(map[string]pathInfo, len(paths))
	var unknown []string
	b.mu.Lock()
	for _, p := range paths {
		if in, ok := b.info[p]; ok {
			m[p] = in
		} else {
			unknown = append(unknown, p)
		}
	}
	b.mu.Unlock()
	if len(unknown) == 0 {
		return m, nil
	}
	db, err := hosts.Output(ctx, local, hosts.Cmd{Argv: b.opts.dumpDBArgv(unknown)})
	if err != nil {
		return nil, err
	}
	info, err := parseDumpDB(db)
	if err != nil {
		return nil, err
	}
	for _, p := range unknown {
		in, ok := info[p]
		if !ok {
			return nil, fmt.Errorf("the local store has no record of %s", p)
		}
		if in.narHash == "" || in.narSize == 0 {
			return nil, fmt.Errorf("the local store records no NAR hash or size for %s", p)
		}
		m[p] = in
	}
	b.remember(info)
	return m, nil
}

// State implements backend.Backend. Unless the host already has the
// system for its goal, the session stays open, waiting (and holding
// nothing) until Push tells it how the copy goes; State does not need the
// build, so it may run while the build does.
func (b *Backend) State(ctx context.Context, remote hosts.Executor, t *backend.Target) (backend.State, error) {
	if oc := b.release(t); oc != nil {
		oc.end() // a session an earlier State left and no Push used
	}
	s := startDetachable(ctx, remote, stateServeArgv(t.Host.Activation, t.Out, t.Host.Build != "target"))
	var lines [3]string
	for i := range lines {
		l, err := s.line()
		if err != nil {
			s.wait()
			return backend.State{}, fmt.Errorf("read state: %w", err)
		}
		lines[i] = l
	}
	st := stateOf(lines)
	l, err := s.line()
	if err == io.EOF {
		return st, nil // the host already has the system for the goal
	}
	if err != nil {
		return backend.State{}, fmt.Errorf("read state: %w", err)
	}
	if l != "wait" {
		s.wait()
		return backend.State{}, fmt.Errorf("read state: unexpected line %q", l)
	}
	oc := &openCopy{s: s}
	if isStorePath(st.Current) && !st.RunsBooted() {
		// In no generation, only /run/current-system roots it: a failed
		// switch repoints that, and a rollback activates it again.
		oc.holds = []string{st.Current}
	}
	if ud, ok := remote.(unixDialer); ok && b.usesDaemon(t) {
		// Where the host's daemon answers, it takes the copy; where not,
		// nix-store --serve does.
		if dc, err := openDaemon(ctx, ud); err == nil {
			oc.daemon = dc
		}
	}
	b.keep(t, oc)
	return st, nil
}

// isStorePath reports whether p names a path right under /nix/store (the
// host's store, which the scripts assume); a system read through
// symlinks elsewhere is not one the daemon takes.
func isStorePath(p string) bool {
	name, ok := strings.CutPrefix(p, "/nix/store/")
	return ok && name != "" && !strings.Contains(name, "/")
}

// beside runs fn, which opens a session on t's host besides the copy's
// held one. A host that takes one session at a time (sshd's MaxSessions)
// refuses it; then the held session ends, letting go of its roots, and fn
// runs again.
func (b *Backend) beside(t *backend.Target, fn func() error) error {
	err := fn()
	if !errors.Is(err, hosts.ErrSessionRefused) {
		return err
	}
	oc := b.take(t, true)
	if oc == nil {
		return err
	}
	oc.end()
	return fn()
}

// keep leaves t's session open for the next step; the caller has
// released any earlier one.
func (b *Backend) keep(t *backend.Target, oc *openCopy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open[t] = oc
}

// take is release for t's session only if it is held (held) or only if
// it is not (!held).
func (b *Backend) take(t *backend.Target, held bool) *openCopy {
	b.mu.Lock()
	defer b.mu.Unlock()
	oc := b.open[t]
	if oc == nil || oc.held != held {
		return nil
	}
	delete(b.open, t)
	return oc
}

// release takes t's open session out of the backend's keeping, if any.
func (b *Backend) release(t *backend.Target) *openCopy {
	b.mu.Lock()
	oc := b.open[t]
	delete(b.open, t)
	b.mu.Unlock()
	return oc
}

// missing greets the host's nix-store --serve and returns which of
// closure it lacks, in closure order, holding closure and holds as
// temporary roots for as long as the session lasts. The holds go in a
// query of their own (not substituted, not copied), in the same round
// trip.
func (s *serveSession) missing(closure, holds []string, substitute bool) ([]string, error) {
	err := s.hello()
	if err == nil {
		if len(holds) > 0 {
			s.askValid(holds, true, false)
		}
		s.askValid(closure, true, substitute)
		err = s.flush()
	}
	if err == nil && len(holds) > 0 {
		_, err = s.readValid()
	}
	var valid map[string]bool
	if err == nil {
		valid, err = s.readValid()
	}
	if err != nil {
		s.wait()
		return nil, err
	}
	var missing []string
	for _, p := range closure {
		if !valid[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// stateOf reads the state script's three lines.
func stateOf(lines [3]string) backend.State {
	return backend.State{Current: lines[0], Profile: lines[2], Generation: backend.Generation(lines[1])}
}

// Push implements backend.Backend.
func (b *Backend) Push(ctx context.Context, local, remote hosts.Executor, t *backend.Target) (backend.CopyStats, error) {
	root := t.Out
	if t.Host.Build == "target" {
		root = t.Drv
	}
	stats, err := b.copyClosure(ctx, local, remote, t, root)
	if err != nil {
		return stats, &backend.PhaseError{Phase: backend.PhaseCopy, Err: err}
	}
	if t.Host.Build == "target" {
		var outs []string
		err := b.beside(t, func() (err error) {
			outs, err = hosts.Lines(ctx, remote, hosts.Cmd{Argv: remoteRealiseArgv(t.Drv), Privileged: true})
			return err
		})
		if err != nil {
			return stats, &backend.PhaseError{Phase: backend.PhaseBuild, Err: err}
		}
		if len(outs) == 0 || outs[len(outs)-1] != t.Out {
			return stats, &backend.PhaseError{Phase: backend.PhaseBuild, Err: fmt.Errorf("realise %s on %s: built %q, want %q", t.Drv, remote.Where(), outs, t.Out)}
		}
	}
	return stats, nil
}

// copyClosure sends the part of root's closure that the host lacks, over
// the host's nix-store --serve: the session State opened, or a new one
// that first asks what is missing.
func (b *Backend) copyClosure(ctx context.Context, local, remote hosts.Executor, t *backend.Target, root string) (backend.CopyStats, error) {
	var stats backend.CopyStats
	oc := b.release(t)
	if oc != nil && oc.held {
		oc.end() // an earlier copy's: this one asks again
		oc = nil
	}
	closure := t.Closure
	if closure != nil {
		defer b.unshare(t)
	} else {
		var err error
		if closure, err = hosts.Lines(ctx, local, hosts.Cmd{Argv: b.opts.requisitesArgv([]string{root})}); err != nil {
			if oc != nil {
				oc.end()
			}
			return stats, err
		}
	}
	if oc != nil && oc.daemon != nil {
		// Through the host's daemon; the session waits until Activate
		// says "go". If the daemon fails, nix-store --serve in the same
		// session.
		// The daemon connection does not watch ctx; closing it stops the
		// copy when the run is stopped.
		dc := oc.daemon
		stop := context.AfterFunc(ctx, func() { dc.Close() })
		missing, err := b.send(ctx, local, dc, closure, oc.holds, t.Host.Substitute, &stats)
		stop()
		if err == nil {
			stats.Paths = len(missing)
			oc.pushed = true
			b.keep(t, oc)
			return stats, nil
		}
		if ctx.Err() != nil {
			oc.end()
			return stats, fmt.Errorf("%w (stopped)", err)
		}
		oc.dropDaemon()
	}
	if oc == nil {
		oc = &openCopy{s: startDetachable(ctx, remote, serveArgv())}
	} else if err := oc.s.expect("serve", "serve"); err != nil {
		return stats, err
	}
	s := oc.s
	s.shows = serveArgv()
	holds := oc.holds
	if root != t.Out {
		// Built on the host next: held from before it exists.
		holds = append(slices.Clip(holds), t.Out)
	}
	missing, err := b.send(ctx, local, s, closure, holds, t.Host.Substitute, &stats)
	if err != nil {
		s.wait()
		return stats, err
	}
	// The activation is a session of its own. This one stays, its
	// nix-store --serve holding the closure as temporary roots, until the
	// host's run has ended (Finish), a rollback included: from now on
	// not even the run's end (an interrupt, the host's timeout, which a
	// rollback follows) stops it.
	s.detach()
	oc.held = true
	b.keep(t, oc)
	stats.Paths = len(missing)
	return stats, nil
}

// hostStore is a way into a host's store: its nix daemon or its
// nix-store --serve.
type hostStore interface {
	// missing returns which of closure the host lacks, in closure order,
	// holding the rest, and holds, which are not copied, as temporary GC
	// roots.
	missing(closure, holds []string, substitute bool) ([]string, error)
	// addPaths sends paths, their archives from nars where it has them.
	addPaths(paths []string, info map[string]pathInfo, nars *narCache) error
	// sentBytes is what has been written to the host so far.
	sentBytes() int64
}

// send copies the paths of closure the host lacks through hs and returns
// them; stats counts the bytes.
func (b *Backend) send(ctx context.Context, local hosts.Executor, hs hostStore, closure, holds []string, substitute bool, stats *backend.CopyStats) ([]string, error) {
	missing, err := hs.missing(closure, holds, substitute)
	if err != nil {
		return nil, fmt.Errorf("query the host's store: %w", err)
	}
	info, err := b.infoOf(ctx, local, missing)
	if err != nil {
		return nil, err
	}
	before := hs.sentBytes()
	err = hs.addPaths(missing, info, b.nars)
	stats.Bytes += hs.sentBytes() - before
	if err != nil {
		return nil, fmt.Errorf("add paths: %w", err)
	}
	return missing, nil
}

// usesDaemon reports whether t's copy tries the host's nix daemon first:
// for a system built here, as root (sudo cannot reach the daemon as root).
func (b *Backend) usesDaemon(t *backend.Target) bool {
	return !b.opts.NoDaemon && t.Host.Build != "target" && (t.Host.SSH.User == "" || t.Host.SSH.User == "root")
}

// daemonStdin names what a copy through the daemon sends: the closure as
// temporary roots, the query, the missing paths.
func daemonStdin(substitute bool) string {
	q := "query-valid-paths " + backend.PlaceClosure
	if substitute {
		q = "query-valid-paths --substitute " + backend.PlaceClosure
	}
	return "add-temp-root " + backend.PlaceClosure + " " + backend.PlacePreviousRunning + " (if the host runs one in no generation); " + q + "; add-to-store-nar " + backend.PlaceMissing +
		" (archives written by deploy); the connection stays open, holding them, until the host's run has ended (a rollback included)"
}

// Activate implements backend.Backend.
func (b *Backend) Activate(ctx context.Context, remote hosts.Executor, t *backend.Target, goal string) error {
	log := &hosts.OutputLog{}
	var said begun
	var err error
	oc := b.take(t, false) // a held one keeps its roots until Finish
	if oc != nil && oc.pushed && goal == t.Host.Activation {
		// The session Push left waits for "go" (the copy went through
		// the daemon); it answers "activate" and activates.
		oc.s.stderrTo(log)
		if err = oc.s.expect("go", "activate"); err != nil {
			oc.end()
			err = fmt.Errorf("%w: %w", backend.ErrActivationNotStarted, err)
		} else {
			oc.s.shows = switchArgv(t.Out, t.Host.Activation)
			untie := oc.s.tie(ctx) // started with State's context
			said, err = readActivation(ctx, oc.s, log, setsProfile(goal))
			untie()
			// The daemon connection holds its roots until Finish,
			// through a rollback; the session has ended.
			oc.pushed = false
			b.keep(t, oc)
		}
	} else {
		if oc != nil {
			oc.end()
		}
		err = b.beside(t, func() (err error) {
			s := startSession(ctx, remote, activateArgv(t.Out, goal))
			s.shows = switchArgv(t.Out, goal) // in errors, as after "go"
			s.stderrTo(log)
			said, err = readActivation(ctx, s, log, setsProfile(goal))
			return err
		})
	}
	t.Output = log.String()
	if err != nil {
		if !errors.Is(err, backend.ErrActivationNotStarted) {
			b.mu.Lock()
			b.begun[t] = said
			b.mu.Unlock()
		}
		return &backend.PhaseError{Phase: backend.PhaseActivate, Err: err}
	}
	return nil
}

// readActivation reads an activation's session: the line beginLine, which
// the script prints before it changes anything; then, unless ctx is done,
// it answers confirmLine; with profile, it reads the generation line (see
// setProfileScript); then the activation's own output into log. It
// returns what the generation line said. An activation that was not
// answered failed with the host as it was
// (backend.ErrActivationNotStarted).
func readActivation(ctx context.Context, s *serveSession, log *hosts.OutputLog, profile bool) (begun, error) {
	var said begun
	l, err := s.line()
	if err == nil {
		said.pid, err = backend.BeginPID(l)
	}
	if err == nil {
		if afterBegin != nil {
			afterBegin()
		}
		err = ctx.Err()
	}
	if err == nil {
		err = s.say(confirmLine)
	}
	if err != nil {
		werr := s.wait()
		return begun{}, fmt.Errorf("%w: %w", backend.ErrActivationNotStarted, cmp.Or(werr, err))
	}
	if profile {
		// Unread (the session ended first), the generation stays 0:
		// unknown.
		if l, err := s.line(); err == nil {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == generationLine {
				said.gen, _ = strconv.Atoi(f[1])
				said.made = len(f) > 2 && f[2] == "new"
			} else {
				log.Write([]byte(l + "\n"))
			}
		}
	}
	io.Copy(log, s.out)
	err = s.wait()
	said.ended = hosts.Ended(err)
	return said, err
}

// afterBegin, when set (by tests), runs between an activation's begin line
// and the deployer's answer.
var afterBegin func()

// Rollback implements backend.Backend.
func (b *Backend) Rollback(ctx context.Context, remote hosts.Executor, t *backend.Target, goal string, prev backend.State) error {
	said, ok := b.takeBegun(t)
	switch goal {
	case "dry-activate":
		return nil
	case "test":
		if prev.Current == "" {
			return errors.New("no system was running before: nothing to roll back to")
		}
	default:
		if prev.Generation == 0 || prev.Profile == "" {
			return errors.New("the host had no previous generation: nothing to roll back to")
		}
	}
	u := undo{prev: prev, moved: !ok || said.gen != prev.Generation, made: ok && said.made, running: ok && said.pid > 0 && !said.ended}
	for _, r := range rollbackSteps(goal, strconv.Itoa(said.pid), t.Out, strconv.Itoa(prev.Generation), prev.Profile, prev.Current, strconv.Itoa(said.gen)) {
		if !r.runs(u) {
			continue
		}
		if err := b.beside(t, func() error { return remote.Run(ctx, hosts.Cmd{Argv: r.argv, Privileged: true}) }); err != nil {
			return err
		}
	}
	return nil
}
