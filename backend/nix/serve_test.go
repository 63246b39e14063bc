package nix

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// TestCopyIsCheckedByTheHost sends a store path (larger than one frame of
// the daemon protocol) to a real host, through its nix-store --serve and
// through its nix daemon, its archive streamed from the store and from
// memory (as for a path several hosts lack): with a wrong NAR hash the
// host refuses it and the error says so; with the right one the host has
// it afterwards, and asking again finds nothing missing.
func TestCopyIsCheckedByTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		backendtest.Skip(t, "needs root to add paths to the store")
	}
	if _, err := exec.LookPath("nix-store"); err != nil {
		backendtest.Skip(t, "nix-store not found on PATH")
	}
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"serve-1"}})
	h := f.Hosts[0]
	ctx := context.Background()
	conn := dialHost(t, f, h)

	src := filepath.Join(t.TempDir(), "cuedeploy-serve-test")
	if err := os.WriteFile(src, []byte(strings.Repeat("checked by the host\n", 10000)), 0o644); err != nil {
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

	var nars *narCache // nil: from the store
	serve := func(in pathInfo) ([]string, error) {
		s := startSession(ctx, conn, serveArgv())
		missing, err := s.missing([]string{path}, nil, false) // greets the host first
		if err != nil {
			return nil, err
		}
		if err := s.addPaths(missing, map[string]pathInfo{path: in}, nars); err != nil {
			s.wait()
			return missing, err
		}
		return missing, s.wait()
	}
	daemon := func(in pathInfo) ([]string, error) {
		dc, err := openDaemon(ctx, conn)
		if err != nil {
			return nil, err
		}
		defer dc.Close()
		missing, err := dc.missing([]string{path}, nil, false)
		if err != nil {
			return nil, err
		}
		before := dc.sent.n
		if err := dc.addPaths(missing, map[string]pathInfo{path: in}, nars); err != nil {
			return missing, err
		}
		if len(missing) == 1 {
			// The operation and its fields, then the archive in frames.
			if got, want := dc.sent.n-before, in.narSize+daemonFraming(in.narSize); got <= want || got > want+1024 {
				t.Errorf("sent %d bytes for a %d-byte archive; want its frames (%d bytes) and the operation's fields", got, in.narSize, want)
			}
		}
		return missing, nil
	}
	for _, c := range []struct {
		name   string
		copy   func(pathInfo) ([]string, error)
		memory bool
	}{{"serve", serve, false}, {"daemon", daemon, false}, {"serve/memory", serve, true}, {"daemon/memory", daemon, true}} {
		t.Run(c.name, func(t *testing.T) {
			nars = nil
			if c.memory {
				nars = newNARCache()
				nars.share([]string{path}, []string{path})
				if _, ok := nars.get(path, info[path]); !ok {
					t.Fatalf("the archive of %s, which two hosts lack, is not kept", path)
				}
			}
			bad := info[path]
			bad.narHash = "sha256:" + strings.Repeat("0", 64)
			if _, err := c.copy(bad); err == nil || !strings.Contains(err.Error(), "hash mismatch") {
				t.Fatalf("copy with a wrong NAR hash: error %v, want the host's hash mismatch", err)
			}
			missing, err := c.copy(info[path])
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			if len(missing) != 1 {
				t.Fatalf("the host lacked %v, want just %s", missing, path)
			}
			if missing, err = c.copy(info[path]); err != nil || len(missing) != 0 {
				t.Fatalf("second copy: missing %v, error %v; want nothing missing", missing, err)
			}
			// The next channel starts from a host without the path.
			if out, err := hosts.Output(ctx, conn, hosts.Cmd{Argv: []string{"nix-store", "--delete", path}}); err != nil {
				t.Fatalf("delete %s on the host: %v: %s", path, err, out)
			}
		})
	}
}

// TestWaitDropsUnreadOutput: a session whose output is not read to the end
// (a reply cut short by an error) still ends, with the command's status.
func TestWaitDropsUnreadOutput(t *testing.T) {
	s := startSession(context.Background(), hosts.Local{}, []string{"sh", "-c", "head -c 1000000 /dev/zero; exit 3"})
	ended := make(chan error, 1)
	go func() { ended <- s.wait() }()
	select {
	case err := <-ended:
		var ee *hosts.ExitError
		if !errors.As(err, &ee) || ee.Code != 3 {
			t.Errorf("wait: %v, want the command's exit status 3", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("wait hangs on output nobody reads")
	}
}
