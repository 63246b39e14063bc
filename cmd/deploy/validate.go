package main

import (
	"errors"
	"fmt"

	"cuedeploy.dev/cuedeploy/eval"
)

// validateCmd checks deployments against the schema without running Nix or
// Guix, for pre-commit hooks and CI.
type validateCmd struct {
	Dirs []string `arg:"" optional:"" name:"dir" help:"Deployment package directories (default: --dir)."`
}

func (c *validateCmd) Run(e *env) error {
	dirs := c.Dirs
	if len(dirs) == 0 {
		dirs = []string{e.cli.Dir}
	}
	var all eval.Errors
	for _, dir := range dirs {
		d, err := eval.Load(eval.Options{Dir: dir, Tags: e.cli.Tag})
		var errs eval.Errors
		switch {
		case errors.As(err, &errs):
			all = append(all, errs...)
			continue
		case err != nil:
			return err
		}
		fmt.Fprintf(e.stdout, "ok %s: deployment %q, %d host%s\n", dir, d.Name, len(d.Hosts), plural(len(d.Hosts)))
	}
	if len(all) > 0 {
		return all
	}
	return nil
}
