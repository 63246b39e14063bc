package nix

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// TestServeCopyIsCheckedByTheHost sends a store path to a real host's
// nix-store --serve: with a wrong NAR hash the host refuses it and the
// error says so; with the right one the host has it afterwards, and asking
// again finds nothing missing.
func TestServeCopyIsCheckedByTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		backendtest.Skip(t, "needs root to add paths to the store")
	}
	if _, err := exec.LookPath("nix-store"); err != nil {
		backendtest.Skip(t, "nix-store not found on PATH")
	}
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"serve-1"}})
	h := f.Hosts[0]
	ctx := context.Background()
	conn, err := hosts.Dial(ctx, hosts.DialOptions{Name: h.Name, Address: fleet.Address, Port: h.Port, IdentityFile: f.ClientKey, HostKey: h.HostKey})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	src := filepath.Join(t.TempDir(), "cuedeploy-serve-test")
	if err := os.WriteFile(src, []byte("checked by the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nix-store", "--add", src).Output()
	if err != nil {
		t.Fatalf("nix-store --add: %v", err)
	}
	path := strings.TrimSpace(string(out))
	b := New(Options{})
	info, err := b.infoOf(ctx, hosts.Local{}, []string{path})
	if err != nil {
		t.Fatal(err)
	}

	copyOnce := func(in pathInfo) ([]string, error) {
		s := startSession(ctx, conn, serveArgv())
		missing, err := missingPaths(s, []string{path}, false) // greets the host first
		if err != nil {
			return nil, err
		}
		if err := s.addPaths(missing, map[string]pathInfo{path: in}); err != nil {
			s.wait()
			return missing, err
		}
		return missing, s.wait()
	}

	bad := info[path]
	bad.narHash = "sha256:" + strings.Repeat("0", 64)
	if _, err := copyOnce(bad); err == nil || !strings.Contains(err.Error(), "hash mismatch") {
		t.Fatalf("copy with a wrong NAR hash: error %v, want the host's hash mismatch", err)
	}
	missing, err := copyOnce(info[path])
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if len(missing) != 1 {
		t.Fatalf("the host lacked %v, want just %s", missing, path)
	}
	if missing, err = copyOnce(info[path]); err != nil || len(missing) != 0 {
		t.Fatalf("second copy: missing %v, error %v; want nothing missing", missing, err)
	}
}
