// Package fleettest brings the local test fleet up for Go tests, with one
// rule for every package: a test that needs the fleet skips, saying what is
// missing, when this machine cannot run it, but fails instead when the
// environment variable CI is set.
package fleettest

import (
	"context"
	"os"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

// UpTimeout bounds bringing a fleet up.
const UpTimeout = 2 * time.Minute

// Require skips t (or, under CI, fails it) when the fleet cannot run here.
func Require(t testing.TB) {
	t.Helper()
	if err := fleet.Requirements(context.Background()); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set, so not skipping: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// Up brings up the fleet c describes, in a temporary state directory when
// c.StateDir is empty and on free ports when c.BasePort is zero, and takes
// it down when t ends.
func Up(t testing.TB, c fleet.Config) *fleet.Fleet {
	t.Helper()
	Require(t)
	if c.StateDir == "" {
		c.StateDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
	defer cancel()
	f, err := fleet.Up(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Down(); err != nil {
			t.Errorf("take test fleet down: %v", err)
		}
	})
	return f
}
