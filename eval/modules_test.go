package eval

import (
	"os"
	"path/filepath"
	"testing"
)

// TestShippedModules loads a package outside any CUE module that imports
// cuedeploy.dev/modules/nixos, with a file and a flake host.
func TestShippedModules(t *testing.T) {
	dir := t.TempDir()
	src := `package d

import "cuedeploy.dev/modules/nixos"

name: "m"
hosts: {
	"web-1": {address: "a", nix: (nixos.#System & {name: "web-1", file: "sys.nix", args: {x: "1"}}).nix}
	"web-2": {address: "b", nix: (nixos.#System & {name: "web-2", flake: "github:org/fleet"}).nix}
}
`
	for name, body := range map[string]string{"d.cue": src, "sys.nix": "{}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Load(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := d.Hosts[0].Nix, d.Hosts[1].Nix
	if w1.File != filepath.Join(dir, "sys.nix") || w1.Attribute != `nixosConfigurations."web-1".config.system.build.toplevel` || w1.Args["x"] != "1" {
		t.Errorf("web-1: %+v", w1)
	}
	if w2.Flake != "github:org/fleet#web-2" || w2.File != "" {
		t.Errorf("web-2: %+v", w2)
	}
}
