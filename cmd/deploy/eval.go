package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/backend/rollout"
	"cuedeploy.dev/cuedeploy/hosts"
)

// evalCmd prints the plan of every selected host without touching a host.
type evalCmd struct {
	selection
	overrides
	JSON        bool `name:"json" help:"Print the plan as JSON (see docs/eval-json.md)."`
	Instantiate bool `name:"instantiate" help:"Also evaluate the systems for real (batched) and fill in their .drv and store paths."`
}

// planJSON is the documented, stable form of deploy eval --json.
type planJSON struct {
	Deployment string         `json:"deployment"`
	Hosts      []hostPlanJSON `json:"hosts"`
}

type hostPlanJSON struct {
	hostJSON
	Build      string         `json:"build"`
	Activation string         `json:"activation"`
	DrvPath    string         `json:"drvPath,omitempty"`
	System     string         `json:"system,omitempty"`
	Steps      []backend.Step `json:"steps"`
}

func (c *evalCmd) Run(e *env) error {
	p, err := prepare(e, c.selection, c.overrides)
	if err != nil {
		return err
	}
	d, bs := p.d, p.backends
	ts := rollout.Targets(d.Name, p.hosts)
	if c.Instantiate {
		if err := errors.Join(rollout.Instantiate(e.ctx, hosts.Local{}, ts, bs)...); err != nil {
			return fmt.Errorf("instantiate: %w", err)
		}
	}
	plans, err := rollout.Plan(ts, bs)
	if err != nil {
		return err
	}
	out := planJSON{Deployment: d.Name, Hosts: []hostPlanJSON{}}
	for i, t := range ts {
		h := t.Host
		out.Hosts = append(out.Hosts, hostPlanJSON{
			hostJSON: newHostJSON(h), Build: h.Build, Activation: h.Activation,
			DrvPath: t.Drv, System: t.Out, Steps: plans[i],
		})
	}
	if c.JSON {
		return writeJSON(e, out)
	}
	return printPlan(e, out)
}

func printPlan(e *env, p planJSON) error {
	fmt.Fprintf(e.stdout, "deployment %s: %d host%s\n", p.Deployment, len(p.Hosts), plural(len(p.Hosts)))
	for _, h := range p.Hosts {
		fmt.Fprintf(e.stdout, "\n%s  %s:%d  %s  build %s  goal %s  tags %s\n", h.Name, h.Address, h.Port, h.Backend, h.Build, h.Activation, strings.Join(h.Tags, ","))
		if h.DrvPath != "" {
			fmt.Fprintf(e.stdout, "  drv     %s\n  system  %s\n", h.DrvPath, h.System)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, s := range h.Steps {
			cmd := hosts.ShellJoin(s.Argv)
			if len(s.StdinFrom) > 0 {
				cmd = hosts.ShellJoin(s.StdinFrom) + " | " + cmd
			}
			if s.Stdin != "" {
				cmd += " < " + s.Stdin
			}
			if s.Root {
				cmd += "   (as root)"
			}
			var notes []string
			if s.Batch {
				notes = append(notes, "batched")
			}
			if s.When != "" {
				notes = append(notes, "if "+s.When)
			}
			note := ""
			if len(notes) > 0 {
				note = "  [" + strings.Join(notes, "; ") + "]"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s%s\n", s.Phase, s.On, cmd, note)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
