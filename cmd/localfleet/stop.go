package main

import (
	"context"
	"fmt"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

type stopCmd struct {
	stateFlag
	Name string `arg:"" help:"Host to stop."`
}

func (c *stopCmd) Run(ctx context.Context, s *streams) error {
	if err := fleet.Requirements(ctx); err != nil {
		return err
	}
	f, err := fleet.Load(c.State)
	if err != nil {
		return err
	}
	if err := f.Stop(c.Name); err != nil {
		return err
	}
	fmt.Fprintf(s.Err, "stopped %s\n", c.Name)
	return nil
}
