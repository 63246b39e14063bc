package guix_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/backend/guix"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
	"cuedeploy.dev/cuedeploy/schema"
)

// requireLocal skips (or under CI fails) when this machine cannot run the
// stand-in in mount namespaces.
func requireLocal(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		backendtest.Skip(t, "not root: the stand-in's /gnu and /var/guix are bind-mounted in mount namespaces")
	}
	for _, tool := range []string{"guile", "unshare", "mount", "tar", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			backendtest.Skip(t, tool+" is not on PATH")
		}
	}
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "true").CombinedOutput(); err != nil {
		backendtest.Skip(t, "cannot create a mount namespace: "+err.Error()+": "+string(out))
	}
}

// standin builds the guix stand-in and returns a directory holding it as
// "guix".
func standin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "guix"), "cuedeploy.dev/cuedeploy/cmd/guix-standin").CombinedOutput()
	if err != nil {
		t.Fatalf("build the guix stand-in: %v\n%s", err, out)
	}
	return dir
}

// nsDirs makes a place's own /gnu, /var/guix, /etc/guix and /run under a
// temporary directory and returns the bind pairs for backendtest.Namespace.
// The mount points must exist on this machine; they are made empty if not.
func nsDirs(t *testing.T, targets ...string) (string, [][2]string) {
	t.Helper()
	root := t.TempDir()
	var binds [][2]string
	for _, tg := range targets {
		src := filepath.Join(root, strings.ReplaceAll(strings.TrimPrefix(tg, "/"), "/", "-"))
		for _, d := range []string{src, tg} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		binds = append(binds, [2]string{src, tg})
	}
	return root, binds
}

func withPath(bin string) []string { return []string{"PATH=" + bin + ":" + os.Getenv("PATH")} }

func systems(t *testing.T) string {
	dir, err := filepath.Abs("testdata/systems")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func guixHost(dir, name, config, build string) *schema.Host {
	return &schema.Host{
		Name: name, Address: fleet.Address, Build: build, Activation: "switch",
		SSH: schema.SSH{User: "root", Port: 22},
		Guix: &schema.Guix{
			Config:    filepath.Join(dir, config),
			LoadPath:  []string{filepath.Join(dir, "modules")},
			Channels:  filepath.Join(dir, "channels.scm"),
			Authorize: true,
		},
	}
}

// place is a host the suite deploys to and where its stand-in logs.
type place struct {
	exec hosts.Executor
	log  string
}

// hostsFor returns n fresh hosts: fleet hosts over SSH when the fleet can
// run here, else Namespace hosts (a mount namespace per command, no SSH).
func hostsFor(t *testing.T, bin string, n int) []place {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = "guix-" + string(rune('a'+i))
	}
	if err := fleet.Requirements(context.Background()); err != nil && os.Getenv("CI") == "" {
		t.Logf("the local fleet cannot run (%v); using Namespace hosts without SSH", err)
		var ps []place
		for _, name := range names {
			root, binds := nsDirs(t, "/gnu", "/var/guix", "/run")
			ps = append(ps, place{
				exec: backendtest.Namespace{Name: name, Binds: binds, Env: withPath(bin)},
				log:  filepath.Join(root, "var-guix", "standin.log"),
			})
		}
		return ps
	}
	f := fleettest.Up(t, fleet.Config{Hosts: names, ExtraPath: []string{bin}})
	var ps []place
	for _, h := range f.Hosts {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := hosts.Dial(ctx, hosts.DialOptions{
			Name: h.Name, Address: fleet.Address, Port: h.Port, User: fleet.User,
			IdentityFile: f.ClientKey, KnownHostsFiles: []string{f.KnownHosts},
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ps = append(ps, place{exec: c, log: h.Path("/var/guix/standin.log")})
	}
	return ps
}

// TestContract runs the backend contract suite against the guix stand-in,
// once with build local and once with build target.
func TestContract(t *testing.T) {
	requireLocal(t)
	bin := standin(t)
	depRoot, binds := nsDirs(t, "/gnu", "/var/guix", "/etc/guix")
	deployer := backendtest.Namespace{Name: "local", Binds: binds, Env: withPath(bin)}
	// A Guix installation has an archive key; the stand-in makes one.
	if err := deployer.Run(context.Background(), hosts.Cmd{
		Argv: []string{"guix", "archive", "--generate-key"}, Env: []string{"GUIX_STANDIN_LOG=/dev/null"},
	}); err != nil {
		t.Fatal(err)
	}
	places := hostsFor(t, bin, 2)
	dir := systems(t)
	for i, build := range []string{"local", "target"} {
		t.Run("build-"+build, func(t *testing.T) {
			// Each run checks only its own commands against its plans.
			os.Remove(filepath.Join(depRoot, "var-guix", "standin.log"))
			b := guix.New()
			fx := backendtest.Fixture{
				Backend: b,
				Local:   deployer,
				NewHost: func(*testing.T) hosts.Executor { return places[i].exec },
				Good:    guixHost(dir, "good", "good.scm", build),
				Second:  guixHost(dir, "second", "second.scm", build),
				Failing: guixHost(dir, "failing", "failing.scm", build),
				Says:    []string{"activating system..."}, // what the stand-in's reconfigure prints, on standard output
			}
			backendtest.Run(t, fx)
			if t.Failed() {
				return
			}
			// What ran is what Plan says: every guix command the stand-ins
			// logged is a step of the three targets' instantiated plans.
			var ts []*backend.Target
			for _, h := range []*schema.Host{fx.Good, fx.Second, fx.Failing} {
				ts = append(ts, &backend.Target{Host: h})
			}
			b.Instantiate(context.Background(), deployer, ts)
			var local, target [][]string
			for _, steps := range b.Plan(ts) {
				for _, s := range steps {
					for _, argv := range [][]string{guixCommand(s.Argv), s.StdinFrom} {
						if len(argv) > 0 && argv[0] == "guix" {
							if s.On == backend.OnTarget && len(s.Argv) > 0 && &argv[len(argv)-1] == &s.Argv[len(s.Argv)-1] {
								target = append(target, argv)
							} else {
								local = append(local, argv)
							}
						}
					}
				}
			}
			checkLog(t, filepath.Join(depRoot, "var-guix", "standin.log"), local)
			checkLog(t, places[i].log, target)
		})
	}
	t.Run("SchemeWrittenByStandin", func(t *testing.T) {
		var files []string
		for _, name := range []string{"provenance", "parameters"} {
			m, _ := filepath.Glob(filepath.Join(depRoot, "gnu", "store", "*-system", name))
			files = append(files, m...)
		}
		if len(files) == 0 {
			t.Fatal("no system was built on the deployer")
		}
		guileRead(t, files...)
	})
	t.Run("HostWithAnotherGuix", func(t *testing.T) {
		// Without a channels file the host's reconfigure evaluates with the
		// host's own Guix; when that differs from the deployer's, the
		// system it switches to is not the pushed one, and Activate says so.
		_, binds := nsDirs(t, "/gnu", "/var/guix", "/run")
		host := backendtest.Namespace{Name: "other-guix", Binds: binds,
			Env: append(withPath(bin), "GUIX_STANDIN_REVISION=another-revision")}
		h := guixHost(dir, "good", "good.scm", "local")
		h.Guix.Channels = ""
		tg := &backend.Target{Host: h}
		b := guix.New()
		ctx := context.Background()
		if err := errors.Join(b.Instantiate(ctx, deployer, []*backend.Target{tg})...); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(b.Build(ctx, deployer, []*backend.Target{tg})...); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(ctx, deployer, host, tg); err != nil {
			t.Fatal(err)
		}
		err := b.Activate(ctx, host, tg, "switch")
		if err == nil || !strings.Contains(err.Error(), "pin both with guix.channels") {
			t.Errorf("Activate with another Guix on the host: %v, want the mismatch explained", err)
		}
	})
	t.Run("SyntaxErrorIsGuilesError", func(t *testing.T) {
		broken := filepath.Join(t.TempDir(), "broken.scm")
		b, err := os.ReadFile(filepath.Join(dir, "broken.scm.txt"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(broken, b, 0o644)
		h := guixHost(dir, "broken", "good.scm", "local")
		h.Guix.Config = broken
		errs := guix.New().Instantiate(context.Background(), deployer, []*backend.Target{{Host: h}})
		if errs[0] == nil || !strings.Contains(errs[0].Error(), "unexpected end of input") {
			t.Errorf("Instantiate of a broken file: %v, want Guile's read error", errs[0])
		}
	})
}

// guixCommand is the guix command argv runs: argv itself, or what a shell
// execs ("$@", as the activation's begin line does).
func guixCommand(argv []string) []string {
	if len(argv) > 4 && argv[0] == "sh" && argv[1] == "-c" && strings.HasSuffix(argv[2], `exec "$@"`) {
		return argv[4:]
	}
	return argv
}

// checkLog checks that every argv in a stand-in's log matches one of steps,
// where a placeholder stands for one argument (<missing-paths>: one or more).
func checkLog(t *testing.T, log string, steps [][]string) {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatalf("read stand-in log: %v", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct{ Argv []string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		n++
		ok := false
		for _, s := range steps {
			ok = ok || matchArgv(s, line.Argv)
		}
		if !ok {
			t.Errorf("%s: %s ran but is in no plan", log, hosts.ShellJoin(line.Argv))
		}
	}
	if n == 0 {
		t.Errorf("%s: nothing ran", log)
	}
}

func matchArgv(pattern, argv []string) bool {
	if len(pattern) == 0 {
		return len(argv) == 0
	}
	switch p := pattern[0]; {
	case p == backend.PlaceMissing:
		for i := 1; i <= len(argv); i++ {
			if matchArgv(pattern[1:], argv[i:]) {
				return true
			}
		}
		return false
	case len(argv) == 0:
		return false
	case strings.HasPrefix(p, "<") && strings.HasSuffix(p, ">"):
		return matchArgv(pattern[1:], argv[1:])
	default:
		return p == argv[0] && matchArgv(pattern[1:], argv[1:])
	}
}

// guileRead reads every form of files with the real Guile.
func guileRead(t *testing.T, files ...string) {
	t.Helper()
	const prog = `(for-each (lambda (f) (call-with-input-file f (lambda (p) (let loop ((x (read p))) (unless (eof-object? x) (loop (read p))))))) (cdr (command-line)))`
	for _, f := range files {
		if out, err := exec.Command("guile", "--no-auto-compile", "-c", prog, f).CombinedOutput(); err != nil {
			t.Errorf("guile cannot read %s: %v\n%s", f, err, out)
		}
	}
}

// TestSchemeFilesRead reads every Scheme file the tool ships with Guile:
// the example's operating-system, module and channels files, the test
// systems and the stand-in's own reader.
func TestSchemeFilesRead(t *testing.T) {
	if _, err := exec.LookPath("guile"); err != nil {
		backendtest.Skip(t, "guile is not on PATH (Debian package guile-3.0)")
	}
	var files []string
	for _, dir := range []string{"testdata/systems", "../../examples/forum/guix", "../../cmd/guix-standin"} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".scm") {
				files = append(files, p)
			}
			return nil
		})
	}
	if len(files) < 8 {
		t.Fatalf("found only %v", files)
	}
	guileRead(t, files...)
}

// TestNoGuix: a deployer without guix gets an error that says what is
// missing and what to do.
func TestNoGuix(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	h := guixHost("/src", "lb", "lb.scm", "target")
	errs := guix.New().Instantiate(context.Background(), hosts.Local{}, []*backend.Target{{Host: h}})
	err := errs[0]
	if err == nil {
		t.Fatal("Instantiate succeeded without guix")
	}
	for _, want := range []string{"guix not found on PATH", "install GNU Guix on the deployer", `build: "target"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	var pe *backend.PhaseError
	if !errorsAs(err, &pe) || pe.Phase != backend.PhaseEval {
		t.Errorf("error %v is not in phase eval", err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// TestInterruptedReconfigure interrupts a host's reconfigure while its
// activation runs (the stand-in's slow one) and rolls back. sshd does not
// pass the deployer's signal on to a root login's session, so the
// rollback ends the reconfigure first: otherwise it would switch the host
// to the interrupted system after the rollback was reported.
func TestInterruptedReconfigure(t *testing.T) {
	requireLocal(t)
	if err := fleet.Requirements(context.Background()); err != nil {
		backendtest.Skip(t, "the local fleet cannot run: "+err.Error())
	}
	bin := standin(t)
	_, binds := nsDirs(t, "/gnu", "/var/guix", "/etc/guix")
	deployer := backendtest.Namespace{Name: "local", Binds: binds, Env: withPath(bin)}
	ctx := context.Background()
	if err := deployer.Run(ctx, hosts.Cmd{Argv: []string{"guix", "archive", "--generate-key"}, Env: []string{"GUIX_STANDIN_LOG=/dev/null"}}); err != nil {
		t.Fatal(err)
	}
	host := hostsFor(t, bin, 1)[0]
	dir := systems(t)
	b := guix.New()
	deploy := func(actx context.Context, h *schema.Host) (*backend.Target, backend.State, error) {
		t.Helper()
		tg := &backend.Target{Host: h}
		if err := errors.Join(b.Instantiate(ctx, deployer, []*backend.Target{tg})...); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(b.Build(ctx, deployer, []*backend.Target{tg})...); err != nil {
			t.Fatal(err)
		}
		prev, err := b.State(ctx, host.exec, tg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Push(ctx, deployer, host.exec, tg); err != nil {
			t.Fatal(err)
		}
		return tg, prev, b.Activate(actx, host.exec, tg, "switch")
	}
	good, _, err := deploy(ctx, guixHost(dir, "good", "good.scm", "local"))
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// good.scm with the stand-in's marker, whose activate script sleeps
	// 20 s (real Guix would reject the unbound symbol).
	src, err := os.ReadFile(filepath.Join(dir, "good.scm"))
	if err != nil {
		t.Fatal(err)
	}
	slowHost := guixHost(dir, "slow", "good.scm", "local")
	slowHost.Guix.Config = filepath.Join(t.TempDir(), "slow.scm")
	slowSrc := strings.Replace(string(src), "(services %base-services)", "(services (cons (standin-slow-activation) %base-services))", 1)
	if err := os.WriteFile(slowHost.Guix.Config, []byte(slowSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	slow, prev, err := deploy(actx, slowHost)
	if err == nil {
		t.Fatal("the slow reconfigure was not interrupted")
	}
	sleeping := func() []string { return backendtest.Processes(t, slow.Out+"/activate") }
	if len(sleeping()) == 0 {
		t.Fatalf("no activation of %s running once the reconfigure was interrupted (%v); the test needs it running", slow.Out, err)
	}
	if err := b.Rollback(ctx, host.exec, slow, "switch", prev); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if ps := sleeping(); len(ps) > 0 {
		t.Errorf("after the rollback the interrupted reconfigure still runs: %q", ps)
	}
	// Were it left running, its activation would switch the host within
	// 20 s of starting; the processes are gone, so the state can be read
	// at once.
	s, err := b.State(ctx, host.exec, slow)
	if err != nil {
		t.Fatal(err)
	}
	if s.Current != good.Out || s.Profile != good.Out {
		t.Errorf("after the rollback the host runs %s (profile %s), want %s", s.Current, s.Profile, good.Out)
	}
}
