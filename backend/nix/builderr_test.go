package nix

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// TestBuildErrorShowsTheBuildersLog builds three hosts in one batch: a's
// system depends on a derivation whose builder fails, b's own builder
// fails, c builds. Each failed host's error carries the failed builder's
// output (which nix prints only unattributed, among the others', unless
// told not to), a's that of its dependency, b's its own and not a's.
func TestBuildErrorShowsTheBuildersLog(t *testing.T) {
	needNix(t)
	src := `{ salt }: let
  mk = name: script: attrs: derivation ({ inherit name salt; system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ]; } // attrs);
  dep = mk "dep" "echo the dependency broke; exit 1" {};
in {
  a = mk "a" "echo $dep > $out" { inherit dep; };
  b = mk "b" "echo host b broke >&2; exit 1" {};
  c = mk "c" "echo > $out" {};
}
`
	ts := fileTargets(t, src, "a", "b", "c")
	b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir()})
	instantiate(t, b, ts...)
	errs := b.Build(context.Background(), hosts.Local{}, ts)
	msg := func(i int) string {
		if errs[i] == nil {
			return ""
		}
		return errs[i].Error()
	}
	if m := msg(0); !strings.Contains(m, "the dependency broke") || strings.Contains(m, "host b broke") {
		t.Errorf("a: %q, want the dependency's log and not b's", m)
	}
	if m := msg(1); !strings.Contains(m, "host b broke") || strings.Contains(m, "the dependency broke") {
		t.Errorf("b: %q, want its builder's log and not the dependency's", m)
	}
	if errs[2] != nil {
		t.Errorf("c: %v, want built", errs[2])
	}
}

// fileTargets writes the Nix file src ({ salt }: an attribute set) into a
// new directory and returns a target for each of names, a host whose
// system is that attribute, built here, with the directory's name as salt.
func fileTargets(t *testing.T, src string, names ...string) []*backend.Target {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "hosts.nix")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []*backend.Target
	for _, name := range names {
		ts = append(ts, &backend.Target{Host: &schema.Host{
			Name: name, Build: "local", Activation: "switch",
			Nix: &schema.Nix{File: file, Attribute: name, Args: map[string]string{"salt": filepath.Base(dir)}},
		}})
	}
	return ts
}
