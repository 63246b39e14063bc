package hosts

// Host key checking. The rules:
//   - a pinned key (DialOptions.HostKey) is the only key accepted, compared
//     byte for byte on its wire form; known_hosts is not consulted;
//   - otherwise known_hosts decides; an unknown host is refused unless
//     AcceptNewHostKeys is set, and then its key is appended to the first
//     file; a host whose key differs from a recorded one is always refused;
//   - the client offers only the key algorithms recorded (or pinned) for the
//     host, so a server holding several host keys presents the one we know
//     instead of one that would look "changed".

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Kinds of HostKeyError.
const (
	HostKeyUnknown     = "unknown"
	HostKeyChanged     = "changed"
	HostKeyMismatchPin = "mismatch-pin"
)

// HostKeyError is returned when the host key is unknown (and
// AcceptNewHostKeys is off), changed, or does not match the pinned key.
type HostKeyError struct {
	// Host names the host for messages: its name, or the jump host as given.
	Host string
	// Address is the host:port dialed.
	Address string
	// Kind is HostKeyUnknown, HostKeyChanged or HostKeyMismatchPin.
	Kind string
	// Fingerprint is the offered key's SHA256 fingerprint ("SHA256:...").
	Fingerprint string
	// Key is the offered key in authorized_keys format.
	Key string
	// Hint tells the user what to do.
	Hint string
}

func (e *HostKeyError) Error() string {
	var what string
	switch e.Kind {
	case HostKeyUnknown:
		what = "is unknown"
	case HostKeyChanged:
		what = "has changed"
	case HostKeyMismatchPin:
		what = "does not match the pinned key"
	default:
		what = "was refused (" + e.Kind + ")"
	}
	keyType, _, _ := strings.Cut(e.Key, " ")
	msg := fmt.Sprintf("host key of %q (%s) %s: offered %s %s", e.Host, e.Address, what, keyType, e.Fingerprint)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// knownHostsMu serializes appends to known_hosts files by this process, so
// concurrent dials to one new host record it once.
var knownHostsMu sync.Mutex

// hostKeyChecker checks the key of one host during one handshake.
type hostKeyChecker struct {
	name   string // for messages
	field  string // the CUE field that pins the key: "hostKey" or "jumpHostKey"
	addr   string // host:port
	pin    ssh.PublicKey
	files  []string // known_hosts files; files[0] receives new keys
	accept bool
	// algorithms restricts the host key algorithms to those known for the
	// host; nil when nothing is known.
	algorithms []string
	// accepted is set once the host key passed, so that a later failure is
	// known to be about authentication.
	accepted bool
}

// CheckHostKey returns the error Dial would give for the pinned host key
// s, or nil: a deployment is checked with the same parser before any host
// is touched.
func CheckHostKey(s string) error {
	_, err := parseHostKey(s)
	return err
}

// parseHostKey parses a host key as a known_hosts or .pub line gives it.
// Its error says why the one line given does not parse.
func parseHostKey(s string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		if _, inner, ok := strings.Cut(err.Error(), "last parsing error for ignored line: "); ok {
			return nil, errors.New(inner) // the one line given was ignored for this
		}
		return nil, err
	}
	return k, nil
}

// newHostKeyChecker checks the key of the host name at addr against
// pinned, or else the known_hosts files; field is the CUE field that pins
// it, for messages.
func newHostKeyChecker(name, addr, field, pinned string, files []string, accept bool) (*hostKeyChecker, error) {
	h := &hostKeyChecker{name: name, addr: addr, field: field, files: files, accept: accept}
	if pinned != "" {
		pin, err := parseHostKey(pinned)
		if err != nil {
			return nil, fmt.Errorf("parse pinned %s %q: %w", field, pinned, err)
		}
		h.pin = pin
		h.algorithms = algorithmsFor([]string{pin.Type()})
		return h, nil
	}
	known, err := h.knownKeys()
	if err != nil {
		return nil, err
	}
	var types []string
	for _, k := range known {
		types = append(types, k.Key.Type())
	}
	h.algorithms = algorithmsFor(types)
	return h, nil
}

// db reads the known_hosts files that exist; a missing file is empty.
func (h *hostKeyChecker) db() (ssh.HostKeyCallback, error) {
	var existing []string
	for _, f := range h.files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	if len(existing) == 0 {
		return nil, nil
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	return cb, nil
}

// knownKeys returns every key recorded for the host.
func (h *hostKeyChecker) knownKeys() ([]knownhosts.KnownKey, error) {
	cb, err := h.db()
	if cb == nil {
		return nil, err
	}
	// A key that matches nothing makes knownhosts list what it has.
	var ke *knownhosts.KeyError
	if err := cb(h.addr, zeroAddr, noKey{}); errors.As(err, &ke) {
		return ke.Want, nil
	}
	return nil, nil
}

// check is the ssh.HostKeyCallback.
func (h *hostKeyChecker) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if h.pin != nil {
		if !bytes.Equal(key.Marshal(), h.pin.Marshal()) {
			return h.refuse(HostKeyMismatchPin, key, fmt.Sprintf(
				"ssh.%s pins %s %s; if the host was reinstalled, check the new fingerprint on the host and update ssh.%s in its CUE",
				h.field, h.pin.Type(), ssh.FingerprintSHA256(h.pin), h.field))
		}
		h.accepted = true
		return nil
	}
	err := h.lookup(hostname, remote, key)
	if err == nil {
		h.accepted = true
	}
	return err
}

func (h *hostKeyChecker) lookup(hostname string, remote net.Addr, key ssh.PublicKey) error {
	cb, err := h.db()
	if err != nil {
		return err
	}
	if cb != nil {
		err = cb(hostname, remote, key)
	} else {
		err = &knownhosts.KeyError{}
	}
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ke):
		return fmt.Errorf("check known hosts: %w", err)
	case len(ke.Want) > 0:
		w := ke.Want[0]
		return h.refuse(HostKeyChanged, key, fmt.Sprintf(
			"%s:%d records %s %s for it; this may be an attack. If the host was reinstalled, verify the new fingerprint on the host, then remove the old entry (ssh-keygen -R %s -f %s) or pin ssh.%s in its CUE; --accept-new-host-keys never replaces a recorded key",
			w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key),
			ShellQuote(knownhosts.Normalize(hostname)), ShellQuote(w.Filename), h.field))
	case !h.accept:
		first := "~/.ssh/known_hosts"
		if len(h.files) > 0 {
			first = h.files[0]
		}
		return h.refuse(HostKeyUnknown, key, fmt.Sprintf(
			"check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then pin it in the host's CUE as ssh: %s: %q, or run once with --accept-new-host-keys to record it in %s",
			keyFileType(key), h.field, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))), first))
	}
	return h.record(hostname, remote, key)
}

// record appends key for hostname to the first known_hosts file, unless a
// concurrent dial has recorded the host meanwhile.
func (h *hostKeyChecker) record(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if len(h.files) == 0 {
		return fmt.Errorf("record host key of %q: no known_hosts file", h.name)
	}
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if cb, err := h.db(); err != nil {
		return err
	} else if cb != nil {
		var ke *knownhosts.KeyError
		if err := cb(hostname, remote, key); err == nil {
			return nil
		} else if !errors.As(err, &ke) || len(ke.Want) > 0 {
			h.accept = false
			return h.lookup(hostname, remote, key)
		}
	}
	file := h.files[0]
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("record host key of %q: %w", h.name, err)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record host key of %q: %w", h.name, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("record host key of %q in %q: %w", h.name, file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record host key of %q in %q: %w", h.name, file, err)
	}
	return nil
}

func (h *hostKeyChecker) refuse(kind string, key ssh.PublicKey, hint string) error {
	return &HostKeyError{
		Host:        h.name,
		Address:     h.addr,
		Kind:        kind,
		Fingerprint: ssh.FingerprintSHA256(key),
		Key:         strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))),
		Hint:        hint,
	}
}

// algorithmsFor returns the host key algorithms that can present keys of
// the given types, or nil (the library's defaults) for none.
func algorithmsFor(types []string) []string {
	var algos []string
	add := func(a ...string) {
		for _, x := range a {
			if !slices.Contains(algos, x) {
				algos = append(algos, x)
			}
		}
	}
	for _, t := range types {
		switch t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		case ssh.CertAlgoRSAv01:
			add(ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01)
		default:
			add(t)
		}
	}
	return algos
}

// keyFileType names the sshd host key file holding keys of k's type.
func keyFileType(k ssh.PublicKey) string {
	switch t := k.Type(); {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	default:
		return "*"
	}
}

// noKey is a public key that equals no real key.
type noKey struct{}

func (noKey) Type() string                        { return "cuedeploy-no-key" }
func (noKey) Marshal() []byte                     { return []byte("\x00\x00\x00\x10cuedeploy-no-key") }
func (noKey) Verify([]byte, *ssh.Signature) error { return errors.New("no key") }

// zeroAddr stands for the remote address when asking knownhosts what it
// records for a host name.
var zeroAddr net.Addr = &net.TCPAddr{IP: net.IPv4zero}
