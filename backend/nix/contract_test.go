package nix_test

import (
	"context"
	"path/filepath"
	"testing"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/backend/nix"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
	"cuedeploy.dev/cuedeploy/schema"
)

// TestContract runs the shared backend suite for Nix with the real nix on
// the deployer and a fresh local-fleet host over SSH, for each goal that
// changes what runs.
func TestContract(t *testing.T) {
	file, err := filepath.Abs("../../examples/forum/nix/forum.nix")
	if err != nil {
		t.Fatal(err)
	}
	system := func(release, fail string) *schema.Host {
		return &schema.Host{
			Name: "forum-1", Address: fleet.Address, Build: "local", Activation: "switch",
			SSH: schema.SSH{User: "root", Port: 22},
			Nix: &schema.Nix{
				File:      file,
				Attribute: "nixosConfigurations.forum-1.config.system.build.toplevel",
				Args:      map[string]string{"release": release, "failActivation": fail, "env": "contract"},
			},
		}
	}
	for _, goal := range []string{"switch", "boot", "test"} {
		t.Run(goal, func(t *testing.T) {
			f := fleettest.Up(t, fleet.Config{Hosts: []string{"forum-1"}})
			backendtest.Run(t, backendtest.Fixture{
				Backend: nix.New(nix.Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir()}),
				Local:   hosts.Local{},
				NewHost: func(t *testing.T) hosts.Executor {
					h := f.Hosts[0]
					c, err := hosts.Dial(context.Background(), hosts.DialOptions{
						Name: h.Name, Address: fleet.Address, Port: h.Port,
						IdentityFile: f.ClientKey, HostKey: h.HostKey,
					})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { c.Close() })
					return c
				},
				Good:    system("contract-1", ""),
				Second:  system("contract-2", ""),
				Failing: system("contract-3", "forum-1"),
				Goal:    goal,
			})
		})
	}
}
