package nix

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/hosts"
)

// TestEvalErrorIsTheBrokenHostsOnly evaluates three hosts from one file, in
// one batch, where one host's system throws: nix stops at that attribute,
// so the batch fails; then each is evaluated alone, and only the broken
// host fails, with its own error.
func TestEvalErrorIsTheBrokenHostsOnly(t *testing.T) {
	needNix(t)
	src := `{ salt }: let
  sys = name: derivation { inherit name salt; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };
in {
  a = sys "a";
  b = throw "host b is broken";
  c = sys "c";
}
`
	ts := fileTargets(t, src, "a", "b", "c")
	b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir()})
	if n := len(b.groups(ts)); n != 1 {
		t.Fatalf("%d evaluation groups, want the three hosts in one batch", n)
	}
	errs := b.Instantiate(context.Background(), hosts.Local{}, ts)
	for i, tg := range ts {
		broken := tg.Host.Name == "b"
		switch {
		case broken && (errs[i] == nil || !strings.Contains(errs[i].Error(), "host b is broken")):
			t.Errorf("b: error %v, want nix's error about b", errs[i])
		case !broken && errs[i] != nil:
			t.Errorf("%s: %v, want evaluated despite b", tg.Host.Name, errs[i])
		case !broken && (!strings.HasSuffix(tg.Drv, "-"+tg.Host.Name+".drv") || tg.Out == ""):
			t.Errorf("%s: drv %q, out %q", tg.Host.Name, tg.Drv, tg.Out)
		}
	}
}

// A mistake every host shares is not evaluated once per host to say the
// same thing: once the first hosts evaluated alone all fail with the
// batch's error, the rest are given it as it is.
func TestSharedEvalErrorIsNotRepeatedPerHost(t *testing.T) {
	needNix(t)
	src := `{ salt }: builtins.listToAttrs (map (n: { name = "h${toString n}"; value = throw "broken everywhere"; }) (builtins.genList (n: n) 12))`
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("h%d", i))
	}
	ts := fileTargets(t, src, names...)
	b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: t.TempDir()})
	noted := 0
	for i, err := range b.Instantiate(context.Background(), hosts.Local{}, ts) {
		if err == nil || !strings.Contains(err.Error(), "broken everywhere") {
			t.Errorf("%s: %v, want the shared error", ts[i].Host.Name, err)
			continue
		}
		if strings.Contains(err.Error(), "not evaluated alone") {
			noted++
		}
	}
	if noted == 0 || noted > 12-sharedAfter {
		t.Errorf("%d hosts were given the shared error unevaluated, want between 1 and %d", noted, 12-sharedAfter)
	}
}
