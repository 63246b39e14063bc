package nix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/backend/backendtest"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/schema"
)

// needNix skips (fails under CI) without a nix store this test may write.
func needNix(t *testing.T) {
	t.Helper()
	for _, cmd := range []string{"nix", "nix-store", "nix-instantiate"} {
		if _, err := exec.LookPath(cmd); err != nil {
			backendtest.Skip(t, cmd+" not found on PATH")
		}
	}
	if os.Geteuid() != 0 {
		backendtest.Skip(t, "not root: the test builds into the nix store")
	}
}

// twoPaths writes a file with two derivations, lib and app (which refers
// to lib), both with outputs out and dev, a fresh salt in each.
func twoPaths(t *testing.T) string {
	t.Helper()
	salt := make([]byte, 8)
	rand.Read(salt)
	file := filepath.Join(t.TempDir(), "two.nix")
	expr := `let
  mk = name: script: derivation {
    inherit name;
    salt = "` + hex.EncodeToString(salt) + `";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
    outputs = [ "out" "dev" ];
    note = "a \"quoted\" value\twith a tab\nand a newline";
  };
  lib = mk "pathinfo-lib" "echo lib > $out; echo dev > $dev";
in {
  inherit lib;
  app = mk "pathinfo-app" "echo ${lib} > $out; echo dev > $dev";
}`
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func nixLines(t *testing.T, argv ...string) []string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return strings.Fields(string(out))
}

// pathInfoOf is what nix path-info records of the closure of paths.
func pathInfoOf(t *testing.T, o Options, paths []string) map[string]pathInfo {
	t.Helper()
	out, err := hosts.Output(context.Background(), hosts.Local{}, hosts.Cmd{Argv: o.pathInfoArgv(paths)})
	if err != nil {
		t.Fatal(err)
	}
	info, err := parsePathInfo(out)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestDrvOutputMatchesNix reads the out path from real .drv files, with
// two outputs and escaped strings in them, and compares it with what
// nix-store --query --outputs says.
func TestDrvOutputMatchesNix(t *testing.T) {
	needNix(t)
	file := twoPaths(t)
	drvs := nixLines(t, "nix-instantiate", "--option", "substituters", "", file, "-A", "lib", "-A", "app")
	for _, drv := range drvs {
		got, err := drvOutput(drv)
		if err != nil {
			t.Fatal(err)
		}
		var want string
		for _, o := range nixLines(t, "nix-store", "--query", "--outputs", drv) {
			if !strings.HasSuffix(o, "-dev") {
				want = o
			}
		}
		if got != want {
			t.Errorf("out of %s: got %s, nix says %s", drv, got, want)
		}
	}
}

// TestPathInfoMatchesDumpDB builds a two-path closure and checks that the
// one nix path-info process gives what nix-store --dump-db records (hash,
// size, deriver, references), and an order with each path after what it
// references.
func TestPathInfoMatchesDumpDB(t *testing.T) {
	needNix(t)
	file := twoPaths(t)
	outs := nixLines(t, "nix-build", "--option", "substituters", "", "--no-out-link", file, "-A", "app.out")
	o := Options{NixOptions: map[string]string{"substituters": ""}}
	got := pathInfoOf(t, o, outs)
	var paths []string
	for p := range got {
		paths = append(paths, p)
	}
	db, err := hosts.Output(context.Background(), hosts.Local{}, hosts.Cmd{Argv: o.dumpDBArgv(paths)})
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseDumpDB(db)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("closure of %s: %d paths, want app and lib", outs[0], len(got))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("nix path-info gives\n%+v\nnix-store --dump-db records\n%+v", got, want)
	}
	order := dependencyOrder(got)
	if len(order) != 2 || order[1] != outs[0] {
		t.Errorf("dependency order %v: want lib, then %s", order, outs[0])
	}
}

func TestParsePathInfoForms(t *testing.T) {
	const hex16 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, h := range []string{
		"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
		"sha256:" + hex16,
	} {
		got, err := sha256Base16(h)
		if err != nil || got != hex16 {
			t.Errorf("sha256Base16(%q) = %q, %v; want %s", h, got, err, hex16)
		}
	}
	for _, h := range []string{"md5:abc", "sha256-AAAA", "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e"} {
		if _, err := sha256Base16(h); err == nil {
			t.Errorf("sha256Base16(%q): no error", h)
		}
	}
	// Nix 2.19 and later print an object keyed by path.
	obj := `{"/nix/store/a-x":{"narHash":"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","narSize":120,"references":["/nix/store/a-x"],"deriver":"/nix/store/d-x.drv"}}`
	info, err := parsePathInfo(obj)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pathInfo{"/nix/store/a-x": {narHash: "sha256:" + hex16, narSize: 120, deriver: "/nix/store/d-x.drv", references: []string{"/nix/store/a-x"}}}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("got %+v, want %+v", info, want)
	}
	if _, err := parsePathInfo(`{"/nix/store/a-x":null}`); err == nil {
		t.Error("an invalid path in the object form: no error")
	}
}

// TestBuildEachKnowsWhatPathInfoKnows builds, in one batch, a system that
// builds, one that does not and one a host would build itself. What the
// local nix-store --serve said of the built closure while the batch ran
// (hashes in base32 there) is what nix path-info records; each target is
// handed on once, the broken one with the build's error, the host-built
// one with its derivation's closure; the built system has its GC root.
// The session's queries, asked directly, give the same.
func TestBuildEachKnowsWhatPathInfoKnows(t *testing.T) {
	needNix(t)
	file := twoPaths(t)
	broken := filepath.Join(t.TempDir(), "broken.nix")
	if err := os.WriteFile(broken, []byte(`derivation { name = "pathinfo-broken"; salt = "`+filepath.Base(file)+`"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo this system does not build >&2; exit 1" ]; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	drvs := nixLines(t, "nix-instantiate", "--option", "substituters", "", file, "-A", "app", "-A", "lib")
	brokenDrv := nixLines(t, "nix-instantiate", broken)[0]
	var ts []*backend.Target
	for i, d := range []string{drvs[0], brokenDrv, drvs[1]} {
		out, err := drvOutput(d)
		if err != nil {
			t.Fatal(err)
		}
		build := "local"
		if i == 2 {
			build = "target"
		}
		ts = append(ts, &backend.Target{Host: &schema.Host{Name: fmt.Sprintf("h%d", i), Build: build}, Deployment: "pathinfo", Drv: d, Out: out})
	}
	roots := t.TempDir()
	b := New(Options{NixOptions: map[string]string{"substituters": ""}, GCRootDir: roots})
	handed := map[int]int{}
	errs := map[int]error{}
	b.BuildEach(context.Background(), hosts.Local{}, ts, func(i int, err error) {
		handed[i]++
		errs[i] = err
	})
	if !reflect.DeepEqual(handed, map[int]int{0: 1, 1: 1, 2: 1}) {
		t.Fatalf("targets handed on %v times, want each once", handed)
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("errors %v, want none for the system that builds and the host-built one", errs)
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "pathinfo-broken") {
		t.Errorf("the broken system's error is %v, want one naming its derivation", errs[1])
	}

	want := pathInfoOf(t, b.opts, []string{ts[0].Out})
	if len(want) != 2 {
		t.Fatalf("nix path-info: %d paths in the closure of %s, want app and lib", len(want), ts[0].Out)
	}
	for p, in := range want {
		if got := b.info[p]; !reflect.DeepEqual(got, in) {
			t.Errorf("%s: the session said %+v, nix path-info records %+v", p, got, in)
		}
	}
	// The session's own answers, as BuildEach asks them; a path that is
	// not valid is left out.
	s := startSession(context.Background(), hosts.Local{}, b.opts.localServeArgv())
	defer s.wait()
	if err := s.hello(); err != nil {
		t.Fatal(err)
	}
	closure, err := s.queryClosure([]string{ts[0].Out})
	if err != nil {
		t.Fatal(err)
	}
	if len(closure) != len(want) {
		t.Errorf("query-closure %v, want the %d paths nix path-info has", closure, len(want))
	}
	got, err := s.queryPathInfos(append(closure, ts[1].Out))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("query-path-infos gives\n%+v\nnix path-info records\n%+v", got, want)
	}
	if !reflect.DeepEqual(ts[0].Closure, dependencyOrder(want)) {
		t.Errorf("closure %v, want %v (dependencies first)", ts[0].Closure, dependencyOrder(want))
	}
	if drvClosure := nixLines(t, "nix-store", "--query", "--requisites", ts[2].Drv); len(ts[2].Closure) != len(drvClosure) || ts[2].Closure[len(ts[2].Closure)-1] != ts[2].Drv {
		t.Errorf("host-built closure %v, want the %d paths of its derivation's closure, the derivation last", ts[2].Closure, len(drvClosure))
	}
	if link, err := os.Readlink(filepath.Join(roots, "pathinfo", "h0")); err != nil || link != ts[0].Out {
		t.Errorf("GC root of h0 points at %q (%v), want %s", link, err, ts[0].Out)
	}
	if _, err := os.Lstat(filepath.Join(roots, "pathinfo", "h1")); err == nil {
		t.Error("the broken system has a GC root")
	}
}
