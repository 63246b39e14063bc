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

// stopping says what the first interrupt does to the command that runs
// (run sets it once the command line is parsed).
var stopping atomic.Pointer[string]

func setStopping(what string) { stopping.Store(&what) }

func init() { setStopping("stopping") }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first interrupt stops the run: hosts not yet activating stop, an
	// activation under way is rolled back. From then on signals are not
	// caught, so a second one ends deploy at once.
	var ended atomic.Bool
	context.AfterFunc(ctx, func() {
		stop()
		if !ended.Load() { // a signal, not the stop below
			fmt.Fprintf(os.Stderr, "deploy: interrupted: %s (interrupt again to quit at once)\n", *stopping.Load())
		}
	})
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	ended.Store(true)
	stop()
	os.Exit(code)
}
