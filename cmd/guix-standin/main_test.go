package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestATermRoundTrip(t *testing.T) {
	d := drv{
		outputs: map[string]string{"out": "/gnu/store/x-system"},
		srcs:    []string{"/gnu/store/y-configuration.scm"},
		system:  "x86_64-linux",
		builder: builderName,
		env:     map[string]string{"provenance": "(a \"b\")\n\t\\", "out": "/gnu/store/x-system"},
	}
	back, err := parseDrv(d.aterm())
	if err != nil {
		t.Fatal(err)
	}
	if back.aterm() != d.aterm() {
		t.Errorf("round trip changed the derivation:\n%s\n%s", back.aterm(), d.aterm())
	}
}

func TestStoreHash(t *testing.T) {
	h := storeHash("a", "b")
	if len(h) != 32 || strings.Trim(h, nixBase32) != "" {
		t.Errorf("storeHash = %q", h)
	}
	if storeHash("a", "b") != h || storeHash("ab") == h {
		t.Error("storeHash is not a function of its parts")
	}
}

// standin builds the program and returns a function running it with
// GUIX_STANDIN_ROOT set to a temporary directory, and that directory.
func standin(t *testing.T) (func(stdin string, args ...string) (string, error), string) {
	t.Helper()
	if _, err := exec.LookPath("guile"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set, so not skipping: guile is not on PATH")
		}
		t.Skip("skipping: guile is not on PATH (Debian package guile-3.0)")
	}
	bin := filepath.Join(t.TempDir(), "guix")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	root := t.TempDir()
	return func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "GUIX_STANDIN_ROOT="+root, "GUIX_STANDIN_LOG="+root+"/log")
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return stderr.String(), err
		}
		return strings.TrimSpace(string(out)), nil
	}, root
}

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStandin(t *testing.T) {
	guix, root := standin(t)
	dir := t.TempDir()
	cfg := write(t, dir+"/os.scm", `(operating-system (host-name "a"))`)
	lp := dir + "/modules"
	write(t, lp+"/m.scm", `(define-module (m))`)
	ch := write(t, dir+"/channels.scm", `(list (channel (name 'guix) (commit "1")))`)

	if out, _ := guix("", "--version"); !strings.Contains(out, "stand-in") || !strings.Contains(out, "not GNU Guix") {
		t.Errorf("--version = %q: it must say it is a stand-in", out)
	}
	drv := func(args ...string) string {
		t.Helper()
		out, err := guix("", append([]string{"system", "build", "-d", "--save-provenance"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return out
	}
	base := drv("-L", lp, cfg)
	if !strings.HasSuffix(base, "-system.drv") || drv("-L", lp, cfg) != base {
		t.Fatalf("derivation %q is not a deterministic system .drv", base)
	}
	if drv(cfg) == base {
		t.Error("the load path does not change the derivation")
	}
	if d, _ := guix("", "time-machine", "-C", ch, "--", "system", "build", "-d", "--save-provenance", "-L", lp, cfg); d == base {
		t.Error("the channels do not change the derivation")
	}
	write(t, lp+"/m.scm", `(define-module (m)) ; changed`)
	if drv("-L", lp, cfg) == base {
		t.Error("a load-path file's content does not change the derivation")
	}
	if out, err := guix("", "system", "build", "-d", write(t, dir+"/bad.scm", `(operating-system`)); err == nil || !strings.Contains(out, "unexpected end of input") {
		t.Errorf("a syntax error gave %q, %v", out, err)
	}

	// Generations, as Guix lays them out.
	cfg2 := write(t, dir+"/os2.scm", `(operating-system (host-name "b"))`)
	for _, c := range []string{cfg, cfg2} {
		if out, err := guix("", "system", "reconfigure", c); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	profile := filepath.Join(root, "var/guix/profiles/system")
	if out, err := guix("", "system", "switch-generation", "1"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	link, err := os.Readlink(profile)
	if err != nil || link != "system-1-link" {
		t.Errorf("profile -> %q, %v; want system-1-link", link, err)
	}
	fail := write(t, dir+"/fail.scm", `(operating-system (host-name "c") (services (list (standin-fail-activation))))`)
	if _, err := guix("", "system", "reconfigure", fail); err == nil {
		t.Error("reconfigure with standin-fail-activation succeeded")
	}
	if out, err := guix("", "system", "roll-back"); err != nil {
		t.Errorf("roll-back: %v: %s", err, out)
	}
	if link, _ := os.Readlink(profile); link != "system-2-link" {
		t.Errorf("after roll-back from generation 3 the profile is %q", link)
	}
}
