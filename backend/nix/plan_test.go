package nix

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func host(name string, mod func(*schema.Host)) *schema.Host {
	h := &schema.Host{
		Name: name, Address: "10.0.0.1", SSH: schema.SSH{User: "root", Port: 22},
		Build: "local", Activation: "switch",
		Nix: &schema.Nix{File: "/srv/fleet/nix/systems.nix", Attribute: "nixosConfigurations." + name + ".config.system.build.toplevel"},
	}
	if mod != nil {
		mod(h)
	}
	return h
}

func targets(hs ...*schema.Host) []*backend.Target {
	ts := make([]*backend.Target, len(hs))
	for i, h := range hs {
		ts[i] = &backend.Target{Host: h, Deployment: "fleet"}
	}
	return ts
}

// TestPlanGolden pins the exact argv of every step under each option.
func TestPlanGolden(t *testing.T) {
	cases := map[string][]*backend.Target{
		"switch-local":               targets(host("web-1", nil)),
		"batched-two-hosts-one-file": targets(host("web-1", nil), host("web-2", nil)),
		"args-split-batches": targets(
			host("web-1", func(h *schema.Host) { h.Nix.Args = map[string]string{"release": "2", "env": "prod"} }),
			host("web-2", func(h *schema.Host) { h.Nix.Args = map[string]string{"release": "3"} })),
		"boot":         targets(host("web-1", func(h *schema.Host) { h.Activation = "boot" })),
		"test":         targets(host("web-1", func(h *schema.Host) { h.Activation = "test" })),
		"dry-activate": targets(host("web-1", func(h *schema.Host) { h.Activation = "dry-activate" })),
		"build-target": targets(host("web-1", func(h *schema.Host) { h.Build = "target" })),
		"substitute":   targets(host("web-1", func(h *schema.Host) { h.Substitute = true })),
		"flake": targets(
			host("web-1", func(h *schema.Host) { h.Nix = &schema.Nix{Flake: "/srv/fleet#web-1"} }),
			host("web-2", func(h *schema.Host) { h.Nix = &schema.Nix{Flake: "/srv/fleet#web-2"} })),
		"instantiated": func() []*backend.Target {
			ts := targets(host("web-1", nil))
			ts[0].Drv = "/nix/store/aaaa-nixos-system-web-1.drv"
			ts[0].Out = "/nix/store/bbbb-nixos-system-web-1"
			return ts
		}(),
	}
	b := New(Options{NixOptions: map[string]string{"substituters": ""}})
	for name, ts := range cases {
		t.Run(name, func(t *testing.T) {
			got := marshal(t, b.Plan(ts))
			if again := marshal(t, b.Plan(ts)); again != got {
				t.Fatal("Plan is not deterministic")
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(want) != got {
				t.Errorf("plan differs from %s (go test -update to accept):\n%s", golden, got)
			}
		})
	}
}

func TestCheckRejectsArgsOnFlake(t *testing.T) {
	h := host("web-1", func(h *schema.Host) { h.Nix = &schema.Nix{Flake: ".#web-1", Args: map[string]string{"a": "b"}} })
	if errs := New(Options{}).Check(h); len(errs) != 1 || errs[0].Path != "nix.args" {
		t.Errorf("Check = %+v, want one error at nix.args", errs)
	}
	if errs := New(Options{}).Check(host("web-1", nil)); len(errs) != 0 {
		t.Errorf("Check of a plain host = %+v, want none", errs)
	}
}

// marshal encodes v as deploy eval --json does.
func marshal(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
