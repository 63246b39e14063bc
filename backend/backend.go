// Package backend is the contract between the runner and the system kinds
// (Nix, Guix): what a backend must plan and do for a host, in which phases.
//
// A backend is two things kept in step: pure argv planners, which `deploy
// eval` prints, and the methods that run exactly those argv through the
// hosts.Executor seam. Both are built from the same argv functions, so the
// dry run cannot drift from what a deploy does.
package backend

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// Phases of a host's pipeline, in order.
const (
	PhaseEval     = "eval"
	PhaseConnect  = "connect"
	PhaseBuild    = "build"
	PhaseCopy     = "copy"
	PhaseActivate = "activate"
	PhaseRollback = "rollback"
	PhaseDone     = "done"
)

// Where a step runs.
const (
	OnLocal  = "local"
	OnTarget = "target"
)

// Placeholders stand in plans for values a deploy learns as it runs.
const (
	PlaceDrv          = "<drv>"           // the system's derivation
	PlaceOut          = "<system>"        // the system's store path
	PlaceMissing      = "<missing-paths>" // store paths the host lacks
	PlaceClosure      = "<closure>"       // every store path the system needs
	PlacePrevious     = "<previous-generation>"
	PlacePreviousPath = "<previous-system>"
	// PlacePreviousRunning is the system the host ran before, where it
	// differs from the one it booted (in the copy's temporary roots and a
	// rollback), or, for goal test, the one it ran.
	PlacePreviousRunning = "<previous-running-system>"
	PlaceFailedGen       = "<failed-generation>"
	// PlaceActivationPID is the process number an activation's script
	// gave when it began.
	PlaceActivationPID = "<activation-process>"
)

// Step is one command of a plan.
type Step struct {
	Phase string `json:"phase"`
	// On is "local" (the deployer) or "target" (the host, over SSH).
	On string `json:"on"`
	// Argv is the exact command. Values not known before the run are
	// placeholders (see Place*) unless the plan was instantiated.
	Argv []string `json:"argv,omitempty"`
	// StdinFrom, when set, is a local command whose output is streamed to
	// this step's standard input over the host's connection.
	StdinFrom []string `json:"stdinFrom,omitempty"`
	// Stdin, when set, names the data written to the step's standard
	// input: items one per line ("<closure>"), or the protocol messages a
	// process such as nix-store --serve receives.
	Stdin string `json:"stdin,omitempty"`
	// Socket, instead of Argv, is a Unix socket on the host that the step
	// talks to through the host's connection (sshd forwards it; no command
	// runs). Stdin names what is sent.
	Socket string `json:"socket,omitempty"`
	// Root is true for a target command that runs as root (through sudo when
	// the SSH user is not root).
	Root bool `json:"root,omitempty"`
	// When says under which condition the step runs, for steps that do not
	// always run ("missing paths", "activation failed", ...).
	When string `json:"when,omitempty"`
	// Note says what a step means for this host in particular, where the
	// step itself is shared (a batch): when the host goes on from it.
	Note string `json:"note,omitempty"`
	// Continues is true for a step that is more input to the process the
	// previous target step started (the same session), not a new command.
	Continues bool `json:"continues,omitempty"`
	// Batch, when set, names the one process that serves several hosts
	// ("nix-realise"); every host's plan holds a step with the same Batch
	// and the same Argv, which lists all of them.
	Batch string `json:"batch,omitempty"`
}

// Target is one selected host in a run and what the run has learned of it.
type Target struct {
	Host *schema.Host
	// Deployment is the deployment's name (GC roots carry it).
	Deployment string
	// Drv is the system's derivation, set by Instantiate.
	Drv string
	// Out is the system's store path, set by Instantiate.
	Out string
	// Closure, when a backend knows it before connecting (Nix sets it in
	// Build), is every store path Push may send, dependencies first.
	Closure []string
	// Output is what the activation printed, standard output and error as
	// they came (its last 64 KiB), set by Activate: for dry-activate, what
	// would change.
	Output string
}

// State is what a host runs and boots.
type State struct {
	// Current is the system running now, or "".
	Current string `json:"current,omitempty"`
	// Profile is the system the profile points at (the one that boots), or "".
	Profile string `json:"profile,omitempty"`
	// Generation is the profile's current generation number, or 0 if none.
	Generation int `json:"generation,omitempty"`
}

// RunsBooted reports whether a host in state s runs the system its profile
// points at (or runs none).
func (s State) RunsBooted() bool { return s.Current == "" || s.Current == s.Profile }

// Reached reports whether a host in state s already has out for goal: no
// copy and no activation is needed.
func (s State) Reached(goal, out string) bool {
	switch goal {
	case "switch":
		return s.Current == out && s.Profile == out
	case "boot":
		return s.Profile == out
	case "test":
		return s.Current == out
	}
	return false // dry-activate always runs: it reports what would change
}

// CopyStats tells what a copy sent.
type CopyStats struct {
	Paths int   `json:"paths"` // store paths sent
	Bytes int64 `json:"bytes"` // bytes streamed to the host
}

// FieldError is a host setting a backend cannot honour. Path is relative to
// the host ("activation", "guix.channels").
type FieldError struct {
	Path    string
	Message string
}

// EachBuilder is a Backend whose batched build can hand a target on once
// its own system is built, while the rest still build.
type EachBuilder interface {
	// BuildEach does what Build does and calls ready(i, err) once for
	// every target i: when the backend hands i on (its system built, or
	// its build failed), which may be before the batch has ended. It
	// returns when the batch has ended and every target has been handed
	// on. ready may be called from several goroutines, never twice for
	// one target.
	BuildEach(ctx context.Context, local hosts.Executor, ts []*Target, ready func(i int, err error))
}

// Finisher is a Backend that wants to know when a target's run has ended,
// whatever its result, to let go of what it keeps for it.
type Finisher interface {
	Finish(t *Target)
}

// Backend is one system kind. Every method that runs commands does so
// through the executors it is given; methods on one target are called from
// one goroutine, methods on different targets concurrently.
type Backend interface {
	// Name is "nix" or "guix".
	Name() string
	// Check reports settings of h this backend cannot honour.
	Check(h *schema.Host) []FieldError
	// Plan returns, for each target, every step a deploy runs, in order.
	// It is pure: it runs nothing and fills placeholders from what the
	// targets already know (Drv, Out).
	Plan(ts []*Target) [][]Step
	// Instantiate evaluates the systems of ts on the deployer, in as few
	// processes as it can, setting Drv and Out. errs[i] is target i's error.
	Instantiate(ctx context.Context, local hosts.Executor, ts []*Target) (errs []error)
	// Build realises on the deployer the systems of ts whose Host.Build is
	// "local", in one batch, and keeps GC roots for them. errs[i] is target
	// i's error (nil for targets built on the host).
	Build(ctx context.Context, local hosts.Executor, ts []*Target) (errs []error)
	// State reads what the host runs now. It is called once Instantiate has
	// set Out, while Build may still run, and must not need the build; a
	// backend may keep a session open from here to Activate.
	State(ctx context.Context, remote hosts.Executor, t *Target) (State, error)
	// Push makes Out valid on the host: it copies the closure of Out (build
	// local) or of Drv and realises it there (build target), sending only
	// what the host lacks. The phase of a failure is in the *PhaseError.
	Push(ctx context.Context, local, remote hosts.Executor, t *Target) (CopyStats, error)
	// Activate makes the host reach goal with Out. goal is the host's
	// Activation, which a backend may already act on from State on (Nix
	// activates in the session State opened, after a copy through the
	// host's daemon). Nothing on the host but its store changes before
	// Activate.
	Activate(ctx context.Context, remote hosts.Executor, t *Target, goal string) error
	// Rollback returns the host to prev after a failed activation.
	Rollback(ctx context.Context, remote hosts.Executor, t *Target, goal string, prev State) error
}

// ErrActivationNotStarted says an activation failed before it changed
// anything on the host (stopped while it waited for a lock, the system
// missing): there is nothing to roll back.
var ErrActivationNotStarted = errors.New("the activation did not start; the host is as it was")

// PhaseError names the phase a failure happened in.
type PhaseError struct {
	Phase string
	Err   error
}

func (e *PhaseError) Error() string { return e.Phase + ": " + e.Err.Error() }
func (e *PhaseError) Unwrap() error { return e.Err }

var registry = map[string]Backend{}

// Register makes b available under b.Name(). Backends register from their
// package's init; the deploy command imports them.
func Register(b Backend) {
	if _, dup := registry[b.Name()]; dup {
		panic(fmt.Sprintf("backend %q registered twice", b.Name()))
	}
	registry[b.Name()] = b
}

// For returns the backend of h, or an error when none is registered.
func For(h *schema.Host) (Backend, error) {
	b, ok := registry[h.Backend()]
	if !ok {
		return nil, fmt.Errorf("host %q: no backend %q", h.Name, h.Backend())
	}
	return b, nil
}

// Names lists the registered backends.
func Names() []string {
	var ns []string
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Registered returns the registered backends by name; the map is a copy the
// caller may change (to put in a backend configured for a run).
func Registered() map[string]Backend {
	m := make(map[string]Backend, len(registry))
	for n, b := range registry {
		m[n] = b
	}
	return m
}
