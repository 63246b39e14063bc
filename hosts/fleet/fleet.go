// Package fleet runs the local test fleet: real hosts on this machine, each
// an sshd on 127.0.0.1 with its own /nix, /run, /gnu and /var/guix.
//
// Rules this package keeps:
//
//   - Every host is /usr/sbin/sshd -D started inside its own mount namespace
//     (unshare -m --propagation private), where per-host directories are
//     bind-mounted over /nix, /run, /gnu and /var/guix. Nothing is mounted
//     in the machine's namespace, so nothing needs unmounting: the mounts die
//     with the host's last process.
//   - A host is stopped by killing exactly the processes of its mount
//     namespace, after checking that the namespace still holds this host's
//     /nix; a recorded PID is only trusted while it is still this host's
//     sshd. Nothing is ever killed by name.
//   - All state lives in one state directory: the client key (generated once
//     per state directory), known_hosts, fleet.json and hosts/NAME/. The
//     machine's own /etc/ssh, /root/.ssh and sshd on port 22 are never used.
//   - The library never prints; callers (cmd/localfleet, tests) report.
//
// A Fleet is not safe for concurrent use.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Address is where every host of the fleet listens; hosts differ by port.
const Address = "127.0.0.1"

// User is the SSH user the client key logs in as.
const User = "root"

// DefaultBasePort is the first port the CLI gives out when not told otherwise.
const DefaultBasePort = 2201

// Config says which fleet Up brings up.
type Config struct {
	// StateDir holds everything the fleet makes; it is created if missing.
	StateDir string
	// Hosts are the host names: letters, digits, '-', '.', '_'.
	Hosts []string
	// BasePort is the first port; host i listens on BasePort+i. Zero picks
	// free ports (not consecutive), which is what tests that may run in
	// parallel want.
	BasePort int
	// ExtraPath directories come first on the hosts' PATH, so that a
	// stand-in program (such as the stand-in guix) can be found there.
	ExtraPath []string
	// NixConf lines are added to every host's nix.conf (for example a
	// substituter), which the host's nix and its daemon read.
	NixConf []string
}

// Fleet is a running local test fleet, as recorded in its state file.
type Fleet struct {
	// StateDir is the absolute state directory.
	StateDir string `json:"stateDir"`
	// ClientKey is the path of the passphrase-less ed25519 private key that
	// every host trusts for root.
	ClientKey string `json:"clientKey"`
	// KnownHosts is a known_hosts file pinning every host's key.
	KnownHosts string `json:"knownHosts"`
	// ExtraPath is Config.ExtraPath, made absolute.
	ExtraPath []string `json:"extraPath,omitempty"`
	// Hosts in the order they were configured.
	Hosts []Host `json:"hosts"`

	// madeKey and made (host directories) record what a failed Up must
	// remove again, and nothing it found.
	madeKey bool
	made    []string
	// procs are the sshd processes this process started, by host name; they
	// are waited for so that stopped hosts leave no zombies.
	procs map[string]*proc
}

// Host is one host of the fleet.
type Host struct {
	Name string `json:"name"`
	Port int    `json:"port"`
	// Dir holds the host's files: nix/, run/, gnu/ and var-guix/ (its /nix,
	// /run, /gnu and /var/guix), sshd_config, nix.conf, keys and sshd.log.
	Dir string `json:"dir"`
	// HostKey is the host's public key, "ssh-ed25519 AAAA...".
	HostKey string `json:"hostKey"`
	// PID is the listening sshd, or 0 when the host is stopped.
	PID int `json:"pid"`
	// MountNS names the host's mount namespace ("mnt:[4026532...]") while it
	// runs; every process in it belongs to the host.
	MountNS string `json:"mountNS,omitempty"`
}

// Connections counts the SSH connections the host has accepted since it was
// first brought up (restarts included), from the "Accepted publickey" lines
// in its log.
func (h Host) Connections() (int, error) {
	conns, _, err := h.SSHDCounts()
	return conns, err
}

// SSHDCounts reads the host's sshd log once for the connections it has
// accepted and the sessions (one per remote command) it has started; the
// fleet's LogLevel VERBOSE logs both.
func (h Host) SSHDCounts() (conns, sessions int, err error) {
	b, err := os.ReadFile(h.logFile())
	if err != nil {
		return 0, 0, fmt.Errorf("read the sshd log of %q: %w", h.Name, err)
	}
	log := string(b)
	return strings.Count(log, "Accepted publickey for "), strings.Count(log, "Starting session: "), nil
}

// DaemonConnections counts the connections the host's nix daemon has
// accepted, from the lines its log has for each.
func (h Host) DaemonConnections() (int, error) {
	b, err := os.ReadFile(filepath.Join(h.Dir, "nix-daemon.log"))
	if err != nil {
		return 0, fmt.Errorf("read the nix daemon log of %q: %w", h.Name, err)
	}
	return strings.Count(string(b), "accepted connection"), nil
}

// Alive reports whether the host's recorded sshd is still running.
func (h Host) Alive() bool {
	return h.PID > 0 && isHostSSHD(h.PID, h.sshdConfig())
}

// Path maps an absolute path as the host sees it to the path on this
// machine: /nix, /run, /gnu and /var/guix are the host's own, every other
// path is shared with the machine.
func (h Host) Path(p string) string {
	p = filepath.Clean(p)
	for _, m := range mounts {
		if p == m.target || strings.HasPrefix(p, m.target+"/") {
			return filepath.Join(h.Dir, m.dir, strings.TrimPrefix(p, m.target))
		}
	}
	return p
}

// mounts are the directories each host has its own copy of.
var mounts = []struct{ dir, target string }{
	{"nix", "/nix"},
	{"run", "/run"},
	{"gnu", "/gnu"},
	{"var-guix", "/var/guix"},
}

func (h Host) sshdConfig() string { return filepath.Join(h.Dir, "sshd_config") }
func (h Host) logFile() string    { return filepath.Join(h.Dir, "sshd.log") }

// Host returns the host called name.
func (f *Fleet) Host(name string) (Host, bool) {
	if i := f.index(name); i >= 0 {
		return f.Hosts[i], true
	}
	return Host{}, false
}

// SSHOptions are the ssh(1) options that reach h as root with the client
// key and its pinned host key, ignoring the user's ssh config. The
// destination is User@Address.
func (f *Fleet) SSHOptions(h Host) []string {
	return []string{
		"-F", "/dev/null",
		"-i", f.ClientKey,
		"-p", strconv.Itoa(h.Port),
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + f.KnownHosts,
	}
}

const stateFile = "fleet.json"

// ErrNoFleet is returned by Load when the state directory records no fleet.
var ErrNoFleet = errors.New("no fleet")

// Up creates and starts the fleet c describes, and returns once every host's
// sshd listens. When any host fails, Up stops what it started and removes
// what it made.
func Up(ctx context.Context, c Config) (_ *Fleet, err error) {
	if err := Requirements(ctx); err != nil {
		return nil, err
	}
	f, err := newFleet(c)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(f.StateDir, stateFile)); err == nil {
		return nil, fmt.Errorf("bring up fleet: a fleet is already recorded in %q; take it down first (localfleet down --state %s)", f.StateDir, f.StateDir)
	}
	madeState := false
	if _, err := os.Stat(f.StateDir); errors.Is(err, fs.ErrNotExist) {
		madeState = true
	}
	defer func() {
		if err != nil {
			for _, h := range f.Hosts {
				err = errors.Join(err, stopHost(h, f.procs[h.Name]))
			}
			err = errors.Join(err, f.remove(f.made, madeState))
		}
	}()
	if err := os.MkdirAll(filepath.Join(f.StateDir, "hosts"), 0o755); err != nil {
		return nil, fmt.Errorf("bring up fleet: %w", err)
	}
	for _, m := range mounts {
		// The mount points must exist on the machine for the bind mounts
		// done inside each host's namespace; they stay empty here.
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return nil, fmt.Errorf("bring up fleet: create mount point: %w", err)
		}
	}
	if f.madeKey, err = clientKey(f.ClientKey); err != nil {
		return nil, err
	}
	for i := range f.Hosts {
		if err := makeHost(&f.Hosts[i], f.ClientKey+".pub", c.NixConf); err != nil {
			return nil, err
		}
		f.made = append(f.made, f.Hosts[i].Dir)
	}
	auto := c.BasePort == 0
	if err := f.startAll(ctx, auto); err != nil {
		return nil, err
	}
	if err := f.save(); err != nil {
		return nil, err
	}
	return f, nil
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	// Paths end up in sshd_config and in a shell's arguments; keeping them
	// plain avoids quoting rules of both.
	plainPathRE = regexp.MustCompile(`^[A-Za-z0-9/._+,@%=:-]+$`)
)

func newFleet(c Config) (*Fleet, error) {
	if c.StateDir == "" {
		return nil, errors.New("bring up fleet: no state directory")
	}
	if len(c.Hosts) == 0 {
		return nil, errors.New("bring up fleet: no hosts")
	}
	if c.BasePort < 0 || c.BasePort+len(c.Hosts)-1 > 65535 {
		return nil, fmt.Errorf("bring up fleet: base port %d leaves no room for %d hosts", c.BasePort, len(c.Hosts))
	}
	dir, err := filepath.Abs(c.StateDir)
	if err != nil {
		return nil, fmt.Errorf("bring up fleet: %w", err)
	}
	if !plainPathRE.MatchString(dir) {
		return nil, fmt.Errorf("bring up fleet: state directory %q: use a path of letters, digits and ./_+,@%%=:-", dir)
	}
	f := &Fleet{
		StateDir:   dir,
		ClientKey:  filepath.Join(dir, "client_key"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
	}
	for _, p := range c.ExtraPath {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("bring up fleet: %w", err)
		}
		if !plainPathRE.MatchString(a) || strings.Contains(a, ":") {
			return nil, fmt.Errorf("bring up fleet: extra path %q: use a path of letters, digits and ./_+,@%%=-", a)
		}
		f.ExtraPath = append(f.ExtraPath, a)
	}
	seen := map[string]bool{}
	for i, name := range c.Hosts {
		if !nameRE.MatchString(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("bring up fleet: host name %q: use letters, digits, '-', '.' and '_'", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("bring up fleet: host %q named twice", name)
		}
		seen[name] = true
		h := Host{Name: name, Dir: filepath.Join(dir, "hosts", name)}
		if c.BasePort != 0 {
			h.Port = c.BasePort + i
		}
		f.Hosts = append(f.Hosts, h)
	}
	return f, nil
}

// startAll starts every host, a few at a time. With auto, hosts get free
// ports, and a port taken between choosing and binding is chosen again.
func (f *Fleet) startAll(ctx context.Context, auto bool) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = make([]error, len(f.Hosts))
		sem  = make(chan struct{}, 16)
	)
	for i := range f.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			h := f.Hosts[i]
			var p *proc
			var err error
			for attempt := 0; ; attempt++ {
				if auto {
					if h.Port, err = freePort(); err != nil {
						break
					}
				}
				p, err = start(ctx, &h, f.ExtraPath)
				if !auto || !errors.Is(err, errPortInUse) || attempt == 4 {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			f.Hosts[i] = h
			errs[i] = err
			if p != nil {
				f.remember(h.Name, p)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *Fleet) remember(name string, p *proc) {
	if f.procs == nil {
		f.procs = map[string]*proc{}
	}
	f.procs[name] = p
}

// Load returns the fleet recorded in stateDir by Up. It errs with ErrNoFleet
// when there is none.
func Load(stateDir string) (*Fleet, error) {
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("load fleet: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load fleet: %w in %q", ErrNoFleet, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("load fleet: %w", err)
	}
	var f Fleet
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("load fleet %q: %w", dir, err)
	}
	return &f, nil
}

// save writes the state file and known_hosts, each replaced atomically.
func (f *Fleet) save() error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("save fleet: %w", err)
	}
	var kh strings.Builder
	for _, h := range f.Hosts {
		fmt.Fprintf(&kh, "[%s]:%d %s\n", Address, h.Port, h.HostKey)
	}
	if err := writeAtomic(f.KnownHosts, []byte(kh.String()), 0o644); err != nil {
		return fmt.Errorf("save fleet: %w", err)
	}
	if err := writeAtomic(filepath.Join(f.StateDir, stateFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save fleet: %w", err)
	}
	return nil
}

func writeAtomic(path string, b []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (f *Fleet) index(name string) int {
	for i, h := range f.Hosts {
		if h.Name == name {
			return i
		}
	}
	return -1
}

// Stop stops host name and every process it runs; its files stay, so Start
// brings it back with the same key, store and log.
func (f *Fleet) Stop(name string) error {
	i := f.index(name)
	if i < 0 {
		return fmt.Errorf("stop host %q: no such host", name)
	}
	if err := stopHost(f.Hosts[i], f.procs[name]); err != nil {
		return err
	}
	delete(f.procs, name)
	f.Hosts[i].PID, f.Hosts[i].MountNS = 0, ""
	return f.save()
}

// Start starts host name again on its port, with its key, store and log;
// a running host is left as is.
func (f *Fleet) Start(ctx context.Context, name string) error {
	i := f.index(name)
	if i < 0 {
		return fmt.Errorf("start host %q: no such host", name)
	}
	if f.Hosts[i].Alive() {
		return nil
	}
	// Sessions of an sshd that died on its own would outlive its namespace
	// record; end them first.
	if err := stopHost(f.Hosts[i], f.procs[name]); err != nil {
		return err
	}
	h := f.Hosts[i]
	p, err := start(ctx, &h, f.ExtraPath)
	if err != nil {
		return err
	}
	f.remember(name, p)
	f.Hosts[i] = h
	return f.save()
}

// Down stops every host and removes the state directory's contents that the
// fleet made, and the directory itself when nothing else is left in it.
func (f *Fleet) Down() error {
	var errs []error
	for _, h := range f.Hosts {
		errs = append(errs, stopHost(h, f.procs[h.Name]))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f.procs = nil
	f.madeKey = true
	var dirs []string
	for _, h := range f.Hosts {
		dirs = append(dirs, h.Dir)
	}
	return f.remove(dirs, true)
}

// remove deletes the host directories dirs and the fleet's files, and the
// state directory too when stateDir is set and it is empty. Hosts must be
// stopped.
func (f *Fleet) remove(dirs []string, stateDir bool) error {
	var errs []error
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	paths := []string{filepath.Join(f.StateDir, "hosts"), f.KnownHosts, filepath.Join(f.StateDir, stateFile)}
	if f.madeKey {
		paths = append(paths, f.ClientKey, f.ClientKey+".pub")
	}
	if stateDir {
		paths = append(paths, f.StateDir)
	}
	for _, p := range paths {
		err := os.Remove(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			continue
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove fleet files: %w", err)
	}
	return nil
}
