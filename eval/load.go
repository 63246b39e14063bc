// Package eval loads a deployment: it reads the user's CUE package with the
// embedded schema overlaid, validates it with errors at the user's own file
// and line, decodes it into plain Go types, and selects hosts.
//
// CUE values never leave this package.
package eval

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"

	"cuedeploy.dev/cuedeploy/backend"
	"cuedeploy.dev/cuedeploy/hosts"
	"cuedeploy.dev/cuedeploy/modules"
	"cuedeploy.dev/cuedeploy/schema"
)

// Options says what to load.
type Options struct {
	// Dir is a directory holding one CUE package, inside a CUE module or
	// not. Default: the working directory.
	Dir string
	// Tags are "name=value" pairs for @tag(name) attributes, as cue -t.
	Tags []string
	// WorkDir is where file names in errors are made relative to.
	// Default: the working directory.
	WorkDir string
	// KeysOf names the hosts whose ssh.identityFile must exist: those a
	// run connects to. Other commands (validate, eval, build) need no key.
	KeysOf []string
}

// schemaFile is where the schema is overlaid inside the user's module; any
// position in it is the schema's, not the user's.
const schemaDir = "cue.mod/pkg/" + schema.ImportPath

// shippedDir holds everything the binary overlays: the schema and the
// modules under cuedeploy.dev/modules.
const shippedDir = "cue.mod/pkg/cuedeploy.dev"

// overlayModules puts the shipped CUE modules into the user's module.
func overlayModules(overlay map[string]load.Source, root string) error {
	return fs.WalkDir(modules.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := modules.FS.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read shipped module %s: %w", p, err)
		}
		overlay[filepath.Join(root, "cue.mod/pkg", modules.ImportPrefix, p)] = load.FromBytes(b)
		return nil
	})
}

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Load reads, validates and decodes the deployment in o.Dir. Its error is
// an Errors listing every problem, in file order.
func Load(o Options) (d *schema.Deployment, err error) {
	l, err := newLoader(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		// No input may crash the tool: a panic inside CUE's evaluator
		// becomes an error about the package.
		if r := recover(); r != nil {
			d, err = nil, Errors{{Pos: Pos{File: relFile(l.wd, l.dir)},
				Msg: fmt.Sprintf("cannot evaluate the package: CUE failed (%v); please report this with the package", r)}}
		}
	}()
	return l.load()
}

type loader struct {
	dir, root, wd string
	tags          []string
	user          cue.Value // the user's package as written
	pkg           string    // the user's package, which its hidden fields belong to
	schema        cue.Value // the embedded schema, compiled in ctx
	ctx           *cue.Context
	lines         map[string][]string // the user's files, read for messages
	stats         map[string]bool     // files known to exist, or not
	// slowOnly turns the fast path off, for the tests that compare both.
	slowOnly bool
	keysOf   map[string]bool // Options.KeysOf
}

// exists reports whether file exists, asking the file system once per file:
// thousands of hosts usually name a handful of files.
func (l *loader) exists(file string) bool {
	if ok, seen := l.stats[file]; seen {
		return ok
	}
	if l.stats == nil {
		l.stats = map[string]bool{}
	}
	_, err := os.Stat(file)
	l.stats[file] = err == nil
	return err == nil
}

func newLoader(o Options) (*loader, error) {
	l := &loader{tags: o.Tags, wd: o.WorkDir, keysOf: map[string]bool{}}
	for _, n := range o.KeysOf {
		l.keysOf[n] = true
	}
	if l.wd == "" {
		l.wd, _ = os.Getwd()
	}
	dir := o.Dir
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load %q: %w", dir, err)
	}
	l.dir = abs
	fi, err := os.Stat(abs)
	if err != nil || !fi.IsDir() {
		return nil, Errors{{Pos: Pos{File: relFile(l.wd, abs)}, Msg: "no such directory: expected the directory of a deployment's CUE package"}}
	}
	l.root = findModuleRoot(abs)
	return l, nil
}

// findModuleRoot returns the nearest directory at or above dir that has a
// cue.mod, or "" when dir is not inside a CUE module.
func findModuleRoot(dir string) string {
	for d := dir; ; {
		if fi, err := os.Stat(filepath.Join(d, "cue.mod")); err == nil && fi.IsDir() {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

func (l *loader) load() (*schema.Deployment, error) {
	root := l.root
	overlay := map[string]load.Source{}
	if root == "" {
		// Not in a module: make the package's directory a module of its
		// own, so the schema can still be imported.
		root = l.dir
		overlay[filepath.Join(root, "cue.mod", "module.cue")] = load.FromString(
			"module: \"cuedeploy.local/deployment\"\nlanguage: version: \"v0.9.0\"\n")
	}
	l.root = root
	if errs := l.checkTags(); len(errs) > 0 {
		return nil, errs.sortDedup()
	}
	overlay[filepath.Join(root, schemaDir, "schema.cue")] = load.FromString(schema.Source)
	if err := overlayModules(overlay, root); err != nil {
		return nil, err
	}
	cfg := &load.Config{
		Dir:        l.dir,
		ModuleRoot: root,
		Overlay:    overlay,
		Tags:       l.tags,
	}
	insts := load.Instances([]string{"."}, cfg)
	if len(insts) != 1 {
		return nil, Errors{{Pos: Pos{File: relFile(l.wd, l.dir)}, Msg: "expected one CUE package"}}
	}
	if err := insts[0].Err; err != nil {
		return nil, l.convert(err)
	}
	l.pkg = insts[0].ID()
	l.ctx = cuecontext.New()
	l.user = l.ctx.BuildInstance(insts[0])
	if l.user.Err() == nil && !l.slowOnly {
		if d, ok := l.fast(l.user); ok {
			return d, nil
		}
	}
	l.schema = l.ctx.CompileString(schema.Source, cue.Filename(filepath.Join(root, schemaDir, "schema.cue")))
	if err := l.schema.Err(); err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	dep := l.schema.LookupPath(cue.MakePath(cue.Def("Deployment"))).Unify(l.user)
	uerr := l.user.Err()
	verr := dep.Validate(cue.Concrete(true), cue.All())
	if uerr != nil || verr != nil {
		return nil, l.failures(dep, uerr, verr)
	}
	return l.decode(dep)
}

// failures gathers every problem of a deployment that did not validate.
// CUE's Validate stops descending into a struct at its first error, so the
// fields below are validated one by one too; the checks that decode makes
// run on whatever part of each host is sound.
func (l *loader) failures(dep cue.Value, errs ...error) Errors {
	var all []error
	for _, err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	walkErrors(dep, &all, 0)
	out := l.convert(all...)
	out = append(out, l.unknownFields()...)
	out = append(out, l.checkBroken(dep)...)
	return out.sortDedup()
}

// walkErrors adds the validation errors of v and of every field below it
// that does not validate.
func walkErrors(v cue.Value, out *[]error, depth int) {
	err := v.Validate(cue.Concrete(true), cue.All())
	if err == nil {
		return
	}
	if depth > 0 {
		*out = append(*out, err)
	}
	if depth >= 8 {
		return
	}
	if it, ferr := v.Fields(); ferr == nil {
		for it.Next() {
			walkErrors(it.Value(), out, depth+1)
		}
	} else if it, lerr := v.List(); lerr == nil {
		for it.Next() {
			walkErrors(it.Value(), out, depth+1)
		}
	}
}

// rawHost is a host as CUE holds it, before paths and durations are
// resolved.
type rawHost struct {
	Address    string      `json:"address"`
	SSH        schema.SSH  `json:"ssh"`
	Tags       []string    `json:"tags"`
	Build      string      `json:"build"`
	Activation string      `json:"activation"`
	Timeout    string      `json:"timeout"`
	Substitute bool        `json:"substitute"`
	Nix        *schema.Nix `json:"nix"`
	Guix       *rawGuix    `json:"guix"`
}

type rawGuix struct {
	Config    string   `json:"config"`
	LoadPath  []string `json:"loadPath"`
	Channels  string   `json:"channels"`
	System    string   `json:"system"`
	Authorize bool     `json:"authorize"`
}

func (l *loader) decode(dep cue.Value) (*schema.Deployment, error) {
	var raw struct {
		Name  string             `json:"name"`
		Hosts map[string]rawHost `json:"hosts"`
	}
	if err := dep.Decode(&raw); err != nil {
		return nil, l.convert(err)
	}
	d := &schema.Deployment{Name: raw.Name, Dir: l.dir}
	names := make([]string, 0, len(raw.Hosts))
	for n := range raw.Hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs Errors
	for _, n := range names {
		r := raw.Hosts[n]
		h, herrs := l.checkHost(n, &r, nil)
		errs = append(errs, herrs...)
		d.Hosts = append(d.Hosts, h)
	}
	if len(errs) > 0 {
		return nil, errs.sortDedup()
	}
	return d, nil
}

// checkHost makes the plain host from r, checking what the schema cannot:
// the host name, exactly one system, durations, and that the files named
// exist. Fields in broken already failed validation and are not checked
// again.
func (l *loader) checkHost(n string, r *rawHost, broken map[string]bool) (schema.Host, Errors) {
	var errs Errors
	at := func(field ...string) string { return l.fieldDir(append([]string{"hosts", n}, field...)) }
	fail := func(msg string, field ...string) {
		errs = append(errs, l.errorAt(append([]string{"hosts", n}, field...), msg))
	}
	if !hostNameRE.MatchString(n) {
		fail(fmt.Sprintf("host name %q is not valid: use letters, digits, '-', '.' and '_', starting with a letter or digit", n))
	}
	h := schema.Host{
		Name: n, Address: r.Address, SSH: r.SSH, Tags: r.Tags,
		Build: r.Build, Activation: r.Activation, Substitute: r.Substitute,
	}
	if h.Tags == nil {
		h.Tags = []string{}
	}
	if r.Timeout != "" && !broken["timeout"] {
		t, err := time.ParseDuration(r.Timeout)
		if err != nil || t <= 0 {
			fail(fmt.Sprintf("timeout %q is not a positive duration such as \"90s\" or \"5m\"", r.Timeout), "timeout")
		}
		h.Timeout = t
	}
	if msg := addressProblem(h.Address); msg != "" && !broken["address"] {
		fail(msg, "address")
	}
	if h.SSH.IdentityFile != "" {
		h.SSH.IdentityFile = resolve(at("ssh", "identityFile"), h.SSH.IdentityFile)
		if l.keysOf[n] && !l.exists(h.SSH.IdentityFile) {
			fail(fmt.Sprintf("identity file %q does not exist", relFile(l.wd, h.SSH.IdentityFile)), "ssh", "identityFile")
		}
	}
	checkKey := func(field, key, whose string) {
		if err := hosts.CheckHostKey(key); err != nil {
			fail(fmt.Sprintf("host key %q does not parse (%s): expected the %s public key, as in its /etc/ssh/ssh_host_ed25519_key.pub", key, err, whose), "ssh", field)
		}
	}
	if h.SSH.HostKey != "" {
		checkKey("hostKey", h.SSH.HostKey, "host's")
	}
	if h.SSH.JumpHost != "" {
		if err := hosts.CheckJumpHost(h.SSH.JumpHost); err != nil {
			fail(err.Error(), "ssh", "jumpHost")
		}
	}
	if h.SSH.JumpHostKey != "" {
		if h.SSH.JumpHost == "" {
			fail("pins the key of a jump host, but ssh.jumpHost is not set", "ssh", "jumpHostKey")
		} else {
			checkKey("jumpHostKey", h.SSH.JumpHostKey, "jump host's")
		}
	}
	switch {
	case r.Nix != nil && r.Guix != nil:
		fail("a host runs exactly one system: set nix or guix, not both")
	case r.Nix == nil && r.Guix == nil:
		fail("a host runs exactly one system: set nix: {file, attribute} or nix: {flake}, or guix: {config}")
	case r.Nix != nil:
		nx := *r.Nix
		if broken["nix"] {
			break
		}
		if nx.File != "" {
			nx.File = resolve(at("nix", "file"), nx.File)
			if !l.exists(nx.File) {
				fail(fmt.Sprintf("nix file %q does not exist", relFile(l.wd, nx.File)), "nix", "file")
			}
		} else {
			ref, attr, _ := strings.Cut(nx.Flake, "#")
			if isLocalFlake(ref) {
				ref = resolve(at("nix", "flake"), ref)
				if !l.exists(filepath.Join(ref, "flake.nix")) {
					fail(fmt.Sprintf("no flake.nix in %q", relFile(l.wd, ref)), "nix", "flake")
				}
			}
			nx.Flake = ref + "#" + attr
		}
		h.Nix = &nx
	default:
		if broken["guix"] {
			break
		}
		g := r.Guix
		gx := schema.Guix{System: g.System, Authorize: g.Authorize}
		gx.Config = resolve(at("guix", "config"), g.Config)
		if !l.exists(gx.Config) {
			fail(fmt.Sprintf("guix config %q does not exist", relFile(l.wd, gx.Config)), "guix", "config")
		}
		for i, p := range g.LoadPath {
			gx.LoadPath = append(gx.LoadPath, resolve(at("guix", "loadPath", fmt.Sprint(i)), p))
		}
		if g.Channels != "" {
			gx.Channels = resolve(at("guix", "channels"), g.Channels)
			if !l.exists(gx.Channels) {
				fail(fmt.Sprintf("guix channels file %q does not exist", relFile(l.wd, gx.Channels)), "guix", "channels")
			}
		}
		h.Guix = &gx
	}
	if h.Backend() != "" && len(broken) == 0 {
		if b, err := backend.For(&h); err == nil {
			for _, fe := range b.Check(&h) {
				fail(fe.Message, strings.Split(fe.Path, ".")...)
			}
		}
	}
	return h, errs
}

// addressProblem says why address cannot be dialed as it is, or "". The
// transport joins it with ssh.port, so it must be a host alone: a DNS name
// or an IP address (an IPv6 one without brackets).
func addressProblem(address string) string {
	switch {
	case address == "":
		return "" // the schema's to report
	case strings.HasPrefix(address, "-"):
		return fmt.Sprintf("address %q starts with '-': expected a DNS name or IP address", address)
	case strings.ContainsFunc(address, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Sprintf("address %q contains a space: expected a DNS name or IP address", address)
	case strings.Contains(address, "@"):
		return fmt.Sprintf("address %q includes a user: give the address alone and the user as ssh.user", address)
	case strings.Contains(address, ":"):
		if _, err := netip.ParseAddr(address); err == nil {
			return "" // IPv6
		}
		if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(address, "["), "]")); err == nil {
			return fmt.Sprintf("address %q has brackets: write an IPv6 address without them", address)
		}
		return fmt.Sprintf("address %q includes a port: give the address alone and the port as ssh.port", address)
	}
	return ""
}

// checkBroken runs checkHost on the sound fields of each host of a
// deployment that did not validate, so that all problems show at once.
func (l *loader) checkBroken(dep cue.Value) Errors {
	it, err := dep.LookupPath(cue.ParsePath("hosts")).Fields()
	if err != nil {
		return nil
	}
	var errs Errors
	for it.Next() {
		n := it.Selector().Unquoted()
		hv := it.Value()
		var r rawHost
		broken := map[string]bool{}
		part := func(field string, into any) bool {
			fv := hv.LookupPath(cue.MakePath(cue.Str(field)))
			if !fv.Exists() {
				return false
			}
			if err := fv.Decode(into); err != nil {
				broken[field] = true
			}
			return true
		}
		part("address", &r.Address)
		part("timeout", &r.Timeout)
		part("activation", &r.Activation)
		var sshPart struct {
			IdentityFile string `json:"identityFile"`
			HostKey      string `json:"hostKey"`
			JumpHost     string `json:"jumpHost"`
			JumpHostKey  string `json:"jumpHostKey"`
		}
		if part("ssh", &sshPart) && !broken["ssh"] {
			r.SSH.IdentityFile = sshPart.IdentityFile
			r.SSH.HostKey = sshPart.HostKey
			r.SSH.JumpHost = sshPart.JumpHost
			r.SSH.JumpHostKey = sshPart.JumpHostKey
		}
		var nx schema.Nix
		if part("nix", &nx) {
			r.Nix = &nx
		}
		var gx rawGuix
		if part("guix", &gx) {
			r.Guix = &gx
		}
		_, herrs := l.checkHost(n, &r, broken)
		errs = append(errs, herrs...)
	}
	return errs
}

// isLocalFlake reports whether a flake reference names a local directory.
func isLocalFlake(ref string) bool {
	if strings.HasPrefix(ref, "path:") || strings.HasPrefix(ref, "git+file:") {
		return false // explicit URLs are taken as they are
	}
	return ref == "." || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") || strings.HasPrefix(ref, "/")
}

// resolve makes p absolute against dir; ~/ is the user's home directory.
func resolve(dir, p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// fieldDir is the directory of the file that sets the field at path, or the
// package directory when the value has no file (a -t tag, a default).
func (l *loader) fieldDir(path []string) string {
	v := l.user.LookupPath(l.cuePath(path))
	if f := v.Pos().Filename(); f != "" && !l.isSchema(f) {
		return filepath.Dir(f)
	}
	return l.dir
}

func (l *loader) isSchema(file string) bool {
	return strings.Contains(filepath.ToSlash(file), "/"+shippedDir+"/") || file == ""
}

// cuePath makes a CUE path from plain field names. A hidden field (_forum)
// is taken as one of the user's package.
func (l *loader) cuePath(path []string) cue.Path {
	sels := make([]cue.Selector, len(path))
	for i, p := range path {
		if strings.HasPrefix(p, "#") {
			sels[i] = cue.Def(p)
		} else if strings.HasPrefix(p, "_") && l.pkg != "" && ast.IsValidIdent(p) {
			sels[i] = cue.Hid(p, l.pkg)
		} else if n, err := strconv.Atoi(p); err == nil && n >= 0 && strconv.Itoa(n) == p {
			sels[i] = cue.Index(n)
		} else {
			sels[i] = cue.Str(p)
		}
	}
	return cue.MakePath(sels...)
}
