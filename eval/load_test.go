package eval

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The example deployments load without error: a newcomer's first command
// must work.
func TestExamplesLoad(t *testing.T) {
	for _, dir := range []string{"../examples/forum/production", "../examples/forum/cd"} {
		t.Run(dir, func(t *testing.T) {
			d, err := Load(Options{Dir: dir})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if len(d.Hosts) == 0 {
				t.Fatal("no hosts")
			}
			for _, h := range d.Hosts {
				if h.Nix == nil || !filepath.IsAbs(h.Nix.File) {
					t.Errorf("host %s: nix file not resolved: %+v", h.Name, h.Nix)
				}
			}
		})
	}
}

// Relative paths resolve against the directory of the CUE file that sets
// them, across packages of a module.
func TestExamplePathsResolveFromSharedPackage(t *testing.T) {
	d, err := Load(Options{Dir: "../examples/forum/production"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs("../examples/forum/nix/forum.nix")
	for _, h := range d.Hosts {
		if h.Nix.File != want {
			t.Errorf("host %s: nix file %q, want %q", h.Name, h.Nix.File, want)
		}
	}
}

// A -t value reaches the deployment.
func TestTagsApply(t *testing.T) {
	d, err := Load(Options{Dir: "../examples/forum/cd", Tags: []string{"release=9"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range d.Hosts {
		if h.Nix.Args["release"] != "9" {
			t.Errorf("host %s: release %q, want 9", h.Name, h.Nix.Args["release"])
		}
	}
}

// Load of a large fleet stays fast: a regression guard far below the
// benchmark's goal, so that an accidentally quadratic step fails a test.
func TestLoadLargeFleetIsNotQuadratic(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	writeFleet(t, dir, 2000)
	start := time.Now()
	d, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Hosts) != 2000 {
		t.Fatalf("%d hosts", len(d.Hosts))
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("loading 2000 hosts took %v", el)
	}
}

// A directory that is not there is an Errors, as every load problem is.
func TestMissingDirectory(t *testing.T) {
	_, err := Load(Options{Dir: "testdata/no-such-dir", WorkDir: "."})
	var errs Errors
	if !errors.As(err, &errs) || !strings.Contains(err.Error(), "testdata/no-such-dir") {
		t.Fatalf("got %v", err)
	}
}

// An identity file under ~/ is in the home directory of the user running
// deploy, as ssh reads it.
func TestIdentityFileUnderHome(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, "deploy_key"), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `package d
name: "t"
hosts: web: {address: "10.0.0.1", ssh: identityFile: "~/deploy_key", nix: {file: "s.nix", attribute: "a"}}
`
	for name, body := range map[string]string{"d.cue": src, "s.nix": "{}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got, want := d.Hosts[0].SSH.IdentityFile, filepath.Join(home, "deploy_key"); got != want {
		t.Errorf("identityFile %q, want %q", got, want)
	}
}

// An identity file must exist only for the hosts a run connects to
// (Options.KeysOf): validate, eval and build run where keys may not be.
func TestIdentityFileCheckedOnlyForHostsConnectedTo(t *testing.T) {
	dir := "testdata/broken/58-bad-ssh-settings"
	want := `deployment.cue:12:8: hosts.identity.ssh.identityFile: identity file `
	_, err := Load(Options{Dir: dir, WorkDir: dir})
	if err == nil || strings.Contains(err.Error(), "identity file") {
		t.Errorf("without KeysOf: %v; want the other errors, none about the identity file", err)
	}
	_, err = Load(Options{Dir: dir, WorkDir: dir, KeysOf: []string{"identity"}})
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `nosuch_key" does not exist`) {
		t.Errorf("with KeysOf: %v; want %s... nosuch_key does not exist", err, want)
	}
}
