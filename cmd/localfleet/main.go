// Command localfleet runs the local test fleet: sshd hosts on 127.0.0.1,
// each with its own /nix, /run, /gnu and /var/guix, for tests, benchmarks
// and demos of deploy. See package cuedeploy.dev/cuedeploy/hosts/fleet.
//
// Exit codes: 0 success, 1 failure, 2 bad usage, 3 this machine cannot run
// the fleet (not root, no unshare, sshd or nix).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "localfleet: %v\n", err)
		code = exitCode(err)
	}
	os.Exit(code)
}

func exitCode(err error) int {
	var missing *fleet.MissingError
	var usage *usageError
	switch {
	case errors.As(err, &missing):
		return 3
	case errors.As(err, &usage):
		return 2
	}
	return 1
}
