package eval

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary CUE text and -t values to Load: it must return a
// deployment or Errors, never panic and never hang. The seeds (every
// corpus file and the examples) run in every go test; go test -fuzz
// FuzzLoad ./eval explores further.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/broken/*/*.cue")
	more, _ := filepath.Glob("../examples/forum/*/*.cue")
	for _, s := range append(seeds, more...) {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "")
	}
	f.Add("package x\n_a: int @tag(a, type=int)\nname: \"n\"\nhosts: {}\n", "a=1")
	f.Add("name: \"n\"\nhosts: h: {address: \"a\", nix: flake: \"x#y\"}", "a")
	f.Add("", "=")
	f.Fuzz(func(t *testing.T, src, tag string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "deployment.cue"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		o := Options{Dir: dir, WorkDir: dir}
		if tag != "" {
			o.Tags = []string{tag}
		}
		done := make(chan error, 1)
		go func() {
			_, err := Load(o)
			done <- err
		}()
		select {
		case err := <-done:
			var errs Errors
			if err != nil && !errors.As(err, &errs) {
				t.Fatalf("error is %T, not Errors: %v", err, err)
			}
			for _, e := range errs {
				if e.Msg == "" {
					t.Fatalf("error without a message: %#v", e)
				}
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("Load did not return within 20s for %q", src)
		}
	})
}
