package nix

import (
	"context"
	"path/filepath"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/schema"
)

// forumHost is a host called name, reached as root on the local fleet's
// address, that runs the example forum-1 system built here with args.
func forumHost(t *testing.T, name string, args map[string]string) *schema.Host {
	t.Helper()
	file, err := filepath.Abs("../../examples/forum/nix/forum.nix")
	if err != nil {
		t.Fatal(err)
	}
	return &schema.Host{
		Name: name, Address: fleet.Address, Build: "local", Activation: "switch",
		SSH: schema.SSH{User: "root", Port: 22},
		Nix: &schema.Nix{File: file, Attribute: "nixosConfigurations.forum-1.config.system.build.toplevel", Args: args},
	}
}

// dialHost connects to fleet host h for the rest of the test.
func dialHost(t *testing.T, f *fleet.Fleet, h fleet.Host) *hosts.Conn {
	t.Helper()
	conn, err := hosts.Dial(context.Background(), hosts.DialOptions{Name: h.Name, Address: fleet.Address, Port: h.Port, IdentityFile: f.ClientKey, HostKey: h.HostKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// instantiateAndBuild evaluates and builds ts here with b.
func instantiateAndBuild(t *testing.T, b *Backend, ts ...*backend.Target) {
	t.Helper()
	ctx := context.Background()
	for _, err := range append(b.Instantiate(ctx, hosts.Local{}, ts), b.Build(ctx, hosts.Local{}, ts)...) {
		if err != nil {
			t.Fatal(err)
		}
	}
}
