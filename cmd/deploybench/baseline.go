package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
)

// loopScript is the baseline: what people deploy with when they have no
// tool, a serial shell loop, host after host: nix-build, nix-copy-closure,
// then activation over ssh. It has no no-op detection; a second pass does the
// same work again.
const loopScript = `#!/usr/bin/env bash
# Written by deploybench: the baseline serial shell loop.
# usage: loop.sh SALT; the hosts are listed at the end.
set -euo pipefail
file=%[1]s
links=%[2]s
salt=$1

deploy_host() { # NAME SSH-OPTION...
	local name=$1 out
	shift
	out=$(nix-build "$file" -A "nixosConfigurations.$name.config.system.build.toplevel" \
		--argstr salt "$salt" --option substituters '' -o "$links/$name")
	NIX_SSHOPTS="$*" nix-copy-closure --to %[3]s "$out"
	ssh -n "$@" %[3]s "nix-env -p /nix/var/nix/profiles/system --set $out && $out/bin/switch-to-configuration switch"
}

`

// writeLoop writes the loop for fleet f into dir and returns its path.
func writeLoop(dir, nixFile string, f *fleet.Fleet) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, loopScript, hosts.ShellQuote(nixFile), hosts.ShellQuote(filepath.Join(dir, "result")),
		hosts.ShellQuote(fleet.User+"@"+fleet.Address))
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "deploy_host %s %s\n", hosts.ShellQuote(h.Name), hosts.ShellJoin(f.SSHOptions(h)))
	}
	if err := os.MkdirAll(filepath.Join(dir, "result"), 0o755); err != nil {
		return "", fmt.Errorf("write loop: %w", err)
	}
	path := filepath.Join(dir, "loop.sh")
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		return "", fmt.Errorf("write loop: %w", err)
	}
	return path, nil
}

// loopSystems returns the system the loop built for each host, from its
// nix-build result links.
func loopSystems(dir string, f *fleet.Fleet) (map[string]string, error) {
	m := map[string]string{}
	for _, h := range f.Hosts {
		out, err := os.Readlink(filepath.Join(dir, "result", h.Name))
		if err != nil {
			return nil, fmt.Errorf("read the loop's result: %w", err)
		}
		m[h.Name] = out
	}
	return m, nil
}
