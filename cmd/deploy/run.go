package main

import (
	"context"
	"fmt"
	"time"

	"cuedeploy.dev/cuedeploy/backend"
	_ "cuedeploy.dev/cuedeploy/backend/guix" // registers the guix backend
	"cuedeploy.dev/cuedeploy/backend/nix"
	"cuedeploy.dev/cuedeploy/backend/rollout"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// overrides are flags that change what the deployment says for this run;
// unset (nil), each host keeps its own.
type overrides struct {
	Goal *string `name:"goal" enum:"switch,boot,test,dry-activate" placeholder:"GOAL" help:"Activation goal for every selected host (${enum}), instead of each host's activation."`
	buildFlags
}

// buildFlags are the overrides a build reads (deploy build has only
// these).
type buildFlags struct {
	BuildAt   *string  `name:"build" enum:"local,target" placeholder:"WHERE" help:"Where to build (${enum}), instead of each host's build; deploy build only evaluates a system built on the target."`
	NixOption []string `name:"nix-option" placeholder:"NAME=VALUE" sep:"none" help:"Pass --option NAME VALUE to the nix commands run on this machine (e.g. substituters=)."`
}

// apply changes the selected hosts as the flags say and checks that their
// backends can still honour them.
func (o overrides) apply(hs []schema.Host, bs map[string]backend.Backend) error {
	if o.Goal == nil && o.BuildAt == nil {
		return nil
	}
	for i := range hs {
		h := &hs[i]
		if o.Goal != nil {
			h.Activation = *o.Goal
		}
		if o.BuildAt != nil {
			h.Build = *o.BuildAt
		}
		if b, ok := bs[h.Backend()]; ok {
			for _, fe := range b.Check(h) {
				return usageError{fmt.Sprintf("host %q: %s: %s", h.Name, fe.Path, fe.Message)}
			}
		}
	}
	return nil
}

// backends are the registered backends with the nix one configured by the
// flags.
func (o overrides) backends() (map[string]backend.Backend, error) {
	opts, order, err := parseKV("--nix-option", o.NixOption)
	if err != nil {
		return nil, err
	}
	bs := backend.Registered()
	bs["nix"] = nix.New(nix.Options{NixOptions: opts, NixOrder: order})
	return bs, nil
}

// plannedRun is what eval, build and deploy all start from.
type plannedRun struct {
	d        *schema.Deployment
	hosts    []schema.Host
	backends map[string]backend.Backend
}

// prepare loads the deployment, selects hosts and applies the overrides.
func prepare(e *env, sel selection, o overrides) (*plannedRun, error) {
	d, hs, err := sel.selected(e)
	if err != nil {
		return nil, err
	}
	bs, err := o.backends()
	if err != nil {
		return nil, err
	}
	if err := o.apply(hs, bs); err != nil {
		return nil, err
	}
	return &plannedRun{d: d, hosts: hs, backends: bs}, nil
}

// connection are the flags of the SSH transport.
type connection struct {
	ConnectTimeout    time.Duration `name:"connect-timeout" default:"10s" help:"Give up connecting to a host after this long (more than 0)."`
	AcceptNewHostKeys bool          `name:"accept-new-host-keys" help:"Accept and record the key of a host not yet in known_hosts (a changed key is always refused)."`
}

// check rejects what the transport would otherwise replace by its default.
func (c connection) check() error {
	if c.ConnectTimeout <= 0 {
		return usageError{fmt.Sprintf("--connect-timeout %s: must be more than 0", c.ConnectTimeout)}
	}
	return nil
}

func (c connection) dialer() func(ctx context.Context, h *schema.Host) (rollout.Conn, error) {
	return func(ctx context.Context, h *schema.Host) (rollout.Conn, error) {
		return hosts.Dial(ctx, hosts.DialOptions{
			Name:              h.Name,
			Address:           h.Address,
			Port:              h.SSH.Port,
			User:              h.SSH.User,
			IdentityFile:      h.SSH.IdentityFile,
			HostKey:           h.SSH.HostKey,
			JumpHost:          h.SSH.JumpHost,
			JumpHostKey:       h.SSH.JumpHostKey,
			Sudo:              h.SSH.Sudo,
			AcceptNewHostKeys: c.AcceptNewHostKeys,
			ConnectTimeout:    c.ConnectTimeout,
		})
	}
}
