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
	// The copy goes through the host's nix daemon; "switch/serve" copies
	// through nix-store --serve, as to a host without a daemon.
	// says is what the example system's activation prints for each goal.
	// (standard error, and for switch and test standard output too).
	activating := []string{"activating the configuration...", "setting up /etc..."}
	says := map[string][]string{"switch": activating, "boot": {"installing the boot loader..."}, "test": activating}
	for _, run := range []struct {
		name, goal string
		noDaemon   bool
	}{{"switch", "switch", false}, {"boot", "boot", false}, {"test", "test", false}, {"switch/serve", "switch", true}} {
		t.Run(run.name, func(t *testing.T) {
			f := fleettest.Up(t, fleet.Config{Hosts: []string{"forum-1"}})
			h := f.Hosts[0]
			backendtest.Run(t, backendtest.Fixture{
				Backend: nix.New(nix.Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir(), NoDaemon: run.noDaemon}),
				Local:   hosts.Local{},
				NewHost: func(t *testing.T) hosts.Executor {
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
				Goal:    run.goal,
				Says:    says[run.goal],
			})
			// The host's daemon logs each connection it accepts.
			accepted, err := h.DaemonConnections()
			if err != nil {
				t.Fatal(err)
			}
			if run.noDaemon && accepted > 0 {
				t.Errorf("copies through nix-store --serve, but the host's daemon accepted %d connections", accepted)
			}
			if !run.noDaemon && accepted == 0 {
				t.Errorf("the host's daemon accepted no connection")
			}
		})
	}
}
