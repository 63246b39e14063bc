package eval

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// deployBinary builds cmd/deploy once for the tests that run it as a user
// does.
func deployBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the deploy binary")
	}
	bin := filepath.Join(t.TempDir(), "deploy")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/deploy")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// deploy validate shows a broken case's errors on stderr, exactly as the
// golden says, with exit code 2; the examples pass with exit code 0.
func TestValidateCommand(t *testing.T) {
	bin := deployBinary(t)
	cases, _ := filepath.Glob("testdata/broken/*")
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "want"))
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"validate"}
			for _, tag := range caseLines(t, filepath.Join(dir, "tags")) {
				args = append(args, "-t", tag)
			}
			pkg := "."
			if sub := caseLines(t, filepath.Join(dir, "dir")); len(sub) > 0 {
				pkg = sub[0]
			}
			args = append(args, pkg)
			code, stdout, stderr := runIn(t, dir, bin, args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2\nstderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout is not empty: %q", stdout)
			}
			n := strings.Count(string(want), "\n")
			summary := "deploy: 1 error in the deployment; nothing was touched\n"
			if n != 1 {
				summary = "deploy: " + strconv.Itoa(n) + " errors in the deployment; nothing was touched\n"
			}
			if stderr != string(want)+summary {
				t.Errorf("stderr:\n%s\nwant:\n%s%s", stderr, want, summary)
			}
		})
	}
	for _, dir := range []string{"production", "cd"} {
		t.Run("examples/forum/"+dir, func(t *testing.T) {
			code, stdout, stderr := runIn(t, "../examples/forum", bin, "validate", dir)
			if code != 0 || !strings.HasPrefix(stdout, "ok "+dir+": deployment ") {
				t.Errorf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
		})
	}
}

func runIn(t *testing.T, dir, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, o.String(), e.String()
}
