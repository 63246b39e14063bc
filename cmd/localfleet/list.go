package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

type listCmd struct {
	stateFlag
	JSON bool `name:"json" help:"Print JSON instead of a table."`
}

// hostRow is one host as list prints it.
type hostRow struct {
	Name        string `json:"name"`
	Port        int    `json:"port"`
	PID         int    `json:"pid"`
	Alive       bool   `json:"alive"`
	Connections int    `json:"connections"`
	HostKey     string `json:"hostKey"`
	Dir         string `json:"dir"`
}

func (c *listCmd) Run(s *streams) error {
	f, err := fleet.Load(c.State)
	if err != nil {
		return err
	}
	rows := make([]hostRow, 0, len(f.Hosts))
	for _, h := range f.Hosts {
		n, err := h.Connections()
		if err != nil {
			return err
		}
		rows = append(rows, hostRow{Name: h.Name, Port: h.Port, PID: h.PID, Alive: h.Alive(), Connections: n, HostKey: h.HostKey, Dir: h.Dir})
	}
	if c.JSON {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPORT\tPID\tALIVE\tCONNECTIONS")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t%t\t%d\n", r.Name, r.Port, r.PID, r.Alive, r.Connections)
	}
	return w.Flush()
}
