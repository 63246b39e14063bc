// Package guix is the Guix System backend: it plans and runs the guix
// commands that evaluate, build, copy, activate and roll back a host's
// operating-system declaration.
//
// Every command is built by one of the pure argv functions in argv.go; Plan
// and the methods that run commands both use them, so `deploy eval` shows
// exactly what a deploy runs.
//
// Rules this package keeps, with their reasons:
//
//   - --save-provenance on every `guix system` command. Without it `guix
//     system build` and `guix system reconfigure` (which always records
//     provenance) yield different derivations, and the host would rebuild.
//     Provenance records the configuration file by content (as a store item
//     named configuration.scm), not by location, and the channels of the Guix
//     that runs, so a copy of the same file evaluated by the same Guix
//     revision gives the same system.
//   - `guix time-machine -C CHANNELS --` wraps the commands that evaluate the
//     operating-system declaration (instantiate, build, reconfigure), since
//     their result depends on the Guix revision. Store-level commands (gc -R,
//     archive, build DRV, switch-generation) run with the installed guix:
//     their meaning does not depend on the revision, and under time-machine
//     the host would have to fetch and build the pinned Guix before it could
//     even say which paths it lacks.
//   - Activation runs `guix system reconfigure` on the host with the same
//     configuration, load paths and channels, copied there first (the
//     configuration's whole directory, because local-file names resolve
//     relative to it). It finds the pushed outputs already present and does
//     what a raw profile flip cannot: install the bootloader entry and
//     upgrade the Shepherd services. Afterwards the backend checks that the
//     host runs exactly the pushed system; if the host's Guix differs from
//     the deployer's (no channels file), reconfigure builds something else,
//     and that is reported as a failed activation.
//   - Only the "switch" goal is accepted (see Check).
//   - Rollback is `guix system switch-generation N` to the generation read
//     before activation, never `roll-back`: a reconfigure that failed before
//     creating its generation would make `roll-back` go one too far. After
//     an interrupted reconfigure (time-out, Ctrl-C) it first ends that
//     reconfigure's processes, which sshd does not signal for a root login.
package guix

import (
	"fmt"
	"path/filepath"
	"sync"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/schema"
)

func init() { backend.Register(New()) }

// Backend is the Guix System backend.
type Backend struct {
	// GCRoots is the directory on the deployer where Build keeps one GC
	// root per host (guix system build -r GCRoots/HOST), so that what was
	// last deployed survives `guix gc`. The default is under /var/guix and
	// needs a root deployer; guix-daemon registers -r roots indirectly, so
	// any directory the deployer can write works as well.
	GCRoots string
	// Stage is the directory on the host where Push puts the configuration
	// (its whole directory), load paths and channels file that reconfigure
	// reads. It is under /run: root's, per boot, and per host on the local
	// fleet.
	Stage string
	// Parallel bounds how many guix processes Instantiate and Build run at
	// once on the deployer.
	Parallel int

	mu sync.Mutex
	// running holds the process of each reconfigure that was interrupted
	// (it may still run), for Rollback.
	running map[*backend.Target]int
}

// New returns the backend with its default settings.
func New() *Backend {
	return &Backend{
		GCRoots:  "/var/guix/gcroots/cuedeploy",
		Stage:    "/run/cuedeploy/guix",
		Parallel: 4,
	}
}

// Name implements backend.Backend.
func (*Backend) Name() string { return "guix" }

// Check implements backend.Backend.
func (*Backend) Check(h *schema.Host) []backend.FieldError {
	if h.Guix == nil {
		return []backend.FieldError{{Path: "guix", Message: "is not set: not a Guix System host"}}
	}
	var errs []backend.FieldError
	switch h.Activation {
	case "", "switch":
	case "boot":
		errs = append(errs, backend.FieldError{Path: "activation", Message: `Guix cannot honour "boot": ` +
			"guix system has no action that makes a system the boot default without activating it " +
			"(reconfigure and switch-generation both activate); use \"switch\""})
	case "test":
		errs = append(errs, backend.FieldError{Path: "activation", Message: `Guix cannot honour "test": ` +
			"guix system has no action that activates a system without making it the boot default " +
			"(reconfigure always adds the bootloader entry); use \"switch\""})
	case "dry-activate":
		errs = append(errs, backend.FieldError{Path: "activation", Message: `Guix cannot honour "dry-activate": ` +
			"guix system has no dry activation (reconfigure --dry-run only lists what would be built " +
			"or downloaded); run `deploy eval` to see the plan, or use \"switch\""})
	default:
		errs = append(errs, backend.FieldError{Path: "activation", Message: fmt.Sprintf("unknown goal %q", h.Activation)})
	}
	abs := func(path, p string) {
		if !filepath.IsAbs(p) {
			errs = append(errs, backend.FieldError{Path: path, Message: fmt.Sprintf("%q is not an absolute path", p)})
		}
	}
	abs("guix.config", h.Guix.Config)
	for i, d := range h.Guix.LoadPath {
		abs(fmt.Sprintf("guix.loadPath[%d]", i), d)
	}
	if h.Guix.Channels != "" {
		abs("guix.channels", h.Guix.Channels)
	}
	return errs
}
