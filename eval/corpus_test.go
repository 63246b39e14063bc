package eval

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	// The backends' own checks (a goal Guix cannot honour) are part of
	// what a load reports, as in the deploy command.
	_ "cuedeploy.dev/cuedeploy/backend/guix"
	_ "cuedeploy.dev/cuedeploy/backend/nix"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// A broken case is a directory under testdata/broken holding a deployment
// and the exact text a user sees:
//
//	want   the error, file names relative to the case directory
//	dir    optional: the package directory inside the case (default: the case itself)
//	tags   optional: -t values, one NAME=VALUE a line
func TestBrokenCorpus(t *testing.T) {
	cases, err := filepath.Glob("testdata/broken/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 30 {
		t.Errorf("the corpus has %d cases; it must have at least 30", len(cases))
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			got := loadCase(t, dir)
			wantFile := filepath.Join(dir, "want")
			if *update {
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run go test -run TestBrokenCorpus -update)", err)
			}
			if got != string(want) {
				t.Errorf("error text differs\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

// loadCase loads the case in dir and returns what a user would read.
func loadCase(t *testing.T, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Dir: abs, WorkDir: abs, Tags: caseLines(t, filepath.Join(dir, "tags"))}
	if sub := caseLines(t, filepath.Join(dir, "dir")); len(sub) > 0 {
		o.Dir = filepath.Join(abs, sub[0])
	}
	d, err := Load(o)
	if err == nil {
		t.Fatalf("loaded %d hosts with no error; a broken case must fail", len(d.Hosts))
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not Errors: %v", err, err)
	}
	for _, e := range errs {
		if e.Msg == "" {
			t.Errorf("error without a message: %#v", e)
		}
		if strings.Contains(e.Pos.File, schemaDir) || strings.Contains(e.Msg, schemaDir) {
			t.Errorf("error points into the schema: %v", e)
		}
	}
	return errs.Error() + "\n"
}

func caseLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
