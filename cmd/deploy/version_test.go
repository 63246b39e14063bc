package main

import (
	"debug/buildinfo"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "7e6d46554bbf6637f756ffb364aff00cb826d932"
	for _, c := range []struct {
		name, set string
		bi        *debug.BuildInfo
		want      string
	}{
		{"ldflags win", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v1.2.3"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v0.9.0"},
		{"pseudo-version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261123160033-7e6d46554bbf+dirty"}, Settings: vcs(rev, "true")},
			"v0.0.0-20261123160033-7e6d46554bbf+dirty"},
		{"commit only", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "dev-7e6d46554bbf"},
		{"modified commit", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "dev-7e6d46554bbf+dirty"},
		{"nothing recorded", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"no build info", "", nil, "dev"},
	} {
		if got := versionOf(c.set, c.bi); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// TestVersionCommand builds deploy as a user would and checks what
// `deploy version` prints.
func TestVersionCommand(t *testing.T) {
	build := func(t *testing.T, flags ...string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "deploy")
		argv := append(append([]string{"build"}, flags...), "-o", bin, ".")
		if out, err := exec.Command("go", argv...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return bin
	}
	version := func(t *testing.T, bin string) string {
		t.Helper()
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", bin, err)
		}
		return string(out)
	}

	t.Run("ldflags", func(t *testing.T) {
		t.Parallel()
		if got := version(t, build(t, "-ldflags=-X main.version=v9.8.7")); got != "deploy v9.8.7\n" {
			t.Errorf("built with -X main.version=v9.8.7: %q", got)
		}
	})
	t.Run("commit", func(t *testing.T) {
		t.Parallel()
		if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
			t.Skipf("not in a git checkout (%v): no commit to stamp", err)
		}
		bin := build(t, "-buildvcs=true")
		bi, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		var rev string
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
		if len(rev) < 12 {
			t.Fatalf("go build -buildvcs=true recorded no commit: %v", bi.Settings)
		}
		if got := version(t, bin); !strings.HasPrefix(got, "deploy ") || !strings.Contains(got, rev[:12]) {
			t.Errorf("built from commit %s without -ldflags: %q; want the commit", rev, got)
		}
	})
}
