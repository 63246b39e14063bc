package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

type upCmd struct {
	stateFlag
	BasePort int      `default:"2201" placeholder:"N" help:"First port (${default}); hosts get consecutive ports. 0 picks free ports."`
	Count    int      `placeholder:"N" help:"Make N hosts named PREFIX1..PREFIXN instead of naming them."`
	Prefix   string   `default:"host-" placeholder:"P" help:"Name prefix for --count (${default})."`
	CUE      string   `name:"cue" type:"path" placeholder:"FILE" help:"Write CUE for the fleet's hosts to FILE (needs --package)."`
	Package  string   `placeholder:"PKG" help:"CUE package name of the --cue file."`
	Path     []string `type:"path" placeholder:"DIR" help:"Put DIR first on the hosts' PATH (repeatable), e.g. for a stand-in guix."`
	Names    []string `arg:"" optional:"" name:"name" help:"Host names."`
}

func (c *upCmd) Run(ctx context.Context, s *streams) error {
	names := c.Names
	switch {
	case c.Count > 0 && len(names) > 0:
		return &usageError{msg: "give host names or --count, not both"}
	case c.Count > 0:
		for i := 1; i <= c.Count; i++ {
			names = append(names, c.Prefix+strconv.Itoa(i))
		}
	case len(names) == 0:
		return &usageError{msg: "give host names or --count N"}
	}
	if (c.CUE == "") != (c.Package == "") {
		return &usageError{msg: "--cue and --package go together"}
	}
	if c.CUE != "" {
		// Check the package name before anything starts.
		if _, err := (&fleet.Fleet{}).CUE(c.Package); err != nil {
			return &usageError{msg: err.Error()}
		}
	}
	f, err := fleet.Up(ctx, fleet.Config{StateDir: c.State, Hosts: names, BasePort: c.BasePort, ExtraPath: c.Path})
	if err != nil {
		return err
	}
	for _, h := range f.Hosts {
		fmt.Fprintf(s.Out, "%s\t%s:%d\tpid %d\n", h.Name, fleet.Address, h.Port, h.PID)
	}
	fmt.Fprintf(s.Err, "fleet of %d hosts up in %s; reach one with:\n  ssh %s %s@%s\n",
		len(f.Hosts), f.StateDir, hosts.ShellJoin(f.SSHOptions(f.Hosts[0])), fleet.User, fleet.Address)
	if c.CUE != "" {
		src, err := f.CUE(c.Package)
		if err == nil {
			err = os.WriteFile(c.CUE, src, 0o644)
		}
		if err != nil {
			return fmt.Errorf("write fleet cue (the fleet is up): %w", err)
		}
		fmt.Fprintf(s.Err, "wrote %s\n", c.CUE)
	}
	return nil
}
