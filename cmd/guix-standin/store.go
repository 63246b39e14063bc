package main

// The store: items under /gnu/store, their references in a small database,
// derivations as ATerm files, and the one "builder" the stand-in knows (a
// Guix System directory).

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// nixBase32 is the alphabet of store path hashes.
const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

// storeHash returns the 32-character hash part of a store file name for
// the given parts, the way Guix prints them (160 bits in Nix base32).
func storeHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	sum := h.Sum(nil)
	var folded [20]byte
	for i, b := range sum {
		folded[i%20] ^= b
	}
	out := make([]byte, 32)
	for n := 0; n < 32; n++ {
		bit := (31 - n) * 5
		i, j := bit/8, uint(bit%8)
		c := folded[i] >> j
		if i+1 < 20 {
			c |= folded[i+1] << (8 - j)
		}
		out[n] = nixBase32[c&0x1f]
	}
	return string(out)
}

func (l layout) storePath(hash, name string) string {
	return l.store() + "/" + hash + "-" + name
}

// valid reports whether p is a registered store item.
func (l layout) valid(p string) bool {
	if !strings.HasPrefix(p, l.store()+"/") {
		return false
	}
	_, err := os.Stat(l.db(p))
	return err == nil
}

// info is what the database knows of an item.
type info struct {
	deriver string
	refs    []string
}

func (l layout) info(p string) (info, error) {
	b, err := os.ReadFile(l.db(p))
	if err != nil {
		return info{}, fmt.Errorf("path %q is not valid", p)
	}
	return parseInfo(b), nil
}

// parseInfo reads an item's database record (as register writes it, and
// as an archive carries it).
func parseInfo(b []byte) info {
	var in info
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "deriver":
			in.deriver = v
		case "ref":
			in.refs = append(in.refs, v)
		}
	}
	return in
}

func (l layout) register(p string, in info) error {
	var b strings.Builder
	fmt.Fprintf(&b, "deriver %s\n", in.deriver)
	for _, r := range in.refs {
		fmt.Fprintf(&b, "ref %s\n", r)
	}
	return writeAtomic(l.db(p), []byte(b.String()), 0o644)
}

// lock takes the store's write lock until the returned func is called.
// Readers take no lock: items appear by rename, after their contents.
func (l layout) lock() (func(), error) {
	if err := os.MkdirAll(l.own(), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(l.own()+"/lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// addText adds a file item with the given content, as Guix's add-text-to-store.
func (l layout) addText(name, content string, refs []string) (string, error) {
	p := l.storePath(storeHash("text", name, content), name)
	if l.valid(p) {
		return p, nil
	}
	if err := os.MkdirAll(l.store(), 0o755); err != nil {
		return "", err
	}
	if err := writeAtomic(p, []byte(content), 0o444); err != nil {
		return "", err
	}
	return p, l.register(p, info{refs: refs})
}

// closure returns the requisites of ps, sorted so that references come
// before their referrers (ties by name).
func (l layout) closure(ps []string) ([]string, error) {
	seen := map[string]bool{}
	var order []string
	var visit func(p string) error
	visit = func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		in, err := l.info(p)
		if err != nil {
			return err
		}
		refs := append([]string(nil), in.refs...)
		sort.Strings(refs)
		for _, r := range refs {
			if r != p {
				if err := visit(r); err != nil {
					return err
				}
			}
		}
		order = append(order, p)
		return nil
	}
	sorted := append([]string(nil), ps...)
	sort.Strings(sorted)
	for _, p := range sorted {
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// topo sorts ps (a set, not a closure) so that references come first.
func (l layout) topo(ps []string) ([]string, error) {
	in := map[string]bool{}
	for _, p := range ps {
		in[p] = true
	}
	all, err := l.closure(ps)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range all {
		if in[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// Derivations.

// drv is the part of a derivation the stand-in writes and reads.
type drv struct {
	outputs map[string]string
	srcs    []string
	system  string
	builder string
	env     map[string]string
}

func atermString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// aterm writes d as Guix and Nix write .drv files.
func (d drv) aterm() string {
	var outs, srcs, env []string
	for _, n := range sortedKeys(d.outputs) {
		outs = append(outs, fmt.Sprintf("(%s,%s,\"\",\"\")", atermString(n), atermString(d.outputs[n])))
	}
	for _, s := range d.srcs {
		srcs = append(srcs, atermString(s))
	}
	for _, k := range sortedKeys(d.env) {
		env = append(env, fmt.Sprintf("(%s,%s)", atermString(k), atermString(d.env[k])))
	}
	return fmt.Sprintf("Derive([%s],[],[%s],%s,%s,[],[%s])", strings.Join(outs, ","), strings.Join(srcs, ","),
		atermString(d.system), atermString(d.builder), strings.Join(env, ","))
}

// sortedKeys returns m's keys in order, so a .drv is written the same way
// every time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseDrv reads the ATerm of a derivation.
func parseDrv(s string) (drv, error) {
	p := &aparser{s: s}
	v, err := p.value()
	if err != nil {
		return drv{}, err
	}
	t, ok := v.([]any)
	if !ok || len(t) != 8 || t[0] != "Derive" {
		return drv{}, errors.New("not a derivation")
	}
	d := drv{outputs: map[string]string{}, env: map[string]string{}}
	for _, o := range t[1].([]any) {
		o := o.([]any)
		d.outputs[o[0].(string)] = o[1].(string)
	}
	for _, s := range t[3].([]any) {
		d.srcs = append(d.srcs, s.(string))
	}
	d.system, _ = t[4].(string)
	d.builder, _ = t[5].(string)
	for _, e := range t[7].([]any) {
		e := e.([]any)
		d.env[e[0].(string)] = e[1].(string)
	}
	return d, nil
}

// aparser reads the ATerm subset of .drv files: strings, lists, tuples and
// one constructor. A constructor application is returned as a slice whose
// first element is its name.
type aparser struct {
	s string
	i int
}

func (p *aparser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, errors.New("derivation: unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.str()
	case c == '[' || c == '(':
		end := byte(']')
		if c == '(' {
			end = ')'
		}
		p.i++
		var xs []any
		for p.i < len(p.s) && p.s[p.i] != end {
			if len(xs) > 0 {
				if p.s[p.i] != ',' {
					return nil, fmt.Errorf("derivation: expected ',' at %d", p.i)
				}
				p.i++
			}
			x, err := p.value()
			if err != nil {
				return nil, err
			}
			xs = append(xs, x)
		}
		p.i++
		return xs, nil
	default:
		j := p.i
		for j < len(p.s) && p.s[j] != '(' {
			j++
		}
		name := p.s[p.i:j]
		p.i = j
		args, err := p.value()
		if err != nil {
			return nil, err
		}
		return append([]any{name}, args.([]any)...), nil
	}
}

func (p *aparser) str() (string, error) {
	var b strings.Builder
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.i >= len(p.s) {
				break
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("derivation: unterminated string")
}

// realise builds the output of the derivation at drvPath (the stand-in's
// one builder makes a Guix System directory) and returns it.
func (l layout) realise(drvPath string) (string, error) {
	if !l.valid(drvPath) {
		return "", fmt.Errorf("derivation %q is not in the store", drvPath)
	}
	b, err := os.ReadFile(drvPath)
	if err != nil {
		return "", err
	}
	d, err := parseDrv(string(b))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", drvPath, err)
	}
	out := d.outputs["out"]
	if l.valid(out) {
		return out, nil
	}
	for _, s := range d.srcs {
		if !l.valid(s) {
			return "", fmt.Errorf("build of %q: input %q is missing", drvPath, s)
		}
	}
	if d.builder != builderName {
		return "", fmt.Errorf("build of %q: unknown builder %q", drvPath, d.builder)
	}
	unlock, err := l.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if l.valid(out) {
		return out, nil
	}
	tmp := filepath.Join(l.store(), ".build-"+filepath.Base(out)+"-"+strconv.Itoa(os.Getpid()))
	os.RemoveAll(tmp)
	if err := writeSystem(l, tmp, out, d); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("build of %q: %w", drvPath, err)
	}
	os.RemoveAll(out)
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	var refs []string
	if c := d.env["configuration"]; c != "" {
		refs = append(refs, c)
	}
	return out, l.register(out, info{deriver: drvPath, refs: refs})
}

// builderName is the builder of the stand-in's system derivations.
const builderName = "guix-standin:system"

// writeSystem lays out a Guix System directory at dir for output out.
func writeSystem(l layout, dir, out string, d drv) error {
	if err := os.MkdirAll(dir+"/etc", 0o755); err != nil {
		return err
	}
	fail := ""
	if d.env["failActivation"] == "1" {
		fail = "echo \"activate: stand-in activation failure, as the configuration asks (standin-fail-activation)\" >&2\nexit 1\n"
	}
	if d.env["slowActivation"] == "1" {
		// Long enough for a test to interrupt it and see whether it
		// goes on to switch the host afterwards.
		fail += "sleep 20\n"
	}
	activate := "#!/bin/sh\n" +
		"# Written by the guix stand-in for cuedeploy tests, not GNU Guix.\n" +
		"set -e\n" +
		"sys=\"${GUIX_NEW_SYSTEM:-" + out + "}\"\n" +
		fail +
		"mkdir -p " + l.run() + "\n" +
		"ln -sfn \"$sys\" " + l.run() + "/.current-system.new\n" +
		"mv -Tf " + l.run() + "/.current-system.new " + l.run() + "/current-system\n"
	files := map[string]string{
		"activate": activate,
		"parameters": fmt.Sprintf("(boot-parameters (version 0) (label %q) (root-device \"/dev/sda1\") "+
			"(kernel %q) (kernel-arguments ()) (initrd %q) (bootloader-name grub) "+
			"(store (device #f) (mount-point %q)) (locale \"en_US.utf8\"))\n",
			"GNU with Linux-libre (guix stand-in, "+d.env["hostName"]+")", out+"/kernel", out+"/initrd", l.store()),
		"provenance":   d.env["provenance"],
		"etc/hostname": d.env["hostName"] + "\n",
		"system":       d.system + "\n",
	}
	for name, content := range files {
		mode := os.FileMode(0o444)
		if name == "activate" {
			mode = 0o555
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			return err
		}
	}
	if c := d.env["configuration"]; c != "" {
		if err := os.Symlink(c, dir+"/configuration.scm"); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readLines reads the non-empty lines of f.
func readLines(f *os.File) []string {
	var ls []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}
