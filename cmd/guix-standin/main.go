// Command guix-standin is a STAND-IN for the `guix` program, for cuedeploy's
// tests only. It is not GNU Guix and builds nothing real.
//
// GNU Guix cannot be installed on the machines cuedeploy is tested on, so the
// tests build this program, install it as `guix` in a temporary bin
// directory on PATH (on the deployer and on the test fleet's hosts) and run
// the Guix backend against it. It implements only the subcommands and flags
// the backend uses:
//
//	guix --version
//	guix time-machine -C FILE -- COMMAND...
//	guix system build [-d] [-r FILE] [--save-provenance] [--system=S] [-L DIR]... FILE
//	guix system reconfigure [--save-provenance] [--system=S] [-L DIR]... FILE
//	guix system roll-back
//	guix system switch-generation N
//	guix build DRV
//	guix gc -R PATH...
//	guix archive --export [-r] PATH... | --import | --missing | --authorize | --generate-key
//
// What it keeps faithful to Guix, because the backend and the tests depend on
// it: the store layout (/gnu/store/HASH-system.drv, /gnu/store/HASH-system
// with activate, parameters, provenance and configuration.scm), the system
// profile (/var/guix/profiles/system -> system-N-link -> store path),
// /run/current-system, derivations as ATerm files, derivation hashes that
// depend on the configuration, the load-path files, the system type and the
// provenance (the channels file under time-machine), and the requirement that
// the importing host trusts the exporting key.
//
// What is stand-in only: the operating-system file is read with the real
// Guile, but only to check its syntax and find host-name (and the marker
// symbols standin-fail-activation, which makes the system's activate script
// fail so that rollback can be tested, and standin-slow-activation, which
// makes it sleep 20 s before it switches, so that an interrupted
// activation can be); `activate` is a shell script; the
// archive format is a tar stream with a small metadata entry per item (see
// archive.go), unsigned; the ACL lives in /var/guix/standin/acl rather than
// /etc/guix/acl so that every host of the local fleet (which bind-mounts
// /gnu, /var/guix and /run per host but shares /etc) has its own; the store
// database is one small file per item under /var/guix/standin/db.
//
// Every invocation appends its argv as one JSON line to $GUIX_STANDIN_LOG,
// or to /var/guix/standin.log. $GUIX_STANDIN_ROOT, when set, is prefixed to
// /gnu/store, /var/guix, /run and /etc/guix (store paths printed then carry
// the prefix, as with Guix's NIX_STORE_DIR); $GUIX_STANDIN_REVISION names the
// "Guix revision" recorded in provenance when no channels file is given.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// version is what `guix --version` prints: it must never pass for Guix.
const version = "guix stand-in for cuedeploy tests, not GNU Guix"

func main() {
	args := os.Args[1:]
	lay := layoutFromEnv()
	logInvocation(lay, args)
	if err := run(lay, args, &ctx{}); err != nil {
		fmt.Fprintf(os.Stderr, "guix: error: %v\n", err)
		os.Exit(1)
	}
}

// ctx carries what a time-machine wrapper sets for the command it runs.
type ctx struct {
	// channels is the content of the channels file of time-machine, or "".
	channels string
}

func run(lay layout, args []string, c *ctx) error {
	if len(args) == 0 {
		return errors.New("missing command name (this is a stand-in; see its package doc)")
	}
	switch args[0] {
	case "--version", "-V":
		fmt.Println(version)
		return nil
	case "time-machine":
		return timeMachine(lay, args[1:], c)
	case "system":
		return system(lay, args[1:], c)
	case "build":
		return buildCmd(lay, args[1:])
	case "gc":
		return gc(lay, args[1:])
	case "archive":
		return archive(lay, args[1:])
	}
	return fmt.Errorf("%s: command not implemented by the stand-in", args[0])
}

func timeMachine(lay layout, args []string, c *ctx) error {
	var file string
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		switch {
		case a == "-C" && len(args) > 0:
			file, args = args[0], args[1:]
		case strings.HasPrefix(a, "--channels="):
			file = strings.TrimPrefix(a, "--channels=")
		case a == "--":
			if file == "" {
				return errors.New("time-machine: the stand-in needs -C FILE")
			}
			if err := readScheme(file); err != nil {
				return fmt.Errorf("time-machine: %w", err)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			c.channels = string(b)
			return run(lay, args, c)
		default:
			return fmt.Errorf("time-machine: unexpected argument %q", a)
		}
	}
	return errors.New("time-machine: missing -- COMMAND")
}

// layout is where the stand-in keeps things, as Guix lays them out.
type layout struct{ root string }

func layoutFromEnv() layout {
	return layout{root: strings.TrimRight(os.Getenv("GUIX_STANDIN_ROOT"), "/")}
}

func (l layout) store() string      { return l.root + "/gnu/store" }
func (l layout) state() string      { return l.root + "/var/guix" }
func (l layout) run() string        { return l.root + "/run" }
func (l layout) etc() string        { return l.root + "/etc/guix" }
func (l layout) profile() string    { return l.state() + "/profiles/system" }
func (l layout) own() string        { return l.state() + "/standin" }
func (l layout) db(p string) string { return l.own() + "/db/" + filepath.Base(p) }

func logInvocation(lay layout, args []string) {
	path := os.Getenv("GUIX_STANDIN_LOG")
	if path == "" {
		path = lay.state() + "/standin.log"
	}
	line, _ := json.Marshal(struct {
		Argv []string `json:"argv"`
	}{append([]string{"guix"}, args...)})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(line, '\n'))
}
