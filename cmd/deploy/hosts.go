package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"cuedeploy.dev/cuedeploy/eval"
	"cuedeploy.dev/cuedeploy/schema"
)

// selection are the flags that pick hosts.
type selection struct {
	// On is nil when --on is not given: every host. An empty --on (say
	// --on "$UNSET") is an error, not the whole fleet. Given again, the
	// terms add up, as if joined with commas.
	On []string `name:"on" sep:"none" placeholder:"SELECTOR" help:"Hosts to act on: comma-separated NAME, GLOB or tag:TAG, each may start with '!' to exclude; given again, the terms add up. Default: every host."`
}

// selected loads the deployment and applies the selector.
func (s selection) selected(e *env) (*schema.Deployment, []schema.Host, error) {
	d, err := eval.Load(eval.Options{Dir: e.cli.Dir, Tags: e.cli.Tag})
	if err != nil {
		return nil, nil, err
	}
	for _, on := range s.On {
		if strings.TrimSpace(on) == "" {
			return nil, nil, &eval.SelectError{Term: on, Reason: "--on is empty; leave it out to select every host"}
		}
	}
	sel := strings.Join(s.On, ",")
	hs, err := eval.Select(d, sel)
	if err != nil {
		return nil, nil, err
	}
	return d, hs, nil
}

// hostsCmd lists the selected hosts.
type hostsCmd struct {
	selection
	JSON bool `name:"json" help:"Print JSON."`
}

type hostJSON struct {
	Name    string   `json:"name"`
	Address string   `json:"address"`
	Port    int      `json:"port"`
	User    string   `json:"user"`
	Tags    []string `json:"tags"`
	Backend string   `json:"backend"`
}

func newHostJSON(h *schema.Host) hostJSON {
	return hostJSON{h.Name, h.Address, h.SSH.Port, h.SSH.User, h.Tags, h.Backend()}
}

func (c *hostsCmd) Run(e *env) error {
	d, hs, err := c.selected(e)
	if err != nil {
		return err
	}
	if c.JSON {
		out := struct {
			Deployment string     `json:"deployment"`
			Hosts      []hostJSON `json:"hosts"`
		}{Deployment: d.Name, Hosts: []hostJSON{}}
		for _, h := range hs {
			out.Hosts = append(out.Hosts, newHostJSON(&h))
		}
		return writeJSON(e, out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tBACKEND\tTAGS")
	for _, h := range hs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, address(&h), h.Backend(), strings.Join(h.Tags, ","))
	}
	return tw.Flush()
}

// address shows user@host:port, leaving out what is default.
func address(h *schema.Host) string {
	a := h.Address
	if strings.Contains(a, ":") {
		a = "[" + a + "]"
	}
	if h.SSH.User != "root" {
		a = h.SSH.User + "@" + a
	}
	if h.SSH.Port != 22 {
		a = fmt.Sprintf("%s:%d", a, h.SSH.Port)
	}
	return a
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false) // argv holds <placeholders> and shell text
	return enc.Encode(v)
}
