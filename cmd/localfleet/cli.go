package main

import (
	"context"
	"fmt"
	"io"

	"github.com/alecthomas/kong"
)

// cli is the command line: one command per file.
type cli struct {
	Up    upCmd    `cmd:"" help:"Create and start a fleet."`
	Down  downCmd  `cmd:"" help:"Stop every host and remove the fleet's state."`
	List  listCmd  `cmd:"" help:"List the hosts: name, port, pid, alive, connections."`
	Stop  stopCmd  `cmd:"" help:"Stop one host; its files stay."`
	Start startCmd `cmd:"" help:"Start a stopped host again."`
}

// stateFlag is the state directory every command acts on.
type stateFlag struct {
	State string `default:".fleet" type:"path" placeholder:"DIR" help:"State directory of the fleet (${default})."`
}

// streams are where commands write: results to Out, logs to Err.
type streams struct {
	Out io.Writer
	Err io.Writer
}

// usageError is a command line that cannot be run as given.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitRequest carries an exit code out of kong (after --help) without
// exiting anywhere but main.
type exitRequest int

// run parses args and runs the command. It returns an exit code for a run
// kong ended itself (help), and the command's error otherwise.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int, err error) {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("localfleet"),
		kong.Description("Run the local test fleet: sshd hosts on 127.0.0.1, each with its own /nix, /run, /gnu and /var/guix."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest(code)) }),
		kong.UsageOnError(),
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Bind(&streams{Out: stdout, Err: stderr}),
	)
	if err != nil {
		return 0, fmt.Errorf("build command line: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			req, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code, err = int(req), nil
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		return 0, &usageError{msg: err.Error()}
	}
	return 0, kctx.Run()
}
