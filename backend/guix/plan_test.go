package guix

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name.golden, or rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (run go test -update to accept):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// render writes a plan one step per line, as a reviewer reads it.
func render(steps []backend.Step) string {
	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintf(&b, "%-8s %s", s.Phase, s.On)
		if s.Root {
			b.WriteString(" root")
		}
		if s.When != "" {
			fmt.Fprintf(&b, " when(%s)", s.When)
		}
		b.WriteString("\n    $ ")
		if s.StdinFrom != nil {
			b.WriteString(hosts.ShellJoin(s.StdinFrom) + " |\n      ")
		}
		b.WriteString(hosts.ShellJoin(s.Argv) + "\n")
	}
	return b.String()
}

func host(name string, mod func(h *schema.Host)) *schema.Host {
	h := &schema.Host{
		Name: name, Address: "192.0.2.10", Build: "local", Activation: "switch",
		SSH:  schema.SSH{User: "root", Port: 22},
		Guix: &schema.Guix{Config: "/src/forum/guix/lb.scm"},
	}
	if mod != nil {
		mod(h)
	}
	return h
}

// scenarios are the host settings whose plans are pinned as golden files.
var scenarios = []struct {
	name string
	host *schema.Host
}{
	{"plain", host("lb", nil)},
	{"loadpath", host("lb", func(h *schema.Host) {
		h.Guix.LoadPath = []string{"/src/forum/guix/modules", "/src/shared/guix"}
	})},
	{"channels", host("lb", func(h *schema.Host) {
		h.Guix.Channels = "/src/forum/guix/channels.scm"
		h.Guix.LoadPath = []string{"/src/forum/guix/modules"}
	})},
	{"system", host("lb", func(h *schema.Host) { h.Guix.System = "aarch64-linux" })},
	{"authorize", host("lb", func(h *schema.Host) { h.Guix.Authorize = true })},
	{"build-target", host("lb", func(h *schema.Host) { h.Build = "target" })},
	{"build-target-everything", host("lb-2", func(h *schema.Host) {
		h.Build = "target"
		h.Guix.Channels = "/src/pins/channels.scm"
		h.Guix.LoadPath = []string{"/src/forum/guix/modules"}
		h.Guix.System = "x86_64-linux"
		h.Guix.Authorize = true
	})},
}

func TestPlanGolden(t *testing.T) {
	b := New()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			tg := &backend.Target{Host: sc.host}
			got := render(b.Plan([]*backend.Target{tg})[0])
			golden(t, "plan-"+sc.name, got)
			again := render(b.Plan([]*backend.Target{{Host: sc.host}})[0])
			if again != got {
				t.Error("Plan is not deterministic")
			}
		})
	}
}

func TestPlanInstantiated(t *testing.T) {
	tg := &backend.Target{
		Host: host("lb", func(h *schema.Host) { h.Guix.Channels = "/src/forum/guix/channels.scm" }),
		Drv:  "/gnu/store/2lrqzh1dj88zaqa12p3szcwzx3sz33yd-system.drv",
		Out:  "/gnu/store/v6pwmwnbplqrpjd3zsjjinag62b0s9i3-system",
	}
	golden(t, "plan-instantiated", render(New().Plan([]*backend.Target{tg})[0]))
	tg.Host.Build = "target"
	golden(t, "plan-instantiated-build-target", render(New().Plan([]*backend.Target{tg})[0]))
}

// TestPlanPhases checks that every plan covers the phases in order.
func TestPlanPhases(t *testing.T) {
	order := map[string]int{backend.PhaseEval: 0, backend.PhaseBuild: 1, backend.PhaseConnect: 2,
		backend.PhaseCopy: 3, backend.PhaseActivate: 4, backend.PhaseRollback: 5}
	for _, sc := range scenarios {
		steps := New().Plan([]*backend.Target{{Host: sc.host}})[0]
		seen := map[string]bool{}
		last := 0
		for _, s := range steps {
			seen[s.Phase] = true
			if sc.host.Build == "target" && s.Phase == backend.PhaseBuild {
				continue // the host builds after the derivations are copied
			}
			if order[s.Phase] < last {
				t.Errorf("%s: phase %s after a later phase", sc.name, s.Phase)
			}
			last = order[s.Phase]
		}
		for p := range order {
			if !seen[p] {
				t.Errorf("%s: no %s step", sc.name, p)
			}
		}
	}
}

func TestCheckGoals(t *testing.T) {
	var b strings.Builder
	for _, goal := range []string{"switch", "boot", "test", "dry-activate"} {
		errs := New().Check(host("lb", func(h *schema.Host) { h.Activation = goal }))
		fmt.Fprintf(&b, "%s:\n", goal)
		for _, e := range errs {
			fmt.Fprintf(&b, "  %s: %s\n", e.Path, e.Message)
		}
	}
	errs := New().Check(host("lb", func(h *schema.Host) {
		h.Guix.Config = "lb.scm"
		h.Guix.LoadPath = []string{"modules"}
	}))
	fmt.Fprintf(&b, "relative paths:\n")
	for _, e := range errs {
		fmt.Fprintf(&b, "  %s: %s\n", e.Path, e.Message)
	}
	golden(t, "check", b.String())
}

func TestStageFiles(t *testing.T) {
	g := &schema.Guix{
		Config:   "/src/forum/guix/lb.scm",
		LoadPath: []string{"/src/forum/guix/modules", "/src/shared", "/src/shared/"},
		Channels: "/src/forum/guix/channels.scm",
	}
	got := strings.Join(stageFiles(g), " ")
	if want := "src/forum/guix src/shared"; got != want {
		t.Errorf("stageFiles = %q, want %q", got, want)
	}
	if got, want := hosts.ShellJoin(ReconfigureArgv(g, "/run/x")),
		`sh -c 'echo begin $$ && exec "$@"' sh guix time-machine -C /run/x/src/forum/guix/channels.scm -- system reconfigure --save-provenance -L /run/x/src/forum/guix/modules -L /run/x/src/shared -L /run/x/src/shared /run/x/src/forum/guix/lb.scm`; got != want {
		t.Errorf("ReconfigureArgv = %s\nwant %s", got, want)
	}
}
