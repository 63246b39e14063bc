package main

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/backend/guix"
	"cuedeploy.dev/cuedeploy/backend/rollout"
)

// A program the run needs on this machine (nix-instantiate, nix-store,
// guix, ...) that is not on PATH is the deployer's problem, not the hosts':
// it is found here, before any host is touched, and ends the run with exit
// 3, rather than failing every host at eval with exit 1.
//
// What a run needs is read from the plans of its hosts, the same steps
// `deploy eval` prints, so this list cannot drift from what the backends
// run.

// missingProgram is one program that is not on PATH, with the first phase
// that runs it and the hosts that need it.
type missingProgram struct {
	name  string
	phase string
	hosts []string
	err   error
}

// missingProgramsError says which programs a run needs on this machine and
// cannot find.
type missingProgramsError []missingProgram

func (e missingProgramsError) Error() string {
	var b strings.Builder
	for i, m := range e {
		if i > 0 {
			b.WriteString("\n  ")
		}
		why := "not found on PATH"
		if !errors.Is(m.err, exec.ErrNotFound) {
			why = m.err.Error()
		}
		fmt.Fprintf(&b, "%q %s: this machine runs it at %s for %s", m.name, why, m.phase, someHosts(m.hosts))
	}
	var hints []string
	for _, m := range e {
		if h := installHint(m.name); h != "" && !slices.Contains(hints, h) {
			hints = append(hints, h)
			b.WriteString("\n  " + h)
		}
	}
	b.WriteString("\n  nothing was touched: install what is missing on this machine, or fix PATH")
	return b.String()
}

// installHint says how to get a missing program, where there is more to say
// than its name.
func installHint(program string) string {
	switch {
	case program == "guix":
		return guix.InstallHint
	case strings.HasPrefix(program, "nix"):
		return "Nix hosts are evaluated and built on the deployer (with build: \"target\", evaluated); install Nix on it " +
			"(Debian: apt-get install nix-bin), or run `deploy eval` without --instantiate to see the plan"
	}
	return ""
}

// someHosts names the first hosts of hs and counts the rest.
func someHosts(hs []string) string {
	const shown = 3
	word := "host"
	if len(hs) > 1 {
		word = "hosts"
	}
	var names []string
	for _, h := range hs[:min(len(hs), shown)] {
		names = append(names, fmt.Sprintf("%q", h))
	}
	s := word + " " + strings.Join(names, ", ")
	if len(hs) > shown {
		s += fmt.Sprintf(" and %d more", len(hs)-shown)
	}
	return s
}

// lookPrograms finds on PATH every program that p's hosts run on this
// machine in phases (every phase when none is given): the local steps, and
// the local commands streamed into target steps.
func lookPrograms(p *plannedRun, phases ...string) error {
	var order []string
	uses := map[string]*missingProgram{}
	plans, err := rollout.Plan(rollout.Targets(p.d.Name, p.hosts), p.backends)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	for i, plan := range plans {
		h := &p.hosts[i]
		for _, s := range plan {
			if len(phases) > 0 && !slices.Contains(phases, s.Phase) {
				continue
			}
			var progs []string
			if s.On == backend.OnLocal && len(s.Argv) > 0 {
				progs = append(progs, s.Argv[0])
			}
			if len(s.StdinFrom) > 0 {
				progs = append(progs, s.StdinFrom[0])
			}
			for _, name := range progs {
				u := uses[name]
				if u == nil {
					u = &missingProgram{name: name, phase: s.Phase}
					uses[name] = u
					order = append(order, name)
				}
				if len(u.hosts) == 0 || u.hosts[len(u.hosts)-1] != h.Name {
					u.hosts = append(u.hosts, h.Name)
				}
			}
		}
	}
	var missing missingProgramsError
	for _, name := range order {
		if _, err := exec.LookPath(name); err != nil {
			u := uses[name]
			u.err = err
			missing = append(missing, *u)
		}
	}
	if len(missing) > 0 {
		return missing
	}
	return nil
}
