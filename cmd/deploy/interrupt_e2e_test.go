package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// TestInterrupt deploys, on a real fleet host, a system whose activation
// hangs, and interrupts deploy as a user's Ctrl-C does: the first interrupt
// rolls the host back and deploy exits 1, saying so; when the rollback
// hangs too, a second interrupt ends deploy at once.
func TestInterrupt(t *testing.T) {
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"stuck"}})
	h := f.Hosts[0]
	dir := t.TempDir()
	// switch-to-configuration hangs for the system built with hang set,
	// and for every system while /run/interrupt-test-hang exists. It logs
	// each activation and the process that hangs, to be killed at the end.
	systems := `{ salt, hang }: {
stuck = derivation {
  name = "nixos-system-stuck";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit salt hang;
  args = [ "-c" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\nln -sfn %s /run/current-system\necho "$1 %s" >> /run/interrupt-test-activations\nif [ -n "%s" ] || [ -e /run/interrupt-test-hang ]; then echo $$ >> /run/interrupt-test-pids; exec sleep 120; fi\n' $out $out "$hang" > $out/bin/switch-to-configuration
    chmod +x $out/bin/switch-to-configuration
  '' ];
};
}
`
	dep := `package stuck

name: "interrupt-test"
_salt: string @tag(salt)
_hang: string | *"" @tag(hang)
hosts: [Name=string]: nix: {file: "systems.nix", attribute: Name, args: {salt: _salt, hang: _hang}}
`
	writePackage(t, f, dir, "stuck", map[string]string{"systems.nix": systems, "deployment.cue": dep})
	t.Cleanup(func() {
		data, _ := os.ReadFile(h.Path("/run/interrupt-test-pids"))
		for _, p := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	salt := strconv.FormatInt(time.Now().UnixNano(), 36)
	activations := func() []string {
		data, _ := os.ReadFile(h.Path("/run/interrupt-test-activations"))
		return strings.Fields(string(data))
	}
	// start runs deploy of the hanging system and waits until its
	// activation has begun on the host.
	start := func() (*exec.Cmd, *bytes.Buffer, int) {
		t.Helper()
		n := len(activations())
		cmd := exec.Command(deployBin, "-C", dir, "-t", "salt="+salt, "-t", "hang=1", "deploy", "--nix-option", "substituters=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		backendtest.WaitFor(t, "the activation to begin", func() bool { return len(activations()) > n })
		return cmd, &out, len(activations())
	}

	if r := deploy(t, dir, "-t", "salt="+salt, "deploy", "--nix-option", "substituters="); r.code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", r.code, r.stderr)
	}
	before := state(t, h)

	t.Run("one interrupt rolls back", func(t *testing.T) {
		cmd, out, n := start()
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("deploy ended with %v, want exit 1", err)
		}
		if !strings.Contains(out.String(), "interrupted: stopping; activations under way are rolled back") || !strings.Contains(out.String(), "rolled-back") {
			t.Errorf("deploy said:\n%s\nwant the interrupt and the rollback reported", out)
		}
		// The previous system was activated again, and the host is as
		// it was.
		if got := activations()[n:]; len(got) != 2 || got[0] != "switch" || got[1] != before.current {
			t.Errorf("activations after the interrupt %q, want the previous system's switch", got)
		}
		if after := state(t, h); after.current != before.current || after.profile != before.profile || !slices.Equal(after.generations, before.generations) {
			t.Errorf("after the rollback the host is %+v, want as before: %+v", after, before)
		}
	})

	t.Run("a second interrupt quits at once", func(t *testing.T) {
		if err := os.WriteFile(h.Path("/run/interrupt-test-hang"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(h.Path("/run/interrupt-test-hang"))
		cmd, _, n := start()
		cmd.Process.Signal(os.Interrupt)
		// The rollback's activation of the previous system hangs too.
		backendtest.WaitFor(t, "the rollback to begin", func() bool { return len(activations()) > n })
		sent := time.Now()
		cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
			t.Errorf("deploy ended with %v, want it killed by the second interrupt", err)
		}
		if took := time.Since(sent); took > 5*time.Second {
			t.Errorf("deploy took %s to end after the second interrupt", took)
		}
	})
}
