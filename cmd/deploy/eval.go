package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	JSON        bool `name:"json" help:"Print the plan as JSON (its form: README.md, \"deploy eval --json\")."`
	Instantiate bool `name:"instantiate" help:"Also evaluate the systems for real (batched) and fill in their .drv and store paths."`
}

// planJSON is the documented, stable form of deploy eval --json. A step
// that one process runs for many hosts is listed once in Batches; each
// host's step names it by id and carries no argv, so the plan grows
// linearly with the fleet.
type planJSON struct {
	Deployment string         `json:"deployment"`
	Batches    []batchJSON    `json:"batches"`
	Hosts      []hostPlanJSON `json:"hosts"`
}

type batchJSON struct {
	ID    string   `json:"id"`
	Phase string   `json:"phase"`
	On    string   `json:"on"`
	Argv  []string `json:"argv"`
	Stdin string   `json:"stdin,omitempty"`
	Hosts []string `json:"hosts"`
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
		if err := lookPrograms(p, backend.PhaseEval); err != nil {
			return err
		}
		if errs := rollout.Instantiate(e.ctx, hosts.Local{}, ts, bs); errors.Join(errs...) != nil {
			reportEvalErrors(e, ts, errs)
			return errFailed
		}
	}
	plans, err := rollout.Plan(ts, bs)
	if err != nil {
		return err
	}
	out := planJSON{Deployment: d.Name, Batches: []batchJSON{}, Hosts: []hostPlanJSON{}}
	batches := map[string]int{}
	for i, t := range ts {
		h := t.Host
		for k, s := range plans[i] {
			if s.Batch == "" {
				continue
			}
			b, ok := batches[s.Batch]
			if !ok {
				b = len(out.Batches)
				batches[s.Batch] = b
				out.Batches = append(out.Batches, batchJSON{ID: s.Batch, Phase: s.Phase, On: s.On, Argv: s.Argv, Stdin: s.Stdin})
			}
			out.Batches[b].Hosts = append(out.Batches[b].Hosts, h.Name)
			// What the batch runs is said once, in batches: per host it
			// would grow with the square of the fleet.
			plans[i][k].Argv, plans[i][k].Stdin = nil, ""
		}
		out.Hosts = append(out.Hosts, hostPlanJSON{
			hostJSON: newHostJSON(h), Build: h.Build, Activation: h.Activation,
			DrvPath: t.Drv, System: t.Out, Steps: plans[i],
		})
	}
	if c.JSON {
		return streamPlan(e, out)
	}
	return printPlan(e, out)
}

// reportEvalErrors logs the hosts whose systems did not evaluate, as deploy
// and deploy build report them: a host failed (exit 1), not the deployer.
// One error shared by a batch's hosts is said once, naming them all.
func reportEvalErrors(e *env, ts []*backend.Target, errs []error) {
	var order []string
	byMsg := map[string][]string{}
	for i, err := range errs {
		if err == nil {
			continue
		}
		msg := err.Error()
		if _, ok := byMsg[msg]; !ok {
			order = append(order, msg)
		}
		byMsg[msg] = append(byMsg[msg], ts[i].Host.Name)
	}
	for _, msg := range order {
		e.log.Error().Strs("hosts", byMsg[msg]).Str("phase", backend.PhaseEval).Msg(msg)
	}
}

func printPlan(e *env, p planJSON) error {
	fmt.Fprintf(e.stdout, "deployment %s: %d host%s\n", p.Deployment, len(p.Hosts), plural(len(p.Hosts)))
	if len(p.Batches) > 0 {
		fmt.Fprintf(e.stdout, "\nbatched steps (one process for several hosts):\n")
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, b := range p.Batches {
			cmd := hosts.ShellJoin(b.Argv)
			if b.Stdin != "" {
				cmd += " < " + b.Stdin
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", b.ID, b.Phase, b.On, cmd)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, h := range p.Hosts {
		fmt.Fprintf(e.stdout, "\n%s  %s:%d  %s  build %s  goal %s  tags %s\n", h.Name, h.Address, h.Port, h.Backend, h.Build, h.Activation, strings.Join(h.Tags, ","))
		if h.DrvPath != "" {
			fmt.Fprintf(e.stdout, "  drv     %s\n  system  %s\n", h.DrvPath, h.System)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, s := range h.Steps {
			cmd := hosts.ShellJoin(s.Argv)
			if s.Socket != "" {
				cmd = "socket " + s.Socket
			}
			if s.Batch != "" {
				cmd = "[batch " + s.Batch + "]"
			}
			if len(s.StdinFrom) > 0 {
				cmd = hosts.ShellJoin(s.StdinFrom) + " | " + cmd
			}
			if s.Stdin != "" {
				cmd += " < " + s.Stdin
			}
			if s.Continues {
				cmd = "(same session) " + cmd
			}
			if s.Root {
				cmd += "   (as root)"
			}
			var notes []string
			if s.When != "" {
				notes = append(notes, "if "+s.When)
			}
			if s.Note != "" {
				notes = append(notes, s.Note)
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

// streamPlan writes p as writeJSON would, host by host, so that a plan of
// thousands of hosts is never held in one buffer.
func streamPlan(e *env, p planJSON) error {
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	head, err := json.Marshal(p.Deployment)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, `{"deployment":%s,"batches":`, head)
	if err := enc.Encode(p.Batches); err != nil {
		return err
	}
	io.WriteString(w, `,"hosts":[`)
	for i := range p.Hosts {
		if i > 0 {
			io.WriteString(w, ",")
		}
		if err := enc.Encode(&p.Hosts[i]); err != nil {
			return err
		}
	}
	io.WriteString(w, "]}\n")
	return w.Flush()
}
