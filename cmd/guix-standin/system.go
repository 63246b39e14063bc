package main

// guix system, guix build and guix gc, as far as the backend uses them.

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// readOS is the Guile program that reads an operating-system file: every
// form must read (so a syntax error is Guile's own error), and it prints
// host-name and whether the stand-in's failure marker appears. Files after
// the first (load-path modules) are only read.
//
//go:embed read-os.scm
var readOS string

// osInfo is what the stand-in learns from an operating-system file.
type osInfo struct {
	hostName       string
	failActivation bool
	slowActivation bool
}

// guile runs the real Guile on readOS; tests set GUIX_STANDIN_GUILE to
// point elsewhere only to check the error path.
func guile(files ...string) (string, error) {
	bin := os.Getenv("GUIX_STANDIN_GUILE")
	if bin == "" {
		bin = "guile"
	}
	cmd := exec.Command(bin, append([]string{"--no-auto-compile", "-c", readOS}, files...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("guile: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// readScheme checks that file reads as Scheme.
func readScheme(file string) error {
	_, err := guile("--read-only", file)
	return err
}

func readOperatingSystem(config string, loadPath []string) (osInfo, error) {
	files := []string{config}
	for _, dir := range loadPath {
		fs, err := schemeFiles(dir)
		if err != nil {
			return osInfo{}, err
		}
		files = append(files, fs...)
	}
	out, err := guile(files...)
	if err != nil {
		return osInfo{}, err
	}
	var in osInfo
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "host-name":
			in.hostName = v
		case "fail-activation":
			in.failActivation = v == "yes"
		case "slow-activation":
			in.slowActivation = v == "yes"
		}
	}
	if in.hostName == "" {
		return osInfo{}, fmt.Errorf("%s: no host-name found", config)
	}
	return in, nil
}

func schemeFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".scm") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// treeDigest hashes the files under dir (names and contents).
func treeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// sysOpts are the options of guix system that the stand-in honours.
type sysOpts struct {
	derivation bool
	provenance bool
	root       string
	system     string
	loadPath   []string
	file       string
}

func parseSysOpts(args []string) (sysOpts, error) {
	var o sysOpts
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "-d" || a == "--derivation":
			o.derivation = true
		case a == "--save-provenance":
			o.provenance = true
		case a == "-r":
			o.root, err = next()
		case strings.HasPrefix(a, "--root="):
			o.root = strings.TrimPrefix(a, "--root=")
		case strings.HasPrefix(a, "--system="):
			o.system = strings.TrimPrefix(a, "--system=")
		case a == "-L":
			var d string
			d, err = next()
			o.loadPath = append(o.loadPath, d)
		case strings.HasPrefix(a, "--load-path="):
			o.loadPath = append(o.loadPath, strings.TrimPrefix(a, "--load-path="))
		case strings.HasPrefix(a, "-"):
			return o, fmt.Errorf("option %s not implemented by the stand-in", a)
		default:
			if o.file != "" {
				return o, errors.New("wrong number of arguments")
			}
			o.file = a
		}
		if err != nil {
			return o, err
		}
	}
	if o.file == "" {
		return o, errors.New("no configuration specified")
	}
	return o, nil
}

func currentSystem() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-linux"
}

// schemeString writes s as a Scheme string literal.
func schemeString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// instantiate writes the system derivation of o and returns its file name.
func instantiate(l layout, o sysOpts, c *ctx) (string, error) {
	osi, err := readOperatingSystem(o.file, o.loadPath)
	if err != nil {
		return "", err
	}
	config, err := os.ReadFile(o.file)
	if err != nil {
		return "", err
	}
	system := o.system
	if system == "" {
		system = currentSystem()
	}
	revision := os.Getenv("GUIX_STANDIN_REVISION")
	if revision == "" {
		revision = "standin-0"
	}
	channels := fmt.Sprintf("(channel (name guix) (standin-revision %s))", schemeString(revision))
	if c.channels != "" {
		channels = fmt.Sprintf("(standin-channels-file %s)", schemeString(c.channels))
	}
	digest := []string{"config", string(config), "system", system, "channels", channels}
	for _, dir := range o.loadPath {
		d, err := treeDigest(dir)
		if err != nil {
			return "", fmt.Errorf("load path %s: %w", dir, err)
		}
		digest = append(digest, "load", d)
	}
	unlock, err := l.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	d := drv{
		outputs: map[string]string{},
		system:  system,
		builder: builderName,
		env: map[string]string{
			"name":     "system",
			"system":   system,
			"hostName": osi.hostName,
		},
	}
	if osi.failActivation {
		d.env["failActivation"] = "1"
	}
	if osi.slowActivation {
		d.env["slowActivation"] = "1"
	}
	if o.provenance {
		item, err := l.addText("configuration.scm", string(config), nil)
		if err != nil {
			return "", err
		}
		d.srcs = []string{item}
		d.env["configuration"] = item
		d.env["provenance"] = fmt.Sprintf("(provenance (version 0) (channels %s) (configuration-file %s))\n",
			channels, schemeString(item))
		digest = append(digest, "provenance", d.env["provenance"])
	}
	out := l.storePath(storeHash(append([]string{"output:out"}, digest...)...), "system")
	d.outputs["out"] = out
	d.env["out"] = out
	text := d.aterm()
	path := l.storePath(storeHash("drv", text), "system.drv")
	if !l.valid(path) {
		if err := writeAtomic(path, []byte(text), 0o444); err != nil {
			return "", err
		}
		if err := l.register(path, info{refs: d.srcs}); err != nil {
			return "", err
		}
	}
	return path, nil
}

func system(l layout, args []string, c *ctx) error {
	if len(args) == 0 {
		return errors.New("system: missing action")
	}
	switch args[0] {
	case "build", "reconfigure":
		o, err := parseSysOpts(args[1:])
		if err != nil {
			return fmt.Errorf("system %s: %w", args[0], err)
		}
		if args[0] == "reconfigure" {
			// Guix always records provenance on reconfigure.
			o.provenance = true
			if o.derivation || o.root != "" {
				return errors.New("system reconfigure: -d and -r are not implemented by the stand-in")
			}
		}
		drvPath, err := instantiate(l, o, c)
		if err != nil {
			return err
		}
		if o.derivation {
			fmt.Println(drvPath)
			return nil
		}
		out, err := l.realise(drvPath)
		if err != nil {
			return err
		}
		fmt.Println(out)
		if args[0] == "reconfigure" {
			return reconfigure(l, out)
		}
		if o.root != "" {
			return gcRoot(l, o.root, out)
		}
		return nil
	case "roll-back":
		if len(args) != 1 {
			return errors.New("system roll-back: wrong number of arguments")
		}
		cur, err := l.generation()
		if err != nil {
			return err
		}
		prev := 0
		for _, n := range l.generations() {
			if n < cur {
				prev = n
			}
		}
		if prev == 0 {
			return fmt.Errorf("cannot switch to system generation '-1'")
		}
		return switchGeneration(l, prev)
	case "switch-generation":
		if len(args) != 2 {
			return errors.New("system switch-generation: wrong number of arguments")
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n <= 0 {
			return fmt.Errorf("cannot switch to system generation '%s' (the stand-in takes only a number)", args[1])
		}
		return switchGeneration(l, n)
	}
	return fmt.Errorf("system %s: not implemented by the stand-in", args[0])
}

var genRE = regexp.MustCompile(`^system-([0-9]+)-link$`)

func (l layout) generations() []int {
	ents, _ := os.ReadDir(filepath.Dir(l.profile()))
	var ns []int
	for _, e := range ents {
		if m := genRE.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			ns = append(ns, n)
		}
	}
	sort.Ints(ns)
	return ns
}

func (l layout) generation() (int, error) {
	t, err := os.Readlink(l.profile())
	if err != nil {
		return 0, fmt.Errorf("no system generation: %w", err)
	}
	m := genRE.FindStringSubmatch(filepath.Base(t))
	if m == nil {
		return 0, fmt.Errorf("profile points at %q, not a generation", t)
	}
	return strconv.Atoi(m[1])
}

func (l layout) genLink(n int) string {
	return fmt.Sprintf("%s-%d-link", l.profile(), n)
}

// flip points the system profile at generation n atomically and records
// the bootloader's default entry, as Guix reinstalls the bootloader.
func (l layout) flip(n int) error {
	tmp := l.profile() + ".new"
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(l.genLink(n)), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.profile()); err != nil {
		return err
	}
	return writeAtomic(l.own()+"/bootloader", fmt.Appendf(nil, "default-generation %d\n", n), 0o644)
}

func reconfigure(l layout, out string) error {
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	gens := l.generations()
	n := 1
	if len(gens) > 0 {
		n = gens[len(gens)-1] + 1
	}
	if err := os.MkdirAll(filepath.Dir(l.profile()), 0o755); err != nil {
		unlock()
		return err
	}
	if err := os.Symlink(out, l.genLink(n)); err != nil {
		unlock()
		return err
	}
	err = l.flip(n)
	unlock()
	if err != nil {
		return err
	}
	fmt.Println("activating system...")
	return activate(out)
}

func switchGeneration(l layout, n int) error {
	sys, err := os.Readlink(l.genLink(n))
	if err != nil {
		return fmt.Errorf("cannot switch to system generation '%d'", n)
	}
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	err = l.flip(n)
	unlock()
	if err != nil {
		return err
	}
	fmt.Printf("switched to system generation %d\n", n)
	return activate(sys)
}

// activate runs the system's activate script, as Guix loads it.
func activate(sys string) error {
	cmd := exec.Command(sys + "/activate")
	cmd.Env = append(os.Environ(), "GUIX_NEW_SYSTEM="+sys)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("activation of %s failed: %w", sys, err)
	}
	return nil
}

// gcRoot makes file a symlink to out and registers it as an indirect GC
// root, as guix system build -r does.
func gcRoot(l layout, file, out string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	tmp := abs + ".new"
	os.Remove(tmp)
	if err := os.Symlink(out, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		return err
	}
	auto := l.state() + "/gcroots/auto"
	if err := os.MkdirAll(auto, 0o755); err != nil {
		return err
	}
	link := auto + "/" + storeHash("root", abs)
	os.Remove(link)
	return os.Symlink(abs, link)
}

func buildCmd(l layout, args []string) error {
	if len(args) == 0 {
		return errors.New("build: nothing to build")
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") || !strings.HasSuffix(a, ".drv") {
			return fmt.Errorf("build: the stand-in only builds derivation files, not %q", a)
		}
		out, err := l.realise(a)
		if err != nil {
			return err
		}
		fmt.Println(out)
	}
	return nil
}

func gc(l layout, args []string) error {
	if len(args) < 2 || (args[0] != "-R" && args[0] != "--requisites") {
		return errors.New("gc: the stand-in implements only -R with store paths")
	}
	ps, err := l.closure(args[1:])
	if err != nil {
		return err
	}
	for _, p := range ps {
		fmt.Println(p)
	}
	return nil
}
