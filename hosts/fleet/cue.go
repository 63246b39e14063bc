package fleet

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

var pkgRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// CUE returns source for CUE package pkg that a deployment unifies with:
// for each host its address and ssh port, pinned host key and the client
// key. A deployment may set the same address and port itself.
func (f *Fleet) CUE(pkg string) ([]byte, error) {
	if !pkgRE.MatchString(pkg) {
		return nil, fmt.Errorf("write fleet cue: package name %q: use a letter, then letters, digits and '_'", pkg)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// The local test fleet in %s, written by localfleet; do not edit.\n\n", f.StateDir)
	fmt.Fprintf(&b, "package %s\n\n", pkg)
	for _, h := range f.Hosts {
		fmt.Fprintf(&b, "hosts: %s: {address: %s, ssh: {port: %d, hostKey: %s, identityFile: %s}}\n",
			cueString(h.Name), cueString(Address), h.Port, cueString(h.HostKey), cueString(f.ClientKey))
	}
	return []byte(b.String()), nil
}

// cueString quotes s as a CUE string literal; escaping the backslash also
// keeps "\(" from starting an interpolation.
func cueString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
