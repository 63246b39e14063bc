// Package schema holds the CUE schema of a deployment, embedded in the binary,
// and the plain Go types a validated deployment decodes into.
//
// The CUE files in this folder are the source of truth for what a user may
// write; the Go types mirror them field for field so that nothing after eval
// ever touches a CUE value.
package schema

import "time"

// Deployment is the root value of a user's CUE package after validation.
type Deployment struct {
	// Name identifies the deployment (used for GC roots and logs).
	Name string `json:"name"`
	// Hosts in name order.
	Hosts []Host `json:"hosts"`
	// Dir is the directory the deployment was loaded from; relative paths in
	// hosts are resolved against the directory of the CUE file that set them,
	// and stored absolute.
	Dir string `json:"-"`
}

// Host is one machine and the one system it should run.
type Host struct {
	Name       string   `json:"name"`
	Address    string   `json:"address"`
	SSH        SSH      `json:"ssh"`
	Tags       []string `json:"tags"`
	Build      string   `json:"build"`      // "local" or "target"
	Activation string   `json:"activation"` // "switch", "boot", "test" or "dry-activate"
	// Timeout bounds this host's whole pipeline; zero means the run's default.
	Timeout time.Duration `json:"timeout,omitempty"`
	Nix     *Nix          `json:"nix,omitempty"`
	Guix    *Guix         `json:"guix,omitempty"`
	// Substitute lets the host fetch paths from its own substituters before
	// the deployer copies what is still missing.
	Substitute bool `json:"substitute,omitempty"`
}

// Backend names the system kind of the host: "nix" or "guix".
func (h *Host) Backend() string {
	switch {
	case h.Nix != nil:
		return "nix"
	case h.Guix != nil:
		return "guix"
	}
	return ""
}

// HasTag reports whether the host carries tag t.
func (h *Host) HasTag(t string) bool {
	for _, x := range h.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// SSH is how the deployer reaches a host.
type SSH struct {
	User string `json:"user"`
	Port int    `json:"port"`
	// IdentityFile is an absolute path to a private key, or empty.
	IdentityFile string `json:"identityFile,omitempty"`
	// HostKey pins the host's public key ("ssh-ed25519 AAAA..."), or empty to
	// use known_hosts.
	HostKey string `json:"hostKey,omitempty"`
	// JumpHost is "[user@]host[:port]" of a bastion, or empty.
	JumpHost string `json:"jumpHost,omitempty"`
	// JumpHostKey pins the bastion's public key, or empty to use
	// known_hosts.
	JumpHostKey string `json:"jumpHostKey,omitempty"`
	// Sudo prefixes privileged commands with "sudo -n"; on by default when
	// User is not root.
	Sudo bool `json:"sudo"`
}

// Nix is a NixOS-style system: either a file and an attribute path, or a
// flake reference.
type Nix struct {
	// File is an absolute path to a Nix file (nix-build FILE -A ATTRIBUTE).
	File      string `json:"file,omitempty"`
	Attribute string `json:"attribute,omitempty"`
	// Args are passed as --argstr NAME VALUE, in name order.
	Args map[string]string `json:"args,omitempty"`
	// Flake is "REF#NAME", as nixos-rebuild --flake takes it, with a local
	// path REF made absolute.
	Flake string `json:"flake,omitempty"`
}

// Guix is a Guix System: an operating-system file, load paths and optional
// pinned channels.
type Guix struct {
	// Config is an absolute path to the operating-system file.
	Config string `json:"config"`
	// LoadPath are absolute directories passed as -L DIR.
	LoadPath []string `json:"loadPath,omitempty"`
	// Channels is an absolute path to a channels.scm, or empty.
	Channels string `json:"channels,omitempty"`
	// System is the Guix system type, such as "x86_64-linux", or empty for
	// the deployer's own.
	System string `json:"system,omitempty"`
	// Authorize makes the deployer's archive key trusted on the host before
	// the first copy, as guix deploy does.
	Authorize bool `json:"authorize,omitempty"`
}
