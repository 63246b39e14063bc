package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

// workload is the deployment both sides deploy: one Nix file of plain
// derivations (no nixpkgs), at the attribute paths NixOS uses.
//
// Every host's system depends on its own small etc derivation and on one of
// two applications; the applications sit on a chain of shared libraries, and
// application b on four more, so hosts differ in how many paths their
// closure has (which shows whether SSH round trips grow with it) and most
// paths are shared between hosts (which a batched build makes once).
//
// Every derivation takes the salt, so a new salt means nothing is built yet,
// locally or on any host.
type workload struct {
	names   []string
	shared  int // libraries on the shared chain
	sizeKiB int // payload of each library
}

// extraLibs are the libraries only application b's hosts have.
const extraLibs = 4

// nixFile is the Nix source; it takes the salt as --argstr salt.
func (w workload) nixFile() string {
	var names strings.Builder
	for _, n := range w.names {
		fmt.Fprintf(&names, " %q", n)
	}
	return fmt.Sprintf(`# Written by deploybench: test systems as plain derivations (/bin/sh as
# builder, no nixpkgs), at the attribute paths real NixOS uses.
{ salt }:
let
  names = [%[1]s ];
  size = %[2]d;

  mk = name: script: attrs: derivation ({
    inherit name salt;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" script ];
  } // attrs);

  # A library: a payload of size bytes and a reference to the one below.
  lib = name: dep: mk name ''
    mkdir -p $out/lib
    head -c ${toString size} /dev/zero | tr '\000' x > $out/lib/data
    echo "$salt" > $out/salt
    echo "$dep" > $out/lib/dep
  '' { inherit dep; };

  chain = prefix: n: base:
    if n == 0 then base else lib "${prefix}-${toString n}" (chain prefix (n - 1) base);

  sharedTop = chain "bench-lib" %[3]d "";
  apps = {
    a = lib "bench-app-a" sharedTop;
    b = lib "bench-app-b" (chain "bench-extra" %[4]d sharedTop);
  };

  etc = name: mk "bench-etc-${name}" ''
    mkdir -p $out
    echo "$hostName" > $out/hostname
  '' { hostName = name; };

  system = i: name: mk "nixos-system-${name}" ''
    mkdir -p $out/bin
    ln -s $app $out/sw
    ln -s $etc $out/etc
    cat > $out/bin/switch-to-configuration <<EOF
    #!/bin/sh
    # Stand-in for NixOS's switch-to-configuration (deploybench system).
    goal="\$1"
    mkdir -p /run/deploybench
    case "\$goal" in
      switch|test) ln -sfn $out /run/current-system ;;
      boot|dry-activate) ;;
      *) echo "switch-to-configuration: unknown goal \$goal" >&2; exit 2 ;;
    esac
    echo "\$goal $out" >> /run/deploybench/activations
    EOF
    sed -i 's/^    //' $out/bin/switch-to-configuration
    chmod +x $out/bin/switch-to-configuration
  '' {
    hostName = name;
    app = if i - (i / 2) * 2 == 0 then apps.a else apps.b;
    etc = etc name;
  };
in {
  nixosConfigurations = builtins.listToAttrs
    (builtins.genList (i: let name = builtins.elemAt names i; in {
      inherit name;
      value.config.system.build.toplevel = system i name;
    }) (builtins.length names));
}
`, names.String(), w.sizeKiB*1024, w.shared, extraLibs)
}

// deploymentCUE is the deployment's own file; the fleet's file adds every
// host's address, port and keys. The salt comes in as deploy -t salt=....
const deploymentCUE = `// Written by deploybench.
package bench

name: "deploybench"

_salt: string @tag(salt)

hosts: [Name=string]: nix: {
	file:      "bench.nix"
	attribute: "nixosConfigurations.\(Name).config.system.build.toplevel"
	args: salt: _salt
}
`

// write puts the Nix file and, for a deploy side, the CUE package for
// fleet f into dir.
func (w workload) write(dir string, f *fleet.Fleet) error {
	files := map[string]string{"bench.nix": w.nixFile()}
	if f != nil {
		src, err := f.CUE("bench")
		if err != nil {
			return err
		}
		files["deployment.cue"] = deploymentCUE
		files["localfleet.cue"] = string(src)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write workload: %w", err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			return fmt.Errorf("write workload: %w", err)
		}
	}
	return nil
}
