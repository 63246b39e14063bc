package nix

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
)

// profileLinks lists a profile's directory: every link and its target,
// without the lock files.
func profileLinks(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatalf("%s is not a link: %v", e.Name(), err)
		}
		out = append(out, e.Name()+" -> "+target)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestSetProfileScriptMatchesNixEnv runs the same sequence of systems
// through our profile script and through the real nix-env -p PROFILE --set,
// and compares the generations they leave: numbering, reuse of the last
// generation for the same system, gaps, and links that are not
// generations.
func TestSetProfileScriptMatchesNixEnv(t *testing.T) {
	for _, tool := range []string{"nix-env", "nix-store", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			backendtest.Skip(t, tool+" not found on PATH")
		}
	}
	if os.Geteuid() != 0 {
		backendtest.Skip(t, "needs root to add paths to the store")
	}
	// Three real store paths.
	var systems []string
	for _, name := range []string{"a", "b", "c"} {
		f := filepath.Join(t.TempDir(), "cuedeploy-profile-test-"+name)
		if err := os.WriteFile(f, []byte("profile test "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("nix-store", "--add", f).Output()
		if err != nil {
			t.Fatalf("nix-store --add: %v", err)
		}
		systems = append(systems, strings.TrimSpace(string(out)))
	}
	a, b, c := systems[0], systems[1], systems[2]

	ours, theirs := t.TempDir(), t.TempDir()
	for _, dir := range []string{ours, theirs} {
		// Not generations: both must leave them alone.
		if err := os.Symlink(a, filepath.Join(dir, "system-old-link")); err != nil {
			t.Fatal(err)
		}
	}
	// begin is what the script says before it changes the profile: the
	// generation, and whether it makes it.
	set := func(step int, system, begin string) {
		t.Helper()
		script := setProfileScript(filepath.Join(ours, "system"))
		cmd := exec.Command("sh", "-c", script, "sh", "switch", system)
		cmd.Stdin = strings.NewReader(confirmLine + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("step %d: our profile script: %v\n%s", step, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != begin {
			t.Errorf("step %d: the script said %q, want %q", step, got, begin)
		}
		if out, err := exec.Command("nix-env", "-p", filepath.Join(theirs, "system"), "--set", system).CombinedOutput(); err != nil {
			t.Fatalf("step %d: nix-env --set: %v\n%s", step, err, out)
		}
		if got, want := profileLinks(t, ours), profileLinks(t, theirs); got != want {
			t.Fatalf("step %d (%s): our profile\n%s\nnix-env's\n%s", step, filepath.Base(system), got, want)
		}
	}
	set(1, a, "begin 1 new") // the first generation
	set(2, a, "begin 1")     // the same system again: no new generation
	set(3, b, "begin 2 new")
	set(4, a, "begin 3 new") // back to a: a new generation, not the old one
	// A gap, as --delete-generations leaves: numbering goes on from the
	// highest.
	for _, dir := range []string{ours, theirs} {
		if err := os.Remove(filepath.Join(dir, "system-2-link")); err != nil {
			t.Fatal(err)
		}
	}
	set(5, c, "begin 4 new")
	if got := profileLinks(t, ours); !strings.Contains(got, "system -> system-4-link") {
		t.Errorf("the profile does not point at generation 4:\n%s", got)
	}
}

// TestProfileSwitchIsAtomic switches a profile link back and forth with the
// script's ln -sfn while another reader keeps reading it: the link must
// never be missing, as nix-env's rename never leaves it missing.
func TestProfileSwitchIsAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "system")
	if err := os.Symlink("system-1-link", p); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	missing := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				missing <- nil
				return
			default:
			}
			if _, err := os.Readlink(p); err != nil {
				missing <- err
				return
			}
		}
	}()
	script := `for i in $(seq 300); do ln -sfn system-2-link "$1" && ln -sfn system-1-link "$1" || exit; done`
	out, err := exec.Command("sh", "-c", script, "sh", p).CombinedOutput()
	close(stop)
	if err != nil {
		t.Fatalf("ln -sfn: %v: %s", err, out)
	}
	if err := <-missing; err != nil {
		t.Fatalf("the profile link was missing while ln -sfn replaced it: %v", err)
	}
}
