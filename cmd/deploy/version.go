package main

import "fmt"

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	_, err := fmt.Fprintf(e.stdout, "deploy %s\n", version)
	return err
}
