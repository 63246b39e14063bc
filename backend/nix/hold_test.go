package nix

import (
	"context"
	"os"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

// TestCopyHoldsRootsUntilTheRunEnds collects garbage on a host at each
// point of a deploy, through the host's daemon and through nix-store
// --serve: what the copy put there, and the system the host runs in no
// generation, stay until the host's run has ended (Finish), a rollback
// included; then they are let go.
func TestCopyHoldsRootsUntilTheRunEnds(t *testing.T) {
	eachCopyPath(t, "held", func(t *testing.T, h fleet.Host, conn *hosts.Conn, b *Backend, tg *backend.Target, noDaemon bool) {
		ctx := context.Background()
		gc := func() {
			t.Helper()
			if err := conn.Run(ctx, hosts.Cmd{Argv: []string{"nix-store", "--gc"}}); err != nil {
				t.Fatalf("nix-store --gc on the host: %v", err)
			}
		}
		has := func(when, p string, want bool) {
			t.Helper()
			if _, err := os.Lstat(h.Path(p)); (err == nil) != want {
				t.Errorf("%s: the host has %s: %v, want %v", when, p, err == nil, want)
			}
		}
		env := tg.Host.Nix.Args["env"]
		other := func(release, fail string) *backend.Target {
			o := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": release, "failActivation": fail, "env": env})}
			instantiateAndBuild(t, b, o)
			return o
		}

		t.Run("what was copied", func(t *testing.T) {
			// dry-activate: nothing on the host refers to the system but
			// the copy.
			copyTo(t, b, conn, tg, "dry-activate")
			gc()
			has("after a collection between the copy and the activation", tg.Out, true)
			if err := b.Activate(ctx, conn, tg, "dry-activate"); err != nil {
				t.Fatal(err)
			}
			gc()
			has("after a collection after the activation", tg.Out, true)
			b.Finish(tg)
			gc()
			has("after the run had ended and a collection", tg.Out, false)
		})

		t.Run("what the host built", func(t *testing.T) {
			built := &backend.Target{Host: forumHost(t, h.Name, map[string]string{"release": "held-built", "failActivation": "", "env": env})}
			built.Host.Build = "target"
			for _, err := range b.Instantiate(ctx, hosts.Local{}, []*backend.Target{built}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			copyTo(t, b, conn, built, "dry-activate") // the .drv closure, then the build on the host
			gc()
			has("after a collection between the build on the host and the activation", built.Out, true)
			if err := b.Activate(ctx, conn, built, "dry-activate"); err != nil {
				t.Fatal(err)
			}
			b.Finish(built)
		})

		t.Run("what ran in no generation, through a rollback", func(t *testing.T) {
			booted, tested, bad := other("held-booted", ""), other("held-tested", ""), other("held-bad", "forum-1")
			for _, step := range []struct {
				tg   *backend.Target
				goal string
			}{{booted, "switch"}, {tested, "test"}} {
				copyTo(t, b, conn, step.tg, step.goal)
				if err := b.Activate(ctx, conn, step.tg, step.goal); err != nil {
					t.Fatal(err)
				}
				b.Finish(step.tg)
			}
			// Only /run/current-system roots tested now, and the
			// failing switch repoints it.
			prev := copyTo(t, b, conn, bad, "switch")
			if err := b.Activate(ctx, conn, bad, "switch"); err == nil {
				t.Fatal("the failing system's activation succeeded")
			}
			gc()
			if err := b.Rollback(ctx, conn, bad, "switch", prev); err != nil {
				t.Fatalf("rollback after a collection: %v", err)
			}
			b.Finish(bad)
			if got, _ := os.Readlink(h.Path("/run/current-system")); got != tested.Out {
				t.Errorf("after the rollback the host runs %s, want %s", got, tested.Out)
			}
			if got, _ := os.Readlink(h.Path(Profile)); got != "system-1-link" {
				t.Errorf("after the rollback the profile is %s, want system-1-link", got)
			}
		})
	})
}
