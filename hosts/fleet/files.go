package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// nixConf makes an empty /nix a working store for root without a daemon,
// build users or network.
const nixConf = `# Written by the local test fleet.
sandbox = false
build-users-group =
substituters =
`

// hostPath is what follows Config.ExtraPath on a host's PATH.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sshdConfig is a host's whole sshd configuration; the machine's
// /etc/ssh/sshd_config is never read. HOME is the host's own, so that the
// machine's /root/.bashrc cannot reorder PATH and ~/.nix-profile,
// ~/.cache and ~/.config stay per host.
func sshdConfig(h Host, extraPath []string) string {
	path := strings.Join(append(append([]string(nil), extraPath...), hostPath), ":")
	return fmt.Sprintf(`# Written by the local test fleet for host %[1]q.
ListenAddress %[2]s:%[3]d
HostKey %[4]s/ssh_host_ed25519_key
PidFile %[4]s/sshd.pid
AuthorizedKeysFile %[4]s/authorized_keys
LogLevel VERBOSE
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
MaxSessions 64
MaxStartups 100:30:200
UseDNS no
PrintMotd no
PrintLastLog no
SetEnv "PATH=%[5]s" "NIX_CONF_DIR=%[4]s/etc-nix" "HOME=%[4]s/home"
`, h.Name, Address, h.Port, h.Dir, path)
}

// clientKey makes sure path holds an ed25519 private key, and path.pub its
// public key, generating them when missing. It reports whether it did.
func clientKey(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		if _, err := os.Stat(path + ".pub"); err != nil {
			return false, fmt.Errorf("use client key %q: %w", path, err)
		}
		return false, nil
	}
	pub, err := writeKey(path, "cuedeploy-localfleet-client")
	if err != nil {
		return false, fmt.Errorf("generate client key: %w", err)
	}
	if err := os.WriteFile(path+".pub", []byte(pub+" cuedeploy-localfleet-client\n"), 0o644); err != nil {
		return false, fmt.Errorf("generate client key: %w", err)
	}
	return true, nil
}

// writeKey writes a new passphrase-less ed25519 private key in OpenSSH
// format to path and returns its public key in authorized_keys form,
// without a comment.
func writeKey(path, comment string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), nil
}

// makeHost creates h.Dir and everything in it but sshd_config, which start
// writes once the port is known, and sets h.HostKey.
func makeHost(h *Host, clientPub string, nixConfLines []string) error {
	if err := os.Mkdir(h.Dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("make host %q: %q already exists", h.Name, h.Dir)
		}
		return fmt.Errorf("make host %q: %w", h.Name, err)
	}
	dirs := []string{
		"nix/store", "nix/var/nix/profiles", "nix/var/nix/gcroots",
		"run/sshd",
		"gnu/store",
		"var-guix/profiles",
		"etc-nix",
		"home",
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return fmt.Errorf("make host %q: %w", h.Name, err)
		}
	}
	key, err := writeKey(filepath.Join(h.Dir, "ssh_host_ed25519_key"), "root@"+h.Name)
	if err != nil {
		return fmt.Errorf("make host %q: host key: %w", h.Name, err)
	}
	h.HostKey = key
	auth, err := os.ReadFile(clientPub)
	if err != nil {
		return fmt.Errorf("make host %q: %w", h.Name, err)
	}
	files := map[string]string{
		"ssh_host_ed25519_key.pub": key + " root@" + h.Name + "\n",
		"authorized_keys":          string(auth),
		"etc-nix/nix.conf":         nixConf + strings.Join(append(nixConfLines, ""), "\n"),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h.Dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("make host %q: %w", h.Name, err)
		}
	}
	return nil
}
