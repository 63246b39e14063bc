package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/backend/rollout"
	"cuedeploy.dev/cuedeploy/eval"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// deployCmd builds, copies and activates the selected hosts.
type deployCmd struct {
	selection
	overrides
	connection
	Parallel int           `name:"parallel" short:"j" default:"10" help:"Hosts copied and activated at once; twice as many connect and read their state ahead of their turn."`
	FailFast bool          `name:"fail-fast" help:"Stop every other host when one fails. Hosts then wait for the whole batch build before they go on, so that a failed build stops the run first."`
	Timeout  time.Duration `name:"timeout" default:"30m" help:"Bound the time each host spends connecting, reading its state, copying, building on the host (build: target), activating and rolling back; waiting for this machine's evaluation and build, and for its turn (--parallel), does not count. A host's own timeout wins; 0: no bound."`
	JSON     bool          `name:"json" help:"Print results as JSON."`
}

func (c *deployCmd) Run(e *env) error {
	if c.Parallel < 1 {
		return usageError{"--parallel must be at least 1"}
	}
	if c.Timeout < 0 {
		return usageError{fmt.Sprintf("--timeout %s: must not be negative (0: no bound)", c.Timeout)}
	}
	if err := c.connection.check(); err != nil {
		return err
	}
	p, err := prepare(e, c.selection, c.overrides)
	if err != nil {
		return err
	}
	if err := checkKeys(e, p.hosts); err != nil {
		return err
	}
	if err := lookPrograms(p); err != nil {
		return err
	}
	return p.run(e, rollout.Request{Dial: c.dialer(), Parallel: c.Parallel, FailFast: c.FailFast, Timeout: c.Timeout}, c.JSON)
}

// buildCmd builds the selected systems on this machine and prints their
// store paths. It touches no host: it has only the flags a build reads.
type buildCmd struct {
	selection
	buildFlags
	JSON bool `name:"json" help:"Print results as JSON."`
}

func (c *buildCmd) Run(e *env) error {
	p, err := prepare(e, c.selection, overrides{buildFlags: c.buildFlags})
	if err != nil {
		return err
	}
	if err := lookPrograms(p, backend.PhaseEval, backend.PhaseBuild); err != nil {
		return err
	}
	return p.run(e, rollout.Request{BuildOnly: true}, c.JSON)
}

// run runs req over p's hosts, with what every run shares, and reports.
func (p *plannedRun) run(e *env, req rollout.Request, asJSON bool) error {
	req.Deployment, req.Hosts, req.Backends = p.d.Name, p.hosts, p.backends
	req.Local, req.Observer = hosts.Local{}, newObserver(e, p.hosts)
	return report(e, p, rollout.Run(e.ctx, req), asJSON, req.BuildOnly)
}

// report prints a run's results and says whether every host reached its
// goal.
func report(e *env, p *plannedRun, results []rollout.Result, asJSON, buildOnly bool) error {
	ok := true
	for _, r := range results {
		ok = ok && r.Status.OK()
	}
	if asJSON {
		if err := writeJSON(e, struct {
			Deployment string           `json:"deployment"`
			OK         bool             `json:"ok"`
			Results    []rollout.Result `json:"results"`
		}{p.d.Name, ok, results}); err != nil {
			return err
		}
	} else if err := printResults(e.stdout, results, buildOnly); err != nil {
		return err
	}
	if !ok {
		return errFailed
	}
	return nil
}

func printResults(w io.Writer, rs []rollout.Result, buildOnly bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if buildOnly {
		fmt.Fprintln(tw, "HOST\tRESULT\tSYSTEM")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Host, r.Status, dash(r.System))
		}
	} else {
		fmt.Fprintln(tw, "HOST\tRESULT\tPHASE\tDURATION\tCOPIED\tSYSTEM")
		for _, r := range rs {
			copied := "-"
			if r.Copied.Paths > 0 {
				copied = fmt.Sprintf("%d paths, %s", r.Copied.Paths, humanBytes(r.Copied.Bytes))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Host, r.Status, r.Phase, r.Duration.Round(10*time.Millisecond), copied, dash(r.System))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	counts := map[rollout.Status]int{}
	for _, r := range rs {
		counts[r.Status]++
	}
	var parts []string
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(parts)
	fmt.Fprintf(w, "\n%d host%s: %s\n", len(rs), plural(len(rs)), strings.Join(parts, ", "))
	for _, r := range rs {
		if r.Goal == "dry-activate" && r.Output != "" {
			fmt.Fprintf(w, "\n%s would change (dry-activate):\n  %s\n", r.Host, strings.ReplaceAll(r.Output, "\n", "\n  "))
		}
	}
	for _, r := range rs {
		if r.Error != "" {
			fmt.Fprintf(w, "\n%s (%s, phase %s):\n  %s\n", r.Host, r.Status, r.Phase, strings.ReplaceAll(r.Error, "\n", "\n  "))
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// observer shows progress on stderr: a live table redrawn in place on a
// terminal, a log line per event otherwise.
type observer struct {
	mu    sync.Mutex
	e     *env
	live  bool
	names []string
	phase map[string]string
	drawn int
	start time.Time
}

func newObserver(e *env, hs []schema.Host) *observer {
	o := &observer{e: e, live: e.tty && e.cli.LogFormat == "console", phase: map[string]string{}, start: time.Now()}
	for _, h := range hs {
		o.names = append(o.names, h.Name)
	}
	return o
}

func (o *observer) Phase(host, phase string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.phase[host] = phase
	if o.live {
		o.draw()
		return
	}
	o.e.log.Debug().Str("host", host).Str("phase", phase).Msg("phase")
}

func (o *observer) Done(r rollout.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.phase[r.Host] = string(r.Status)
	if o.live {
		o.draw()
		return
	}
	var ev *zerolog.Event
	if r.Status.OK() {
		ev = o.e.log.Info()
	} else {
		ev = o.e.log.Error().Str("error", r.Error)
	}
	ev.Str("host", r.Host).Str("result", string(r.Status)).Str("phase", r.Phase).Str("took", r.Duration.Round(time.Millisecond).String()).Msg("host done")
}

// draw redraws the status table over the previous one.
func (o *observer) draw() {
	var b strings.Builder
	if o.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", o.drawn)
	}
	for _, n := range o.names {
		fmt.Fprintf(&b, "\x1b[2K  %-24s %s\n", n, o.phase[n])
	}
	fmt.Fprintf(&b, "\x1b[2K  %s elapsed\n", time.Since(o.start).Round(100*time.Millisecond))
	o.drawn = len(o.names) + 1
	io.WriteString(o.e.stderr, b.String())
}

// checkKeys makes sure the identity file of every host the run connects to
// exists, before any host is touched. Only deploy needs them (validate,
// eval and build run where keys may not be), so the loader checks them
// only when asked; the deployment is loaded again, asking, only when a key
// is missing, for errors at the lines that name them.
func checkKeys(e *env, hs []schema.Host) error {
	var missing []string
	for _, h := range hs {
		if f := h.SSH.IdentityFile; f != "" {
			if _, err := os.Stat(f); err != nil {
				missing = append(missing, h.Name)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err := eval.Load(eval.Options{Dir: e.cli.Dir, Tags: e.cli.Tag, KeysOf: missing})
	if err == nil {
		err = usageError{fmt.Sprintf("the identity file of %s does not exist", strings.Join(missing, ", "))}
	}
	return err
}
