package backendtest

import (
	"context"
	"errors"

	"cuedeploy.dev/cuedeploy/hosts"
)

// Namespace runs commands on this machine, each in a new private mount
// namespace where Binds are bind-mounted, so that a test can give the
// deployer, or a stand-in "host", its own /gnu, /var/guix, /nix or /run
// without SSH. It needs root. It is a test double for a fleet host: use the
// local fleet over SSH where it can run.
type Namespace struct {
	// Name is what Where returns.
	Name string
	// Binds are {source, target} directory pairs, mounted in order. Every
	// target must exist.
	Binds [][2]string
	// Env is added to every command's environment.
	Env []string
}

var _ hosts.Executor = Namespace{}

// bindScript mounts its argument pairs up to "--" and runs the rest.
const bindScript = `set -e; while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done; shift; exec "$@"`

// Where implements hosts.Executor.
func (n Namespace) Where() string { return n.Name }

// Run implements hosts.Executor.
func (n Namespace) Run(ctx context.Context, c hosts.Cmd) error {
	argv := []string{"unshare", "-m", "--propagation", "private", "sh", "-c", bindScript, "sh"}
	for _, b := range n.Binds {
		argv = append(argv, b[0], b[1])
	}
	inner := c
	inner.Argv = append(append(argv, "--"), c.Argv...)
	err := hosts.Local{Env: n.Env}.Run(ctx, inner)
	var ee *hosts.ExitError
	if errors.As(err, &ee) {
		ee.Where, ee.Argv = n.Name, c.Argv
	}
	return err
}
