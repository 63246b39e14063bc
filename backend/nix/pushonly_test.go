package nix

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

// TestPushLeavesTheHostAsItWas copies a system through the host's daemon
// and through nix-store --serve, and stops there, as a run stopped by
// --fail-fast does: the host has the paths, but no profile generation and
// no running system, and its waiting session ends with Finish. Only
// Activate changes what the host runs.
func TestPushLeavesTheHostAsItWas(t *testing.T) {
	ctx := context.Background()
	eachCopyPath(t, "push-only", func(t *testing.T, h fleet.Host, conn *hosts.Conn, b *Backend, tg *backend.Target, _ bool) {
		untouched := func(when string) {
			t.Helper()
			absent(t, h, when, "/run/current-system", Profile)
		}
		if _, err := b.State(ctx, conn, tg); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(ctx, hosts.Local{}, conn, tg); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(h.Path(tg.Out)); err != nil {
			t.Errorf("after Push the system is not in the host's store: %v", err)
		}
		untouched("after Push")
		b.Finish(tg)
		// Every process on the host that names the system (the waiting
		// session, an activation Push would have let start) has ended.
		backendtest.Quiet(t, tg.Out)
		untouched("after Finish")

		// The same host then deploys as usual: nothing left to copy.
		if _, err := b.State(ctx, conn, tg); err != nil {
			t.Fatal(err)
		}
		st, err := b.Push(ctx, hosts.Local{}, conn, tg)
		if err != nil || st.Paths != 0 {
			t.Fatalf("second Push: %d paths, %v; want none sent", st.Paths, err)
		}
		if err := b.Activate(ctx, conn, tg, "switch"); err != nil {
			t.Fatal(err)
		}
		// Both streams of the activation are kept, whichever session ran it.
		for _, say := range []string{"activating the configuration...", "setting up /etc..."} {
			if !strings.Contains(tg.Output, say) {
				t.Errorf("the activation's output %q lacks %q", tg.Output, say)
			}
		}
		if s, err := b.State(ctx, conn, tg); err != nil || !s.Reached("switch", tg.Out) {
			t.Errorf("after Activate the host is in %+v (%v), want it to run %s", s, err, tg.Out)
		}

		// A system the host does not have is refused before anything
		// changes: the activation did not start, and the host runs
		// what it ran.
		other := &backend.Target{Host: tg.Host, Out: "/nix/store/00000000000000000000000000000000-nixos-system-never-copied"}
		err = b.Activate(ctx, conn, other, "switch")
		if !errors.Is(err, backend.ErrActivationNotStarted) || !strings.Contains(err.Error(), "is not in the host's store") {
			t.Errorf("Activate of a system the host lacks: %v; want it refused before it began", err)
		}
		if s, err := b.State(ctx, conn, tg); err != nil || !s.Reached("switch", tg.Out) {
			t.Errorf("after the refused activation the host is in %+v (%v), want it still on %s", s, err, tg.Out)
		}
	})
}
