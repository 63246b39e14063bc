package guix

// The argv of every command the backend runs. These functions are pure and
// deterministic; Plan and the methods that run commands share them.

import (
	"path"
	"sort"
	"strings"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/schema"
)

// SigningKey is the deployer's public archive key, which Authorize makes
// trusted on the host.
const SigningKey = "/etc/guix/signing-key.pub"

// guix returns the argv of a guix command, under `guix time-machine -C
// channels --` when channels is set.
func guix(channels string, args ...string) []string {
	argv := []string{"guix"}
	if channels != "" {
		argv = append(argv, "time-machine", "-C", channels, "--")
	}
	return append(argv, args...)
}

// evalFlags are the flags of every command that evaluates the
// operating-system, with load paths seen through at (the deployer's paths
// as they are, or their copies on the host).
func evalFlags(g *schema.Guix, at func(string) string) []string {
	flags := []string{"--save-provenance"}
	if g.System != "" {
		flags = append(flags, "--system="+g.System)
	}
	for _, d := range g.LoadPath {
		flags = append(flags, "-L", at(d))
	}
	return flags
}

func same(p string) string { return p }

// VersionArgv probes the deployer's guix.
func VersionArgv() []string { return []string{"guix", "--version"} }

// InstantiateArgv prints the system's derivation and builds nothing.
func InstantiateArgv(g *schema.Guix) []string {
	args := append([]string{"system", "build", "-d"}, evalFlags(g, same)...)
	return guix(g.Channels, append(args, g.Config)...)
}

// ReadDrvArgv prints a derivation file, whose ATerm names the system's
// output path. `guix system build` only prints the output path once it has
// built it (with --dry-run it prints none), so reading the .drv is how the
// output is known before building.
func ReadDrvArgv(drv string) []string { return []string{"cat", "--", drv} }

// GCRootsArgv makes the directory of the deployer's GC roots.
func GCRootsArgv(dir string) []string { return []string{"mkdir", "-p", "--", dir} }

// BuildArgv builds the system on the deployer and keeps root as an
// indirect GC root to it.
func BuildArgv(g *schema.Guix, root string) []string {
	args := append([]string{"system", "build"}, evalFlags(g, same)...)
	return guix(g.Channels, append(args, "-r", root, g.Config)...)
}

// KeyArgv prints the deployer's public archive key.
func KeyArgv() []string { return []string{"cat", "--", SigningKey} }

// AuthorizeArgv makes the key on standard input trusted by the host.
func AuthorizeArgv() []string { return []string{"guix", "archive", "--authorize"} }

// RequisitesArgv lists the closure of p on the deployer.
func RequisitesArgv(p string) []string { return []string{"guix", "gc", "-R", p} }

// MissingArgv prints which of the store file names on standard input the
// host lacks.
func MissingArgv() []string { return []string{"guix", "archive", "--missing"} }

// ExportArgv writes an archive of exactly paths (Guix orders them so that
// references come first); -r is not used because paths is already the
// missing part of a closure.
func ExportArgv(paths []string) []string {
	return append([]string{"guix", "archive", "--export"}, paths...)
}

// ImportArgv reads an archive into the host's store.
func ImportArgv() []string { return []string{"guix", "archive", "--import"} }

// BuildDrvArgv realises a derivation on the host.
func BuildDrvArgv(drv string) []string { return []string{"guix", "build", drv} }

// stateScript prints three lines: the running system, the system of the
// profile, and the profile's link (system-N-link), each empty if absent.
const stateScript = `for f in /run/current-system /var/guix/profiles/system; do readlink -e "$f" || echo; done; readlink /var/guix/profiles/system || echo`

// StateArgv reads what the host runs.
func StateArgv() []string { return []string{"sh", "-c", stateScript} }

// stageFiles lists what reconfigure reads on the host, relative to /: the
// configuration's directory (its local-file names resolve against it), each
// load path and the channels file, without entries inside another one.
func stageFiles(g *schema.Guix) []string {
	var ps []string
	for _, p := range append(append([]string{path.Dir(g.Config)}, g.LoadPath...), g.Channels) {
		if p != "" {
			ps = append(ps, path.Clean(p))
		}
	}
	sort.Strings(ps)
	var out []string
	for _, p := range ps {
		if n := len(out); n > 0 && (p == out[n-1] || strings.HasPrefix(p, strings.TrimSuffix(out[n-1], "/")+"/")) {
			continue
		}
		out = append(out, p)
	}
	for i, p := range out {
		if p == "/" {
			out[i] = "."
		} else {
			out[i] = strings.TrimPrefix(p, "/")
		}
	}
	return out
}

// PackArgv writes a tar of the files reconfigure reads, with their
// deployer paths, to standard output.
func PackArgv(g *schema.Guix) []string {
	return append([]string{"tar", "-c", "-f", "-", "-C", "/"}, stageFiles(g)...)
}

// unpackScript replaces the stage directory with the tar on standard input.
const unpackScript = `rm -rf -- "$1" && mkdir -p -- "$1" && tar -x -f - -C "$1"`

// UnpackArgv receives PackArgv's tar in stage on the host.
func UnpackArgv(stage string) []string { return []string{"sh", "-c", unpackScript, "sh", stage} }

// ReconfigureArgv switches the host to the system of the staged copy of g.
// A shell prints backend.BeginLine and its process number first, then becomes
// guix (the number stays), so that a rollback after an interruption can
// end a reconfigure that runs on (see backend.StopArgv).
func ReconfigureArgv(g *schema.Guix, stage string) []string {
	return append([]string{"sh", "-c", `echo ` + backend.BeginLine + ` $$ && exec "$@"`, "sh"}, reconfigureArgv(g, stage)...)
}

// reconfigureArgv is the guix command ReconfigureArgv runs. Its command
// line names the staged configuration (stagedConfig), which tells it from
// another process (backend.StopArgv's marker).
func reconfigureArgv(g *schema.Guix, stage string) []string {
	at := func(p string) string { return path.Join(stage, p) }
	channels := ""
	if g.Channels != "" {
		channels = at(g.Channels)
	}
	args := append([]string{"system", "reconfigure"}, evalFlags(g, at)...)
	return guix(channels, append(args, stagedConfig(g, stage))...)
}

func stagedConfig(g *schema.Guix, stage string) string { return path.Join(stage, g.Config) }

// SwitchGenerationArgv makes generation gen current again, activating it
// and making it the boot default.
func SwitchGenerationArgv(gen string) []string {
	return []string{"guix", "system", "switch-generation", gen}
}
