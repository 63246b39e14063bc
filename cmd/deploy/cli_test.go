package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests run the deploy binary on the examples without any host.

func TestHelpAndUsage(t *testing.T) {
	if r := deploy(t, ".", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Commands:") {
		t.Errorf("--help: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := deploy(t, ".", "eval", "--goal", "reboot"); r.code != 2 || !strings.Contains(r.stderr, "--goal") {
		t.Errorf("a bad flag value: exit %d, stderr %q; want 2 naming the flag", r.code, r.stderr)
	}
}

// Flags whose values the transport or the rollout would silently replace
// are usage errors that name the flag, before anything is touched.
func TestRunFlagValues(t *testing.T) {
	prod := "../../examples/forum/production"
	for _, arg := range []string{"--connect-timeout=0", "--connect-timeout=-5s", "--timeout=-1s", "--parallel=0", "--goal=reboot", "--build=remote"} {
		r := deploy(t, prod, "deploy", "--on", "lb", arg)
		flag, _, _ := strings.Cut(arg, "=")
		if r.code != 2 || !strings.HasPrefix(r.stderr, "deploy: "+flag) {
			t.Errorf("deploy %s: exit %d, stderr %q; want 2 naming the flag", arg, r.code, r.stderr)
		}
	}
}

// The help says what a flag takes and where its output is documented.
func TestHelpTexts(t *testing.T) {
	// Help is wrapped to the terminal's width.
	unwrapped := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	r := deploy(t, ".", "deploy", "--help")
	for _, want := range []string{"(switch,boot,test,dry-activate)", "(local,target)", "0: no bound", "for its turn (--parallel), does not count"} {
		if !strings.Contains(unwrapped(r.stdout), want) {
			t.Errorf("deploy --help lacks %q:\n%s", want, r.stdout)
		}
	}
	r = deploy(t, ".", "eval", "--help")
	if strings.Contains(r.stdout, "docs/") || !strings.Contains(unwrapped(r.stdout), `README.md, "deploy eval --json"`) {
		t.Errorf("eval --help does not point to README's deploy eval --json:\n%s", r.stdout)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "\n### `deploy eval --json`\n") {
		t.Error("README.md has no section \"deploy eval --json\", which eval --help points to")
	}
}

// deploy build touches no host: the flags of the rollout (connection,
// parallelism, time-outs, goal) are not its flags, so passing one is a usage
// error rather than being silently ignored.
func TestBuildHasOnlyItsFlags(t *testing.T) {
	prod := "../../examples/forum/production"
	for _, args := range [][]string{
		{"--parallel", "3"}, {"-j", "3"}, {"--timeout", "1m"}, {"--connect-timeout", "5s"},
		{"--accept-new-host-keys"}, {"--fail-fast"}, {"--goal", "boot"},
	} {
		r := deploy(t, prod, append([]string{"build", "--on", "lb"}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "unknown flag "+args[0]) {
			t.Errorf("build %s: exit %d, stderr %q; want 2 naming the flag", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	r := deploy(t, prod, "build", "--help")
	for _, flag := range []string{"--on", "--build", "--nix-option", "--json"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("build --help lacks %s:\n%s", flag, r.stdout)
		}
	}
	r = deploy(t, prod, "deploy", "--help")
	for _, flag := range []string{"--on", "--goal", "--build", "--nix-option", "--connect-timeout", "--accept-new-host-keys", "--parallel", "--fail-fast", "--timeout", "--json"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("deploy --help lacks %s:\n%s", flag, r.stdout)
		}
	}
}

func TestHostsSelection(t *testing.T) {
	prod := "../../examples/forum/production"
	r := deploy(t, prod, "hosts", "--on", "tag:forum,!forum-3", "--json")
	var out struct {
		Deployment string
		Hosts      []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v", r.code, err)
	}
	var names []string
	for _, h := range out.Hosts {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "forum-1,forum-2,forum-4" {
		t.Errorf("selected %s, want forum-1,forum-2,forum-4", got)
	}

	r = deploy(t, prod, "hosts", "--on", "tag:froum")
	if r.code != 2 || !strings.Contains(r.stderr, `select "tag:froum": matches no host`) || !strings.Contains(r.stderr, "forum, lb, production") {
		t.Errorf("unknown tag: exit %d, stderr %q; want 2 listing the known tags", r.code, r.stderr)
	}
	r = deploy(t, prod, "eval", "--on", "web-*")
	if r.code != 2 || !strings.Contains(r.stderr, "forum-1, forum-2") {
		t.Errorf("unmatched glob: exit %d, stderr %q; want 2 listing the host names", r.code, r.stderr)
	}
	// Bad selectors are bad input: exit 2, nothing touched. An empty --on
	// (an unset variable) is not the whole fleet.
	for _, c := range []struct{ on, says string }{
		{"", "--on is empty; leave it out to select every host"},
		{"forum-1,,lb", "empty term"},
		{"[abc", "syntax error in pattern"},
		{"tag:forum,!forum-*", "leaves no host"},
	} {
		r = deploy(t, prod, "hosts", "--on", c.on)
		if r.code != 2 || !strings.Contains(r.stderr, c.says) {
			t.Errorf("--on %q: exit %d, stderr %q; want 2 saying %q", c.on, r.code, r.stderr, c.says)
		}
	}
}

func TestEvalJSONIsThePlan(t *testing.T) {
	r := deploy(t, "../../examples/forum/production", "eval", "--json", "--on", "lb", "--goal", "boot", "--build", "target")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	var p planJSON
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err)
	}
	if p.Deployment != "forum-production" || len(p.Hosts) != 1 {
		t.Fatalf("plan %+v", p)
	}
	h := p.Hosts[0]
	if h.Name != "lb" || h.Backend != "nix" || h.Build != "target" || h.Activation != "boot" || h.DrvPath != "" {
		t.Errorf("host %+v", h)
	}
	var phases []string
	for _, s := range h.Steps {
		if (len(s.Argv) == 0) == (s.Batch == "") {
			t.Errorf("step %+v: want either its own argv or a batch id", s)
		}
		phases = append(phases, s.Phase+"/"+s.On)
	}
	got := strings.Join(phases, " ")
	for _, want := range []string{"eval/local", "connect/target", "copy/target", "build/target", "activate/target", "rollback/target"} {
		if !strings.Contains(got, want) {
			t.Errorf("phases %s lack %s", got, want)
		}
	}
	for _, s := range h.Steps {
		if s.On == "local" && strings.Contains(strings.Join(s.Argv, " "), "--realise") {
			t.Errorf("build target plans a local realise: %v", s.Argv)
		}
	}
	activates := false
	for _, s := range h.Steps {
		// sh -c SCRIPT sh GOAL SYSTEM
		if s.Phase == "activate" && strings.Contains(strings.Join(s.Argv, " "), "/bin/switch-to-configuration") && len(s.Argv) == 6 && s.Argv[4] == "boot" {
			activates = true
		}
	}
	if !activates {
		t.Errorf("the plan does not run switch-to-configuration boot")
	}
}

func TestEvalInstantiateFillsDerivations(t *testing.T) {
	if _, err := os.Stat("/nix/store"); err != nil {
		skipOrFail(t, "no nix store on this machine")
	}
	r := deploy(t, "../../examples/forum/production", "eval", "--json", "--instantiate", "--nix-option", "substituters=")
	var p planJSON
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || r.code != 0 {
		t.Fatalf("exit %d: %v", r.code, err)
	}
	for _, h := range p.Hosts {
		if !strings.HasSuffix(h.DrvPath, "-nixos-system-"+h.Name+".drv") || !strings.HasPrefix(h.System, "/nix/store/") {
			t.Errorf("%s: drv %q system %q", h.Name, h.DrvPath, h.System)
		}
		if _, err := os.Stat(h.DrvPath); err != nil {
			t.Errorf("%s: %v", h.Name, err)
		}
		for _, s := range h.Steps {
			if strings.Contains(strings.Join(s.Argv, " "), "<drv>") {
				t.Errorf("%s: an instantiated plan still has a <drv> placeholder: %v", h.Name, s.Argv)
			}
		}
	}
	// Batched steps are listed once, naming every host they serve, and
	// hold the real derivations.
	for _, b := range p.Batches {
		if b.ID == "nix-realise" {
			if len(b.Hosts) != len(p.Hosts) || strings.Contains(strings.Join(b.Argv, " "), "<drv>") {
				t.Errorf("batch %+v: want all %d hosts and real derivations", b, len(p.Hosts))
			}
			return
		}
	}
	t.Errorf("no nix-realise batch in %+v", p.Batches)
}

// A system that does not evaluate is the host's failure, as in deploy and
// deploy build (exit 1), not the deployer's (exit 3).
func TestEvalInstantiateBrokenSystem(t *testing.T) {
	if _, err := os.Stat("/nix/store"); err != nil {
		skipOrFail(t, "no nix store on this machine")
	}
	dst := copyForum(t)
	file := filepath.Join(dst, "nix", "forum.nix")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, append([]byte(`builtins.throw "broken on purpose" `), src...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := deploy(t, filepath.Join(dst, "production"), "eval", "--instantiate", "--json", "--on", "lb")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "forum.nix") || !strings.Contains(r.stderr, `"lb"`) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and nix's error for lb", r.code, r.stdout, r.stderr)
	}
}

func TestEvalInstantiateGuixWithoutGuix(t *testing.T) {
	empty := t.TempDir()
	// A PATH with the usual tools but no guix.
	t.Setenv("PATH", empty+":/usr/bin:/bin")
	for _, d := range strings.Split("/usr/bin:/bin", ":") {
		if _, err := os.Stat(filepath.Join(d, "guix")); err == nil {
			t.Skip("guix is installed here")
		}
	}
	r := deploy(t, "../../examples/forum/mixed", "eval", "--instantiate", "--on", "lb")
	if r.code != 3 || !strings.Contains(r.stderr, `"guix" not found on PATH: this machine runs it at eval for host "lb"`) ||
		!strings.Contains(r.stderr, "Guix hosts are evaluated on the deployer") {
		t.Errorf("exit %d, stderr %q; want 3 saying guix is missing and why it is needed here", r.code, r.stderr)
	}
}

// Without nix on this machine no host can be evaluated: deploy, build and
// eval --instantiate say so once, before touching any host, and exit 3
// (the deployer's problem), not 1 with every host failed at eval.
func TestWithoutNix(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	prod := "../../examples/forum/production"
	for _, args := range [][]string{
		{"deploy", "--on", "lb,forum-1"},
		{"build", "--on", "lb,forum-1"},
		{"eval", "--instantiate", "--on", "lb,forum-1"},
	} {
		r := deploy(t, prod, args...)
		want := `deploy: "nix-instantiate" not found on PATH: this machine runs it at eval for hosts "forum-1", "lb"`
		if r.code != 3 || !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "nothing was touched") || r.stdout != "" ||
			!strings.Contains(r.stderr, "apt-get install nix-bin") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 3 and only %q...", strings.Join(args, " "), r.code, r.stdout, r.stderr, want)
		}
	}
	// What touches no nix still works.
	for _, args := range [][]string{{"eval", "--on", "lb"}, {"hosts"}, {"validate"}} {
		if r := deploy(t, prod, args...); r.code != 0 {
			t.Errorf("%s without nix: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

func TestGuixGoalRejected(t *testing.T) {
	r := deploy(t, "../../examples/forum/mixed", "eval", "--on", "lb", "--goal", "boot")
	if r.code != 2 || !strings.Contains(r.stderr, `host "lb": activation`) {
		t.Errorf("exit %d, stderr %q; want 2 saying lb cannot boot", r.code, r.stderr)
	}
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so not skipping: %s", why)
	}
	t.Skip(why)
}

// The plan of a fleet grows with the fleet, not with its square: what a
// batch runs is said once, not in every host's steps.
func TestEvalJSONGrowsLinearly(t *testing.T) {
	dir := t.TempDir()
	src := `package fleet

import "list"

name: "linear"
_n: int @tag(n,type=int)
hosts: {for i in list.Range(0, _n, 1) {
	"host-\(i)": {address: "10.0.\(div(i, 250)).\(mod(i, 250)+1)", nix: {file: "s.nix", attribute: "host-\(i)"}}
}}
`
	for name, body := range map[string]string{"fleet.cue": src, "s.nix": "{}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	size := map[int]int{}
	for _, n := range []int{200, 400} {
		r := deploy(t, dir, "-t", fmt.Sprintf("n=%d", n), "eval", "--json")
		if r.code != 0 {
			t.Fatalf("eval of %d hosts: exit %d: %s", n, r.code, r.stderr)
		}
		size[n] = len(r.stdout)
	}
	if ratio := float64(size[400]) / float64(size[200]); ratio > 2.2 {
		t.Errorf("the plan of 400 hosts is %.2fx that of 200 (%d bytes against %d), want about 2x", ratio, size[400], size[200])
	}
}

// A key is needed only to connect: validate, eval and build run without
// it (a CI machine that only builds has none), while deploy names the
// missing file at the line that sets it and touches nothing (exit 2).
func TestIdentityFileNeededOnlyToConnect(t *testing.T) {
	dst := copyForum(t)
	prod := filepath.Join(dst, "production")
	f, err := os.OpenFile(filepath.Join(prod, "deployment.cue"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `hosts: lb: ssh: identityFile: "keys/absent_key"`)
	f.Close()
	for _, args := range [][]string{{"validate"}, {"eval", "--on", "lb"}, {"hosts", "--on", "lb"}} {
		if r := deploy(t, prod, args...); r.code != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 0 without the key", args, r.code, r.stderr)
		}
	}
	r := deploy(t, prod, "deploy", "--on", "lb,forum-1")
	if r.code != 2 || !strings.Contains(r.stderr, "deployment.cue:") || !strings.Contains(r.stderr, `hosts.lb.ssh.identityFile: identity file "`) ||
		!strings.Contains(r.stderr, `keys/absent_key" does not exist`) || !strings.Contains(r.stderr, "nothing was touched") {
		t.Errorf("deploy: exit %d, stderr %q; want 2 naming the missing key at its line", r.code, r.stderr)
	}
	// A host the run does not connect to may lack its key.
	if r := deploy(t, prod, "deploy", "--on", "forum-1", "--goal", "dry-activate", "--connect-timeout", "1s"); strings.Contains(r.stderr, "identity file") {
		t.Errorf("deploy --on forum-1: stderr %q; lb's key does not matter", r.stderr)
	}
}

// copyForum copies examples/forum into a temporary directory and returns it.
func copyForum(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if out, err := exec.Command("cp", "-r", "../../examples/forum/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("copy example: %v: %s", err, out)
	}
	return dst
}

// Nix options reach nix in the order given, which decides what they mean:
// substituters= then extra-substituters=URL leaves URL, the other way round
// nothing. A name given again counts where it was given last.
func TestNixOptionsKeepTheirOrder(t *testing.T) {
	prod := "../../examples/forum/production"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"substituters=", "extra-substituters=file:///x"}, "--option substituters '' --option extra-substituters file:///x --argstr"},
		{[]string{"extra-substituters=file:///x", "substituters="}, "--option extra-substituters file:///x --option substituters '' --argstr"},
		{[]string{"substituters=a", "extra-substituters=file:///x", "substituters="}, "--option extra-substituters file:///x --option substituters '' --argstr"},
	} {
		args := []string{"eval", "--on", "lb"}
		for _, a := range c.args {
			args = append(args, "--nix-option", a)
		}
		r := deploy(t, prod, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "nix-instantiate "+c.want) {
			t.Errorf("%v: exit %d, plan:\n%s\nwant nix-instantiate %s", c.args, r.code, r.stdout, c.want)
		}
	}
}

// --on given again adds its terms; it does not replace the earlier ones.
func TestRepeatedOnAddsUp(t *testing.T) {
	prod := "../../examples/forum/production"
	for args, want := range map[string]string{
		"--on lb --on forum-1":              "forum-1 lb",
		"--on tag:forum --on !forum-3":      "forum-1 forum-2 forum-4",
		"--on forum-1,forum-2 --on forum-2": "forum-1 forum-2",
	} {
		r := deploy(t, prod, append([]string{"hosts", "--json"}, strings.Fields(args)...)...)
		var out struct{ Hosts []struct{ Name string } }
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
			t.Fatalf("%s: exit %d, %v", args, r.code, err)
		}
		var names []string
		for _, h := range out.Hosts {
			names = append(names, h.Name)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("hosts %s: %q, want %q", args, got, want)
		}
	}
	if r := deploy(t, prod, "hosts", "--on", "lb", "--on", ""); r.code != 2 {
		t.Errorf("an empty --on beside another: exit %d, want 2", r.code)
	}
}
