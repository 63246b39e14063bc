package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/schema"
)

// loadBoth loads dir through the fast path (which may decline) and through
// CUE alone.
func loadBoth(t *testing.T, o Options) (fast *schema.Deployment, fastOK bool, slow *schema.Deployment, slowErr error) {
	t.Helper()
	ls, err := newLoader(o)
	if err != nil {
		t.Fatal(err)
	}
	ls.slowOnly = true
	slow, slowErr = ls.load()
	lf, _ := newLoader(o)
	d, err := lf.load()
	return d, err == nil, slow, slowErr
}

// TestFastPathAgrees checks that the fast path decodes valid deployments
// exactly as the full CUE path does, and never accepts a broken one.
func TestFastPathAgrees(t *testing.T) {
	dirs := []Options{
		{Dir: "../examples/forum/production"},
		{Dir: "../examples/forum/cd"},
		{Dir: "../examples/forum/cd", Tags: []string{"release=9", "failActivation=forum-2"}},
		{Dir: "../examples/forum/mixed"},
	}
	// A deployment that leans on every default and sets every field.
	gen := t.TempDir()
	os.WriteFile(filepath.Join(gen, "s.nix"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(gen, "os.scm"), []byte("(operating-system)"), 0o644)
	os.WriteFile(filepath.Join(gen, "k"), []byte("a private key"), 0o600)
	src := `package gen
name: "gen"
hosts: {
	plain: {address: "a", nix: {file: "s.nix", attribute: "x"}}
	full: {
		address: "b", tags: ["t1", "x/y:z"], build: "target", activation: "boot", timeout: "1m30s", substitute: true
		ssh: {user: "deploy", port: 2222, identityFile: "k", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIIfWomzSCpWyuyaNDBpFtbntFUuWXNC4rLsjpCUHMK key", jumpHost: "ops@bastion:2222", jumpHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIIfWomzSCpWyuyaNDBpFtbntFUuWXNC4rLsjpCUHMK", sudo: false}
		nix: {file: "s.nix", attribute: "y", args: {a: "1"}}
	}
	nonroot: {address: "c", ssh: user: "ops", nix: flake: "github:example/fleet#c"}
	g: {address: "d", guix: {config: "os.scm", loadPath: ["."], system: "aarch64-linux", authorize: true}}
	for i in [1, 2, 3] {"gen-\(i)": {address: "10.0.0.\(i)", tags: ["gen"], nix: {file: "s.nix", attribute: "g\(i)"}}}
}
`
	os.WriteFile(filepath.Join(gen, "d.cue"), []byte(src), 0o644)
	dirs = append(dirs, Options{Dir: gen})
	for _, o := range dirs {
		t.Run(strings.Join(append([]string{o.Dir}, o.Tags...), " "), func(t *testing.T) {
			fast, ok, slow, slowErr := loadBoth(t, o)
			if slowErr != nil {
				t.Fatalf("the full path rejects a valid deployment: %v", slowErr)
			}
			if !ok {
				t.Fatalf("the fast path failed where the full path did not")
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Errorf("the paths disagree:\nfast %s\nslow %s", dump(fast), dump(slow))
			}
			l, _ := newLoader(o)
			l.load() // sets l.user
			if _, took := l.fast(l.user); !took {
				t.Errorf("the fast path declined a valid deployment (correct, but slow)")
			}
		})
	}
}

func dump(d *schema.Deployment) string {
	if d == nil {
		return "<nil>"
	}
	var b strings.Builder
	for _, h := range d.Hosts {
		fmt.Fprintf(&b, "%+v nix=%+v guix=%+v\n", h, h.Nix, h.Guix)
	}
	return b.String()
}

// TestFastPatternsMatchSchema keeps the fast path's patterns those of the
// schema.
func TestFastPatternsMatchSchema(t *testing.T) {
	for _, re := range []string{fastName.String(), fastTag.String(), fastTimeout.String(), fastHostKey.String(), fastFlake.String()} {
		cue := `=~"` + strings.ReplaceAll(re, `\`, `\\`) + `"`
		if !strings.Contains(schema.Source, cue) {
			t.Errorf("schema.cue has no %s: the fast path and the schema disagree", cue)
		}
	}
}
