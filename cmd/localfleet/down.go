package main

import (
	"context"
	"fmt"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

type downCmd struct {
	stateFlag
}

func (c *downCmd) Run(ctx context.Context, s *streams) error {
	if err := fleet.Requirements(ctx); err != nil {
		return err
	}
	f, err := fleet.Load(c.State)
	if err != nil {
		return err
	}
	if err := f.Down(); err != nil {
		return fmt.Errorf("take fleet down: %w", err)
	}
	fmt.Fprintf(s.Err, "fleet in %s is down\n", f.StateDir)
	return nil
}
