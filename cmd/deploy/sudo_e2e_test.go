package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend/rollout"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// sudoUser is the unprivileged user the sudo test logs in as. The test
// creates it and a sudoers rule for it, and removes both when it ends.
const sudoUser = "cuedeploy-e2e"

// TestDeployAsSudoUser deploys a host as a user other than root, which
// reaches root through sudo -n for the commands that need it.
func TestDeployAsSudoUser(t *testing.T) {
	fleettest.Require(t)
	for _, tool := range []string{"sudo", "useradd", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, tool+" is not installed (Debian package sudo / passwd)")
		}
	}
	if out, err := exec.Command("id", sudoUser).CombinedOutput(); err == nil {
		t.Fatalf("user %s exists already (%s); remove it first", sudoUser, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("useradd", "--system", "--password", "*", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", sudoUser).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", sudoUser).Run() })
	rule := "/etc/sudoers.d/" + sudoUser
	if err := os.WriteFile(rule, []byte(sudoUser+" ALL=(root) NOPASSWD: ALL\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(rule) })

	f := fleettest.Up(t, fleet.Config{Hosts: []string{"lb", "forum-1", "forum-2"}})
	// sshd reads authorized_keys as the user: let it through the test's
	// private temporary directories.
	for _, h := range f.Hosts {
		keys := filepath.Join(h.Dir, "authorized_keys")
		os.Chmod(keys, 0o644)
		for d := filepath.Dir(keys); strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := forum(t, f)
	user := `package cd

hosts: "forum-1": ssh: user: "` + sudoUser + `"
`
	if err := os.WriteFile(filepath.Join(dir, "user.cue"), []byte(user), 0o644); err != nil {
		t.Fatal(err)
	}
	r, res := deployJSONRun(t, dir, "--on", "forum-1")
	if r.code != 0 || res["forum-1"].Status != rollout.Deployed {
		log, _ := os.ReadFile(filepath.Join(host(t, f, "forum-1").Dir, "sshd.log"))
		t.Logf("sshd log:\n%s", log)
		t.Fatalf("exit %d, forum-1 %+v; want deployed", r.code, res["forum-1"])
	}
	h := host(t, f, "forum-1")
	if s := state(t, h); s.current != res["forum-1"].System || s.profile != res["forum-1"].System {
		t.Errorf("forum-1 runs %q and boots %q, want %q", s.current, s.profile, res["forum-1"].System)
	}
	log, err := os.ReadFile(filepath.Join(h.Dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "Accepted publickey for "+sudoUser) || strings.Contains(string(log), "Accepted publickey for root") {
		t.Errorf("the host was not reached as %s only:\n%s", sudoUser, log)
	}
}
