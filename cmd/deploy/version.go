package main

import (
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build does); when it is not, the version comes from what the Go toolchain
// recorded in the binary.
var version string

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	bi, _ := debug.ReadBuildInfo()
	_, err := fmt.Fprintf(e.stdout, "deploy %s\n", versionOf(version, bi))
	return err
}

// versionOf is the version set with -ldflags, else the module's version (go
// install …@v1.2.3, or a pseudo-version with the commit when go build
// stamps VCS information), else the commit alone, else "dev".
func versionOf(set string, bi *debug.BuildInfo) string {
	if set != "" {
		return set
	}
	if bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "+dirty"
	}
	return "dev-" + rev
}
