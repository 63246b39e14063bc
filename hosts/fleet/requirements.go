package fleet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// MissingError says what this machine lacks to run the fleet.
type MissingError struct {
	// Missing are the problems, one phrase each with a hint.
	Missing []string
}

func (e *MissingError) Error() string {
	return "the local fleet cannot run here: " + strings.Join(e.Missing, "; ")
}

// Requirements checks that this machine can run the fleet: root, a working
// unshare(1) for mount namespaces, mount(8), sshd and Nix's nix-store and
// nix-env. It returns a *MissingError naming everything that is missing.
func Requirements(ctx context.Context) error {
	var missing []string
	root := os.Geteuid() == 0
	if !root {
		missing = append(missing, fmt.Sprintf("not root (uid %d): sshd and mount namespaces need root", os.Geteuid()))
	}
	tools := []struct{ name, hint string }{
		{"unshare", "util-linux"},
		{"mount", "mount"},
		{"nix-store", "nix-bin"},
		{"nix-env", "nix-bin"},
	}
	found := map[string]bool{}
	for _, t := range tools {
		if _, err := exec.LookPath(t.name); err != nil {
			missing = append(missing, fmt.Sprintf("no %s on PATH (Debian package %s)", t.name, t.hint))
			continue
		}
		found[t.name] = true
	}
	if fi, err := os.Stat(SSHD); err != nil || fi.IsDir() {
		missing = append(missing, fmt.Sprintf("no %s (Debian package openssh-server)", SSHD))
	}
	if root && found["unshare"] {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "true").CombinedOutput()
		if err != nil {
			missing = append(missing, fmt.Sprintf("cannot create a mount namespace (needs CAP_SYS_ADMIN): %v: %s", err, strings.TrimSpace(string(out))))
		}
	}
	if len(missing) > 0 {
		return &MissingError{Missing: missing}
	}
	return nil
}
