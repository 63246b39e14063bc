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

// TestDeployMixedNixAndGuix deploys one deployment with Nix forum servers
// and a Guix System load balancer onto the local fleet. Guix cannot be
// installed here: the deployer and the hosts run the guix STAND-IN
// (cmd/guix-standin, not GNU Guix), which lays out /gnu/store,
// /var/guix/profiles and /run/current-system as Guix does. The deploy
// process runs in its own mount namespace with private /gnu, /var/guix and
// /etc/guix, so the machine's own are not touched.
func TestDeployMixedNixAndGuix(t *testing.T) {
	fleettest.Require(t)
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "guix"), "cuedeploy.dev/cuedeploy/cmd/guix-standin").CombinedOutput(); err != nil {
		t.Fatalf("build the guix stand-in: %v\n%s", err, out)
	}
	f := fleettest.Up(t, fleet.Config{Hosts: []string{"lb", "forum-1", "forum-2"}, ExtraPath: []string{bin}})
	dir := forumPackage(t, f, "mixedcd", `package mixedcd

import "example.com/forum/shared"

name: "forum-mixed-cd"

_lbConfig: *"../guix/lb.scm" | string @tag(lbConfig)

_forum: shared.#Forum & {
	env: "mixed-cd"
	loadBalancer: address: "127.0.0.1"
	servers: [{address: "127.0.0.1"}, {address: "127.0.0.1"}]
}

hosts: {
	for n, h in _forum.out if n != "lb" {(n): h}
	lb: {
		address: "127.0.0.1"
		tags: ["lb", "guix"]
		guix: {config: _lbConfig, loadPath: ["../guix/modules"], channels: "../guix/channels.scm", authorize: true}
	}
}
`)
	// The same load balancer with the stand-in's marker that makes its
	// activation fail.
	lb, err := os.ReadFile(filepath.Join(dir, "../guix/lb.scm"))
	if err != nil {
		t.Fatal(err)
	}
	failing := strings.Replace(string(lb), "(operating-system", "(define standin-marker '(standin-fail-activation))\n(operating-system", 1)
	if err := os.WriteFile(filepath.Join(dir, "../guix/lb-failing.scm"), []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}

	// A private /gnu, /var/guix and /etc/guix for the deployer.
	priv := t.TempDir()
	var mounts []string
	for _, target := range []string{"/gnu", "/var/guix", "/etc/guix"} {
		src := filepath.Join(priv, strings.ReplaceAll(strings.Trim(target, "/"), "/", "-"))
		for _, d := range []string{src, target} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		mounts = append(mounts, "mount --bind "+src+" "+target)
	}
	script := strings.Join(mounts, " && ") + " && guix archive --generate-key && exec \"$@\""
	inNS := func(args ...string) []string {
		return append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"}, args...)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	wrap = inNS
	defer func() { wrap = nil }()

	r, res := deployJSONRun(t, dir)
	if r.code != 0 {
		t.Fatalf("first deploy: exit %d, want 0", r.code)
	}
	for _, n := range []string{"lb", "forum-1", "forum-2"} {
		if res[n].Status != rollout.Deployed {
			t.Errorf("%s: %s (%s), want deployed", n, res[n].Status, res[n].Error)
		}
	}
	if res["lb"].Backend != "guix" || !strings.HasPrefix(res["lb"].System, "/gnu/store/") {
		t.Errorf("lb: backend %q system %q, want a guix system in /gnu/store", res["lb"].Backend, res["lb"].System)
	}
	lbHost := host(t, f, "lb")
	if cur, _ := os.Readlink(lbHost.Path("/run/current-system")); cur != res["lb"].System {
		t.Errorf("lb runs %q, want %q", cur, res["lb"].System)
	}
	gen, _ := os.Readlink(lbHost.Path("/var/guix/profiles/system"))

	r, res = deployJSONRun(t, dir)
	for _, n := range []string{"lb", "forum-1", "forum-2"} {
		if r.code != 0 || res[n].Status != rollout.Unchanged {
			t.Errorf("redeploy: exit %d, %s %s, want unchanged", r.code, n, res[n].Status)
		}
	}

	r, res = deployJSONRun(t, dir, "-t", "lbConfig=../guix/lb-failing.scm", "--on", "tag:guix")
	if r.code != 1 || res["lb"].Status != rollout.RolledBack {
		t.Errorf("failing guix activation: exit %d, lb %+v; want exit 1 and rolled-back", r.code, res["lb"])
	}
	if now, _ := os.Readlink(lbHost.Path("/var/guix/profiles/system")); now != gen {
		t.Errorf("lb's profile is %q after rollback, want %q", now, gen)
	}
	if cur, _ := os.Readlink(lbHost.Path("/run/current-system")); cur == res["lb"].System {
		t.Errorf("lb still runs the failed system %q", cur)
	}
}
