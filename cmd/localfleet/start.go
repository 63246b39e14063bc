package main

import (
	"context"
	"fmt"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

type startCmd struct {
	stateFlag
	Name string `arg:"" help:"Host to start."`
}

func (c *startCmd) Run(ctx context.Context, s *streams) error {
	if err := fleet.Requirements(ctx); err != nil {
		return err
	}
	f, err := fleet.Load(c.State)
	if err != nil {
		return err
	}
	if err := f.Start(ctx, c.Name); err != nil {
		return err
	}
	h, _ := f.Host(c.Name)
	fmt.Fprintf(s.Err, "started %s on %s:%d (pid %d)\n", h.Name, fleet.Address, h.Port, h.PID)
	return nil
}
