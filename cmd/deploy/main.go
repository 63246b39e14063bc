// Command deploy deploys NixOS and Guix System machines from a deployment
// written in CUE. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first interrupt stops the run: hosts not yet activating stop, an
	// activation under way is rolled back. From then on signals are not
	// caught, so a second one ends deploy at once.
	var ended atomic.Bool
	context.AfterFunc(ctx, func() {
		stop()
		if !ended.Load() { // a signal, not the stop below
			fmt.Fprintln(os.Stderr, "deploy: interrupted: stopping; activations under way are rolled back (interrupt again to quit at once)")
		}
	})
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	ended.Store(true)
	stop()
	os.Exit(code)
}
