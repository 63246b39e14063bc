package nix

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/hosts"
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
	// said is what the script says before it changes the profile: the
	// generation, and whether it makes it.
	set := func(step int, system, said string) {
		t.Helper()
		script := setProfileScript(filepath.Join(ours, "system"))
		out, err := exec.Command("sh", "-c", script, "sh", "switch", system).CombinedOutput()
		if err != nil {
			t.Fatalf("step %d: our profile script: %v\n%s", step, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != said {
			t.Errorf("step %d: the script said %q, want %q", step, got, said)
		}
		if out, err := exec.Command("nix-env", "-p", filepath.Join(theirs, "system"), "--set", system).CombinedOutput(); err != nil {
			t.Fatalf("step %d: nix-env --set: %v\n%s", step, err, out)
		}
		if got, want := profileLinks(t, ours), profileLinks(t, theirs); got != want {
			t.Fatalf("step %d (%s): our profile\n%s\nnix-env's\n%s", step, filepath.Base(system), got, want)
		}
	}
	set(1, a, "generation 1 new") // the first generation
	set(2, a, "generation 1")     // the same system again: no new generation
	set(3, b, "generation 2 new")
	set(4, a, "generation 3 new") // back to a: a new generation, not the old one
	// A gap, as --delete-generations leaves: numbering goes on from the
	// highest.
	for _, dir := range []string{ours, theirs} {
		if err := os.Remove(filepath.Join(dir, "system-2-link")); err != nil {
			t.Fatal(err)
		}
	}
	set(5, c, "generation 4 new")
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

// TestActivationWaitsForTheAnswer runs the activation script (goal test,
// which leaves the profile alone) for a stand-in system: it says begin and
// activates only once answered yes; without an answer, or with another
// one, it ends with nothing run. The system's activation gets no standard
// input.
func TestActivationWaitsForTheAnswer(t *testing.T) {
	system := t.TempDir()
	ran := filepath.Join(t.TempDir(), "ran")
	stc := "#!/bin/sh\nif read -r line; then echo \"read $line\" >&2; fi\necho \"$1\" > " + hosts.ShellQuote(ran) + "\n"
	if err := os.MkdirAll(filepath.Join(system, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(system, "bin", "switch-to-configuration"), []byte(stc), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stdin string
		runs  bool
	}{
		{"", false},
		{"no\n", false},
		{confirmLine + "\n", true},
		{confirmLine + "\nmore input\n", true},
	} {
		os.Remove(ran)
		cmd := exec.Command("sh", "-c", activateScript("test", ""), "sh", "test", system)
		cmd.Stdin = strings.NewReader(tc.stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		_, statErr := os.Stat(ran)
		// The begin line names the script's process (see backend.StopArgv).
		if want := fmt.Sprintf("%s %d\n", beginLine, cmd.Process.Pid); string(out) != want || (err == nil) != tc.runs || (statErr == nil) != tc.runs {
			t.Errorf("answer %q: said %q, exit %v, ran %v; want it to say %q and run: %v", tc.stdin, out, err, statErr == nil, want, tc.runs)
		}
		if strings.Contains(stderr.String(), "read ") {
			t.Errorf("answer %q: the activation read %q from the deployer", tc.stdin, stderr.String())
		}
	}
}

// TestProfileLockStaleFileIsOpenedAgain holds the profile's lock as nix-env
// does and, as nix-env does when it is done, deletes the lock file and
// marks it stale while still holding it: the script, which was waiting,
// must then lock the file at the path, not the deleted one it had opened.
func TestProfileLockStaleFileIsOpenedAgain(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		backendtest.Skip(t, "flock not found on PATH")
	}
	dir := t.TempDir()
	profile, lock, held := filepath.Join(dir, "system"), filepath.Join(dir, "system.lock"), filepath.Join(dir, "held")
	system := t.TempDir()

	// Like nix-env: lock, work, then unlink the lock file and write to it
	// before letting go.
	holder := exec.Command("sh", "-c", `exec 9>>"$1" && flock 9 && sleep 0.5 && rm "$1" && echo d >&9`, "sh", lock)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the holder has the lock
	script := setProfileScript(profile) + `; touch "$3"; sleep 2`
	ours := exec.Command("sh", "-c", script, "sh", "switch", system, held)
	if err := ours.Start(); err != nil {
		t.Fatal(err)
	}
	defer ours.Wait()
	if err := holder.Wait(); err != nil {
		t.Fatal(err)
	}
	backendtest.WaitFor(t, "the script to go on after the lock was let go", func() bool {
		_, err := os.Stat(held)
		return err == nil
	})
	// While the script goes on, the lock file at the path is locked.
	if err := exec.Command("flock", "-n", lock, "true").Run(); err == nil {
		t.Error("the lock file at the path was free while the script held the profile's lock: it held the deleted one")
	}
}
