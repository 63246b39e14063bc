package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SSHD is the sshd every host runs; sshd re-executes itself per connection,
// which needs an absolute path.
const SSHD = "/usr/sbin/sshd"

const (
	readyTimeout = 30 * time.Second // for one host's sshd to listen
	stopTimeout  = 10 * time.Second // for one host's processes to die
	pollInterval = 20 * time.Millisecond
)

var errPortInUse = errors.New("port in use")

// startScript runs inside the new mount namespace: bind the host's own
// directories, start the host's nix daemon (as NixOS runs one) and wait
// for its socket, then become sshd, so the PID recorded is sshd's own.
const startScript = `set -e
mount --bind "$1/nix" /nix
mount --bind "$1/run" /run
mount --bind "$1/gnu" /gnu
mount --bind "$1/var-guix" /var/guix
if command -v nix-daemon >/dev/null; then
	NIX_CONF_DIR="$1/etc-nix" nix-daemon >>"$1/nix-daemon.log" 2>&1 </dev/null &
	i=0
	while [ ! -S /nix/var/nix/daemon-socket/socket ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi
exec "$2" -D -f "$1/sshd_config" -E "$1/sshd.log"`

// proc is an sshd this process started and waits for.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // from Wait, valid once done is closed
}

// start writes h's sshd_config, starts its sshd and waits until it listens,
// then records its PID and mount namespace in h. The sshd outlives ctx and
// this process.
func start(ctx context.Context, h *Host, extraPath []string) (*proc, error) {
	if err := portFree(h.Port); err != nil {
		return nil, fmt.Errorf("start host %q: %w", h.Name, err)
	}
	if err := os.WriteFile(h.sshdConfig(), []byte(sshdConfig(*h, extraPath)), 0o644); err != nil {
		return nil, fmt.Errorf("start host %q: %w", h.Name, err)
	}
	// sshd and the start script log to the same file, opened for appending
	// so that restarts keep earlier connections countable.
	log, err := os.OpenFile(h.logFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start host %q: %w", h.Name, err)
	}
	defer log.Close()
	offset, err := log.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("start host %q: %w", h.Name, err)
	}
	cmd := exec.Command("unshare", "-m", "--propagation", "private",
		"/bin/sh", "-c", startScript, "sh", h.Dir, SSHD)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own session, so that a terminal's ^C to the CLI that started the
	// fleet does not reach the hosts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start host %q: %w", h.Name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, *h, offset); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return nil, err
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	if err == nil && ns == selfNS() {
		err = errors.New("sshd runs in the machine's mount namespace")
	}
	if err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("start host %q: %w", h.Name, err)
	}
	h.PID, h.MountNS = cmd.Process.Pid, ns
	return p, nil
}

// waitReady returns once sshd has logged that it listens on h's port and
// accepts a TCP connection there; the log line rules out another program
// holding the port.
func (p *proc) waitReady(ctx context.Context, h Host, offset int64) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	want := fmt.Sprintf("Server listening on %s port %d.", Address, h.Port)
	addr := net.JoinHostPort(Address, strconv.Itoa(h.Port))
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			tail := logSince(h.logFile(), offset)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("start host %q: port %d: %w", h.Name, h.Port, errPortInUse)
			}
			return fmt.Errorf("start host %q: sshd exited (%v): %s", h.Name, p.err, tail)
		case <-ctx.Done():
			return fmt.Errorf("start host %q: sshd not listening on %s: %w; log: %s",
				h.Name, addr, ctx.Err(), logSince(h.logFile(), offset))
		case <-tick.C:
			if !strings.Contains(logSince(h.logFile(), offset), want) {
				continue
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
				return nil
			}
		}
	}
}

// logSince returns the last lines of the log written after offset.
func logSince(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b[offset:])), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(Address, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d: %w", port, errPortInUse)
	}
	return l.Close()
}

// freePort asks the kernel for a port that is free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(Address, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stopHost kills every process of h: its recorded sshd while that is still
// h's sshd, and every process in h's mount namespace while that namespace
// still has h's directory on /nix. It waits until they are gone. p, when
// not nil, is h's sshd started by this process, reaped here.
func stopHost(h Host, p *proc) error {
	deadline := time.Now().Add(stopTimeout)
	var foreign bool // the namespace was recycled: not h's any more
	for {
		var pids []int
		if h.PID > 0 && isHostSSHD(h.PID, h.sshdConfig()) {
			pids = append(pids, h.PID)
		}
		if h.MountNS != "" && h.MountNS != selfNS() && !foreign {
			in := inNamespace(h.MountNS)
			for _, pid := range in {
				if held, known := holdsNix(pid, h.Dir); known {
					foreign = !held
					break
				}
			}
			if foreign {
				in = nil
			}
			pids = append(pids, in...)
		}
		// The host's nix daemon makes a mount namespace of its own, a copy
		// of the host's: found by the host's /nix it still holds.
		pids = append(pids, holdingNix(h.Dir, h.MountNS)...)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stop host %q: processes %v still alive after %v", h.Name, pids, stopTimeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(pollInterval)
	}
	if p != nil {
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			return fmt.Errorf("stop host %q: sshd %d not reaped after %v", h.Name, p.cmd.Process.Pid, stopTimeout)
		}
	}
	return nil
}

// inNamespace lists the live (not zombie) processes in mount namespace ns.
func inNamespace(ns string) []int {
	var in []int
	for _, pid := range pids() {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && l == ns && !isZombie(pid) {
			in = append(in, pid)
		}
	}
	return in
}

// holdingNix lists the live processes outside this process's namespace
// and outside ns whose /nix is the bind mount of dir/nix.
func holdingNix(dir, ns string) []int {
	self := selfNS()
	var held []int
	for _, pid := range pids() {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || l == self || l == ns || isZombie(pid) {
			continue
		}
		if ok, _ := holdsNix(pid, dir); ok {
			held = append(held, pid)
		}
	}
	return held
}

// holdsNix reports whether pid's /nix is the bind mount of dir/nix, which
// tells a host's namespace from a later one that reuses its identifier;
// known is false when pid is gone.
func holdsNix(pid int, dir string) (held, known bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil || len(b) == 0 {
		return false, false
	}
	src := filepath.Join(dir, "nix")
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...; ROOT is the bound directory
		// relative to its filesystem's root, so a suffix of src.
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == "/nix" && f[3] != "/" && strings.HasSuffix(src, f[3]) {
			return true, true
		}
	}
	return false, true
}

// isHostSSHD reports whether pid is a live sshd started with config. sshd
// rewrites its command line to "sshd: ARGV... [listener] ...", so the
// program is checked by its executable and the config by the -f argument
// in that title (or in a plain argv, before sshd renames itself).
func isHostSSHD(pid int, config string) bool {
	if isZombie(pid) {
		return false
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != SSHD {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	title := strings.ReplaceAll(string(b), "\x00", " ") + " "
	return strings.Contains(title, " -f "+config+" ")
}

// isZombie reports whether pid has exited but not been reaped; a machine
// whose init does not reap keeps those around.
func isZombie(pid int) bool {
	f, err := procStat(pid)
	return err != nil || f[0] == "Z" || f[0] == "X"
}

// pids lists the processes in /proc.
func pids() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// procStat returns the fields of /proc/PID/stat after the command name:
// state first, then ppid, ...; utime, stime, cutime and cstime are
// [11:15].
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// clockTick is the kernel's USER_HZ, the unit of /proc/PID/stat's times.
const clockTick = 100

// ticks adds up /proc stat time fields.
func ticks(fields []string) (time.Duration, error) {
	var total time.Duration
	for _, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		total += time.Duration(n) * time.Second / clockTick
	}
	return total, nil
}

// CPU is the CPU time the host has used so far: what its sshd has reaped
// (every connection and its commands), and what its live children (its
// nix daemon) used and reaped (the daemon's workers).
func (h Host) CPU() (time.Duration, error) {
	f, err := procStat(h.PID)
	if err != nil {
		return 0, fmt.Errorf("CPU time of host %q: %w", h.Name, err)
	}
	total, err := ticks(f[13:15])
	if err != nil {
		return 0, fmt.Errorf("CPU time of host %q: %w", h.Name, err)
	}
	ppid := strconv.Itoa(h.PID)
	for _, pid := range pids() {
		if f, err := procStat(pid); err == nil && f[1] == ppid {
			if t, err := ticks(f[11:15]); err == nil {
				total += t
			}
		}
	}
	return total, nil
}

func selfNS() string {
	ns, _ := os.Readlink("/proc/self/ns/mnt")
	return ns
}
