// Package nix is the backend for NixOS-style hosts: it instantiates and
// realises systems with the nix command-line tools, copies closures over the
// host's SSH connection, and activates profile generations as nixos-rebuild
// does.
//
// This file holds the pure argv builders; nix.go runs exactly these.
package nix

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
)

// Profile is the system profile on a NixOS host.
const Profile = "/nix/var/nix/profiles/system"

// Options are settings of a run that change the local nix commands.
type Options struct {
	// NixOptions are passed to every local nix command as --option NAME
	// VALUE (deploy --nix-option NAME=VALUE): those NixOrder names in that
	// order, which matters to nix (substituters= then
	// extra-substituters=URL is not the other way round), then the others
	// in name order.
	NixOptions map[string]string
	NixOrder   []string
	// GCRootDir is where GC roots for deployed systems are kept; "" means
	// /nix/var/nix/gcroots/cuedeploy (or the per-user directory for a
	// user other than root).
	GCRootDir string
	// NoDaemon copies through nix-store --serve even to hosts whose nix
	// daemon could take the copy.
	NoDaemon bool
}

func (o Options) options() []string {
	var names, rest []string
	for _, n := range o.NixOrder {
		if _, ok := o.NixOptions[n]; ok && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for n := range o.NixOptions {
		if !slices.Contains(names, n) {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	var argv []string
	for _, n := range append(names, rest...) {
		argv = append(argv, "--option", n, o.NixOptions[n])
	}
	return argv
}

// instantiateArgv evaluates several attributes of one file in one process;
// nix-instantiate prints one .drv per attribute, in order.
func (o Options) instantiateArgv(file string, args map[string]string, attrs []string) []string {
	argv := append([]string{"nix-instantiate"}, o.options()...)
	names := make([]string, 0, len(args))
	for n := range args {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		argv = append(argv, "--argstr", n, args[n])
	}
	argv = append(argv, file)
	for _, a := range attrs {
		argv = append(argv, "-A", a)
	}
	return argv
}

// flakeEvalArgv evaluates the toplevel .drv of several configurations of
// one flake in one process, as a JSON object from name to path.
func (o Options) flakeEvalArgv(ref string, names []string) []string {
	var apply strings.Builder
	apply.WriteString("c: {")
	for _, n := range names {
		fmt.Fprintf(&apply, " %q = c.%q.config.system.build.toplevel.drvPath;", n, n)
	}
	apply.WriteString(" }")
	argv := append([]string{"nix", "--extra-experimental-features", "nix-command flakes"}, o.options()...)
	return append(argv, "eval", "--json", "--no-write-lock-file",
		ref+"#nixosConfigurations", "--apply", apply.String())
}

// outputsArgv prints the output path of each derivation, in order.
func (o Options) outputsArgv(drvs []string) []string {
	argv := append([]string{"nix-store"}, o.options()...)
	return append(append(argv, "--query", "--outputs"), drvs...)
}

// realiseArgv builds every derivation in one process; --keep-going builds
// the rest when one fails, so one broken host does not stop the others.
func (o Options) realiseArgv(drvs []string) []string {
	argv := append([]string{"nix-store"}, o.options()...)
	if _, set := o.NixOptions["max-jobs"]; !set {
		// Independent systems build side by side; nix's default is one job.
		argv = append(argv, "--max-jobs", "auto")
	}
	// Builders' output only in a failure's error, where it says which
	// derivation it is of (nix's last log-lines lines).
	return append(append(argv, "--no-build-output", "--realise", "--keep-going"), drvs...)
}

// dumpDBArgv prints each path's registration: path, NAR hash, NAR size,
// deriver, the number of references and the references.
func (o Options) dumpDBArgv(paths []string) []string {
	argv := append([]string{"nix-store"}, o.options()...)
	return append(append(argv, "--dump-db"), paths...)
}

// invalidArgv prints which of the paths on its standard input (one per
// line) are not valid in the host's store. The paths go on stdin, not in
// argv: a closure of thousands of paths would overflow the SSH exec request.
func invalidArgv() []string {
	return []string{"sh", "-c", invalidScript}
}

const invalidScript = `xargs -r nix-store --check-validity --print-invalid`

// lines makes the standard input of invalidArgv.
func lines(paths []string) string { return strings.Join(paths, "\n") + "\n" }

// requisitesArgv prints the closure of paths, dependencies first.
func (o Options) requisitesArgv(paths []string) []string {
	argv := append([]string{"nix-store"}, o.options()...)
	return append(append(argv, "--query", "--requisites"), paths...)
}

// localServeArgv is the deployer's own store served (see BuildEach).
func (o Options) localServeArgv() []string {
	return append(append([]string{"nix-store"}, o.options()...), "--serve")
}

// serveArgv is the nix process a copy talks to (see serve.go).
func serveArgv() []string { return []string{"nix-store", "--serve", "--write"} }

// remoteRealiseArgv builds a derivation on the host.
func remoteRealiseArgv(drv string) []string {
	return []string{"nix-store", "--realise", drv}
}

// stateScript prints, one per line: the running system, the profile's
// generation link and the system the profile points at (empty when absent).
// cd -P is a shell builtin: no process but readlink, and none for a host
// without a profile.
const stateScript = `c= g= p=; cd -P /run/current-system 2>/dev/null && c=$PWD; cd -P ` + Profile + ` 2>/dev/null && p=$PWD && g=$(readlink ` + Profile + `); cd /; printf '%s\n%s\n%s\n' "$c" "$g" "$p"`

// stateServeArgv prints the state; then, unless the host already has
// system for goal, a line "wait", and waits for one line from the deployer,
// which may come after the deployer's build has ended:
//
//   - "serve": it prints "serve" and runs nix-store --serve --write: the
//     same session says which paths the host lacks and receives them; it
//     stays open after the copy, holding its temporary roots, until the
//     host's run has ended (the activation is a session of its own,
//     activateArgv);
//   - "go": the deployer has copied the paths through the host's daemon
//     and now activates: with activate the session prints "activate" and
//     activates (activateScript), one session from state to activation.
//
// So nothing on the host changes but its store until the deployer says
// "go" (or starts the activation's own session), which it does only once
// nothing may stop the host any more.
//
// Waiting holds nothing. nix-store --serve holds what its locked queries
// name as temporary roots (nix's own protocol, which a running collection
// honours), not the GC lock, which would stop every collection on the host
// for as long as the session lasts; after "go" the daemon connection holds
// the copied closure as temporary roots until the host's run has ended.
func stateServeArgv(goal, system string, activate bool) []string {
	script := stateScript + `; case "$1" in ` +
		`switch) [ "$c" = "$2" ] && [ "$p" = "$2" ] && exit 0 ;; ` +
		`boot) [ "$p" = "$2" ] && exit 0 ;; ` +
		`test) [ "$c" = "$2" ] && exit 0 ;; ` +
		`esac; echo wait; read -r how || exit; case $how in ` +
		`serve) echo serve; exec ` + hosts.ShellJoin(serveArgv()) + ` ;; ` +
		`go) ;; *) exit 2 ;; esac`
	if activate {
		script += `; echo activate; ` + activateScript(goal, "")
	}
	return []string{"sh", "-c", script, "sh", goal, system}
}

// gcLock is the lock a garbage collection holds exclusively.
const gcLock = "/nix/var/nix/gc.lock"

// activateScript reaches goal ($1) with system ($2). For switch and boot the
// profile gets a new generation first, as nix-env --set makes it (the
// next number, or the last one again if it already is system; the link
// replaced atomically; under the profile's lock), without starting a nix
// process. Then the locks are let go and the system's
// switch-to-configuration runs, its standard input closed.
//
// Before it changes anything (and before it takes a lock) it prints
// "begin" (beginLine) and its process number, which stays the same through
// the exec into switch-to-configuration (see backend.StopArgv), and waits for the
// deployer's "yes" (confirmLine),
// which the deployer gives only while the run goes on: an activation the
// deployer did not answer ends with the host as it was. locked is what
// runs between the answer and the profile (the GC lock and its check, for
// a session of its own).
func activateScript(goal, locked string) string {
	script := missingCheck + `; echo ` + beginLine + ` $$; read -r a && [ "$a" = ` + confirmLine + ` ] || exit; `
	if locked != "" {
		script += locked + `; `
	}
	if setsProfile(goal) {
		script += setProfileScript(Profile) + `; `
	}
	return script + `exec 8>&- 9>&-; exec "$2/bin/switch-to-configuration" "$1" </dev/null`
}

// missingCheck refuses a system ($2) that is not (or no longer) in the
// host's store.
const missingCheck = `[ -e "$2" ] || { echo "$2 is not in the host's store (collected since the copy?): deploy again" >&2; exit 1; }`

// beginLine is what an activation prints before its first change;
// confirmLine, the deployer's answer that lets it go on; generationLine,
// what it prints, for switch and boot, before it sets the profile: the
// generation and "new" if it makes it.
const (
	beginLine      = backend.BeginLine
	confirmLine    = "yes"
	generationLine = "generation"
)

// setProfileScript points profile at $2 through a new generation, saying
// which first (generationLine). It takes the profile's lock as nix does: a
// lock file that nix marked stale (not empty) before deleting it is
// opened again. GNU ln -sfn replaces an existing link atomically (a new
// link under a temporary name, renamed over the old), as nix-env does.
func setProfileScript(profile string) string {
	return `P=` + hosts.ShellQuote(profile) + `; while :; do exec 9>>"$P.lock" && flock 9 || exit; [ -s /proc/self/fd/9 ] || break; done; n=0; ` +
		`for l in "$P"-*-link; do [ -L "$l" ] || continue; g=${l#"$P"-}; g=${g%-link}; ` +
		`case $g in ''|*[!0-9]*) continue ;; esac; [ "$g" -gt "$n" ] && n=$g; done; ` +
		`m=; if [ "$n" = 0 ] || [ "$(readlink "$P-$n-link")" != "$2" ]; then n=$((n+1)); m=" new"; fi; ` +
		`echo "` + generationLine + ` $n$m"; ` +
		`if [ -n "$m" ]; then ln -s "$2" "$P-$n-link" || exit; fi; ln -sfn "${P##*/}-$n-link" "$P" || exit`
}

// sessionActivateArgv is what the state session runs after "go" (see
// stateServeArgv), shown as a command of its own: the daemon connection
// holds the closure as temporary roots.
func sessionActivateArgv(system, goal string) []string {
	return []string{"sh", "-c", activateScript(goal, ""), "sh", goal, system}
}

// activateArgv reaches goal with system in a session of its own (after a
// copy through nix-store --serve, or a build on the host). Once answered,
// it holds the GC lock shared until the profile has the new generation,
// and checks again that the system is in the host's store.
func activateArgv(system, goal string) []string {
	return []string{"sh", "-c", activateScript(goal, `exec 8>>`+gcLock+` && flock -s 8 || exit; `+missingCheck), "sh", goal, system}
}

// switchArgv runs the system's activation for goal.
func switchArgv(system, goal string) []string {
	return []string{system + "/bin/switch-to-configuration", goal}
}

func switchGenerationArgv(gen string) []string {
	return []string{"nix-env", "-p", Profile, "--switch-generation", gen}
}

func deleteGenerationArgv(gen string) []string {
	return []string{"nix-env", "-p", Profile, "--delete-generations", gen}
}

// setsProfile reports whether goal makes a new profile generation.
func setsProfile(goal string) bool { return goal == "switch" || goal == "boot" }

// queryStdin names what the copy step writes to the waiting session: the
// line that starts nix-store --serve, the paths it holds besides the
// closure, then the query.
func queryStdin(substitute, buildTarget bool) string {
	held := backend.PlacePreviousRunning + " (if the host runs one in no generation)"
	if buildTarget {
		held = backend.PlaceOut + " " + held
	}
	q := "query-valid-paths --lock "
	if substitute {
		q = "query-valid-paths --lock --substitute "
	}
	return "serve; query-valid-paths --lock " + held + "; " + q + backend.PlaceClosure
}
