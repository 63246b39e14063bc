package eval

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
)

// convert turns CUE's errors into Errors at the user's own positions, with
// one message per field that a person can act on.
func (l *loader) convert(errs ...error) Errors {
	type group struct {
		path  []string
		msgs  []string
		poss  []token.Pos
		order int
	}
	groups := map[string]*group{}
	var keys []string
	var out Errors
	for _, err := range errs {
		for _, e := range cueerrors.Errors(err) {
			if ie := l.importErrors(e); ie != nil {
				out = append(out, ie...)
				continue
			}
			path := cleanPath(e.Path())
			k := strings.Join(path, "\x00")
			g := groups[k]
			if g == nil {
				g = &group{path: path, order: len(keys)}
				groups[k] = g
				keys = append(keys, k)
			}
			f, a := e.Msg()
			g.msgs = append(g.msgs, fmt.Sprintf(f, a...))
			g.poss = append(g.poss, cueerrors.Positions(e)...)
		}
	}
	// A failed disjunction reports one error for each alternative and for
	// fields of the alternatives; keep only the one at the disjunction.
	// A host's nix is explained by the alternative the user meant.
	disj := map[string]bool{}
	var dependents Errors
	for k, g := range groups {
		if isNixPath(g.path) {
			disj[k] = true
		}
		for _, m := range g.msgs {
			if strings.Contains(m, "empty disjunction") {
				disj[k] = true
			}
		}
	}
	for _, k := range keys {
		g := groups[k]
		inner := false
		for d := range disj {
			if d != k && strings.HasPrefix(k, d+"\x00") {
				inner = true
			}
		}
		if inner {
			continue
		}
		if isNixPath(g.path) {
			out = append(out, l.explainNix(g.path)...)
			continue
		}
		if l.isDependent(g.path, g.msgs) {
			// Such as ssh.sudo, whose default follows ssh.user: its own
			// error is only an echo of another.
			dependents = append(dependents, l.message(g.path, g.msgs, g.poss))
			continue
		}
		out = append(out, l.message(g.path, g.msgs, g.poss))
	}
	if len(out) == 0 {
		out = dependents
	}
	return out.sortDedup()
}

// cleanPath drops the schema's definition from the front of an error's path
// and unquotes labels such as "web-1".
func cleanPath(path []string) []string {
	if len(path) > 0 && strings.HasPrefix(path[0], "#") {
		path = path[1:]
	}
	out := make([]string, len(path))
	for i, p := range path {
		if u, err := strconv.Unquote(p); err == nil && strings.HasPrefix(p, `"`) {
			p = u
		}
		out[i] = p
	}
	return out
}

// isNixPath reports whether path is a host's nix, the one place where the
// schema offers a choice of structs.
func isNixPath(path []string) bool {
	return len(path) == 3 && path[0] == "hosts" && path[2] == "nix"
}

// explainNix says what is wrong with a host's nix, by validating it against
// the alternative the user evidently meant: #NixFile when it names a file,
// an attribute or args, #NixFlake when it names a flake.
func (l *loader) explainNix(path []string) Errors {
	uv := l.user.LookupPath(l.cuePath(path))
	if !uv.Exists() {
		return Errors{l.message(path, []string{"invalid value"}, nil)}
	}
	has := func(f string) bool { return uv.LookupPath(cue.MakePath(cue.Str(f))).Exists() }
	isFile := has("file") || has("attribute") || has("args")
	isFlake := has("flake")
	var alt string
	switch {
	case isFile && isFlake:
		return Errors{{Pos: l.nearest(path), Path: showPath(path),
			Msg: `set either file and attribute, or flake, not both`}}
	case isFile:
		alt = "#NixFile"
	case isFlake:
		alt = "#NixFlake"
	default:
		var errs Errors
		if it, err := uv.Fields(); err == nil {
			for it.Next() {
				f := append(slices.Clone(path), it.Selector().Unquoted())
				errs = append(errs, &Error{Pos: l.valuePos(it.Value(), f), Path: showPath(path), Msg: l.unknownField(f), unknown: showPath(f)})
			}
		}
		if len(errs) == 0 {
			errs = append(errs, &Error{Pos: l.nearest(path), Path: showPath(path),
				Msg: `a system is missing: expected {file: "FILE", attribute: "ATTR"} or {flake: "REF#NAME"}`})
		}
		return errs
	}
	v := l.schema.LookupPath(cue.MakePath(cue.Def(alt))).Unify(uv)
	var errs []error
	if err := v.Validate(cue.Concrete(true), cue.All()); err != nil {
		errs = append(errs, err)
		walkErrors(v, &errs, 0)
	}
	var out Errors
	for _, err := range errs {
		for _, e := range cueerrors.Errors(err) {
			p := append(slices.Clone(path), cleanPath(e.Path())...)
			f, a := e.Msg()
			out = append(out, l.message(p, []string{fmt.Sprintf(f, a...)}, cueerrors.Positions(e)))
		}
	}
	if len(out) == 0 {
		out = append(out, l.message(path, []string{"invalid value"}, nil))
	}
	return out
}

// importErrors explains an error of importing a package, or returns nil.
// CUE reports it at the import in the user's package, wrapping the error
// of the package imported, which may wrap that of a package it imports in
// turn; the error is shown where it is, in the file that is wrong.
func (l *loader) importErrors(e cueerrors.Error) Errors {
	full := e.Error()
	if !strings.Contains(full, "import failed") && !strings.Contains(full, "cannot find package") {
		return nil
	}
	return l.importChain(e, nil)
}

// importChain explains e, met through the imports at chain, outermost
// first.
func (l *loader) importChain(e cueerrors.Error, chain []token.Pos) Errors {
	if f, _ := e.Msg(); f == "import failed" {
		if p := e.Position(); p.IsValid() {
			chain = append(chain, p)
		}
		var out Errors
		for _, inner := range cueerrors.Errors(errors.Unwrap(e)) {
			out = append(out, l.importChain(inner, chain)...)
		}
		if len(out) > 0 {
			return out
		}
	}
	var at Pos
	if p := e.Position(); p.IsValid() {
		at = l.pos(p)
	} else if len(chain) > 0 {
		at = l.pos(chain[len(chain)-1])
	}
	full := e.Error()
	if strings.Contains(full, "import cycle") {
		var names []string
		for _, p := range chain {
			names = append(names, fmt.Sprintf("%s (%s)", l.importPathAt(p), l.pos(p)))
		}
		if len(chain) > 0 {
			at = l.pos(chain[0])
		}
		return Errors{{Pos: at, Msg: "import cycle: this package imports " + strings.Join(names, ", which imports ") +
			" again; packages may not import each other in a circle"}}
	}
	if m := cannotFindRE.FindStringSubmatch(full); m != nil {
		return Errors{{Pos: at, Msg: fmt.Sprintf("import %q: no such package: expected a directory with CUE files of that package inside the module (cue.mod/module.cue), or a dependency listed there", m[1])}}
	}
	f, a := e.Msg()
	msg := fmt.Sprintf(f, a...)
	if f == "import failed" {
		// Nothing inside to explain it: keep all CUE said.
		msg = full
	}
	return Errors{{Pos: at, Msg: msg}}
}

var cannotFindRE = regexp.MustCompile(`cannot find package "([^"]+)"`)

// importPathAt reads the quoted import path at p in the user's file.
func (l *loader) importPathAt(p token.Pos) string {
	line := l.lineAt(p)
	if c := p.Column() - 1; c >= 0 && c < len(line) {
		rest := line[c:]
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			return q
		}
	}
	return "a package"
}

// lineAt returns the text of the line at p, or "".
func (l *loader) lineAt(p token.Pos) string {
	if l.lines == nil {
		l.lines = map[string][]string{}
	}
	f := p.Filename()
	lines, ok := l.lines[f]
	if !ok {
		b, err := os.ReadFile(f)
		if err == nil {
			lines = strings.Split(string(b), "\n")
		}
		l.lines[f] = lines
	}
	if n := p.Line() - 1; n >= 0 && n < len(lines) {
		return lines[n]
	}
	return ""
}

// isLiteralAt reports whether a literal value (rather than a reference or
// an expression) starts at p in the user's file.
func (l *loader) isLiteralAt(p token.Pos) bool {
	line := l.lineAt(p)
	c := p.Column() - 1
	if c < 0 || c >= len(line) {
		return false
	}
	r := line[c:]
	return strings.HasPrefix(r, `"`) || strings.HasPrefix(r, "true") || strings.HasPrefix(r, "false") ||
		strings.HasPrefix(r, "-") || (r[0] >= '0' && r[0] <= '9')
}

// isSetAt reports whether the user set a value at p: a literal that is
// neither a default (*22) nor one alternative of a disjunction ("a" | "b"),
// which a value given elsewhere replaces or picks from rather than
// contradicts.
func (l *loader) isSetAt(p token.Pos) bool {
	if !l.isLiteralAt(p) {
		return false
	}
	line := l.lineAt(p)
	c := p.Column() - 1
	before := strings.TrimRight(line[:c], " \t")
	if strings.HasSuffix(before, "*") || strings.HasSuffix(before, "|") {
		return false
	}
	if lit := l.literalAt(p); lit != "" {
		after := strings.TrimLeft(line[c+len(lit):], " \t")
		if strings.HasPrefix(after, "|") && !strings.HasPrefix(after, "||") {
			return false
		}
	}
	return true
}

// literalAt is the text of the literal at p in the user's file, or "".
func (l *loader) literalAt(p token.Pos) string {
	if !l.isLiteralAt(p) {
		return ""
	}
	return literalText(l.lineAt(p)[p.Column()-1:])
}

// literalText is the literal at the start of s (a quoted string, a number,
// true or false), or "" when it cannot tell where the literal ends.
func literalText(s string) string {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return ""
		}
		return q
	}
	end := 0
	for end < len(s) {
		ch := s[end]
		if ch == '-' && end == 0 || ch == '.' || ch == '_' ||
			ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' {
			end++
			continue
		}
		break
	}
	return s[:end]
}

// message builds the one error for a field from CUE's messages about it.
func (l *loader) message(path []string, msgs []string, poss []token.Pos) *Error {
	var userPos []token.Pos
	for _, p := range poss {
		if p.IsValid() && !l.isSchema(p.Filename()) {
			userPos = append(userPos, p)
		}
	}
	sort.SliceStable(userPos, func(i, j int) bool { return userPos[i].Compare(userPos[j]) < 0 })
	var set []token.Pos // each place where the user set a value of their own
	for _, p := range userPos {
		if l.isSetAt(p) && !slices.ContainsFunc(set, func(q token.Pos) bool { return l.pos(q) == l.pos(p) }) {
			set = append(set, p)
		}
	}
	e := &Error{Path: showPath(path)}
	if len(userPos) > 0 {
		e.Pos = l.pos(userPos[0])
	} else {
		e.Pos = l.nearest(path)
	}
	has := func(s string) bool {
		for _, m := range msgs {
			if strings.Contains(m, s) {
				return true
			}
		}
		return false
	}
	uv, exists := cue.Value{}, false
	if l.user.Exists() && len(path) > 0 {
		uv = l.user.LookupPath(l.cuePath(path))
		exists = uv.Exists()
	}
	expect := expectation(path)
	switch {
	case has("no tag for"):
		name := ""
		for _, m := range msgs {
			if _, after, ok := strings.Cut(m, "no tag for "); ok {
				name = strings.Trim(after, `"`)
			}
		}
		e.Pos = Pos{}
		e.Msg = fmt.Sprintf("-t %s: the package has no @tag(%s) attribute", name, name)
	case has("field not allowed") && len(path) > 0:
		e.Path = showPath(path[:len(path)-1])
		e.Msg = l.unknownField(path)
		e.unknown = showPath(path)
	case has("reference") && has("not found"), has("undefined field"):
		e.Msg = firstReal(msgs)
		if m := undefinedDefRE.FindStringSubmatch(e.Msg); m != nil {
			if s := closest(m[1], schemaDefs); s != "" {
				e.Msg += fmt.Sprintf(" (did you mean #%s?)", s)
			}
		}
	case has("structural cycle"), has("cycle"):
		e.Msg = "the value refers to itself (a cycle of references): " + firstReal(msgs)
	case has("no CUE files"):
		e.Pos = Pos{File: relFile(l.wd, l.dir)}
		e.Msg = "no .cue files here: expected the directory of a deployment's CUE package"
	case (has("incomplete value") || has("non-concrete")) && len(path) > 0 && (!exists || l.isSchemaOnly(path, uv)):
		e.Msg = "missing required field " + quoteLabel(path[len(path)-1])
		if expect != "" {
			e.Msg += ": expected " + expect
		}
	case has("incomplete value") || has("non-concrete"):
		if s := show(uv); s == "_" {
			e.Msg = "has no value: it is set only from references that never give one (such as two fields set from each other)"
		} else {
			e.Msg = fmt.Sprintf("needs a concrete value, not %s", s)
		}
		if expect != "" {
			e.Msg += ": expected " + expect
		}
	case len(set) > 1 && has("conflicting values") && exists && uv.Err() != nil:
		// Two of the user's own values disagree: point at one and name
		// the others. Other positions of the user's (the reference that
		// brings in schema.#Host, a default such as *22) are not a value
		// of theirs that the schema's could conflict with.
		e.Pos = l.pos(set[0])
		var also []string
		for _, p := range set[1:] {
			if at := l.pos(p); at != e.Pos {
				also = append(also, at.String())
			}
		}
		e.Msg = firstReal(msgs)
		if len(also) > 0 {
			e.Msg += " (also set at " + strings.Join(dedup(also), ", ") + ")"
		}
	case expect != "" && exists && uv.Err() == nil:
		e.Msg = fmt.Sprintf("invalid value %s: expected %s", show(uv), expect) + knownHostsHint(path, uv)
	case expect != "" && len(set) == 1 && l.literalAt(set[0]) != "":
		// The user's value already holds the schema's, through an
		// imported schema.#Host, so it is in error on its own: show
		// what the user wrote.
		e.Pos = l.pos(set[0])
		e.Msg = fmt.Sprintf("invalid value %s: expected %s", l.literalAt(set[0]), expect)
	case expect != "":
		e.Msg = "invalid value: expected " + expect
	default:
		e.Msg = firstReal(msgs)
	}
	e.Msg += l.tagNote(msgs)
	return e
}

// tagNote names the -t NAME=VALUE whose value CUE's messages show in a
// conflict: the value came in through a @tag, which the error's position
// (where the value is used) does not tell. It is empty when no -t value
// appears there.
func (l *loader) tagNote(msgs []string) string {
	var notes []string
	for _, t := range l.tags {
		_, val, ok := strings.Cut(t, "=")
		if !ok || val == "" {
			continue
		}
		// CUE quotes a string; a number it shows as it is, a word of its
		// own.
		re := regexp.MustCompile(regexp.QuoteMeta(strconv.Quote(val)) + `|(^|[^\w."])` + regexp.QuoteMeta(val) + `($|[^\w."])`)
		for _, m := range msgs {
			if strings.Contains(m, "conflicting values") || strings.Contains(m, "invalid value") || strings.Contains(m, "out of bound") {
				if re.MatchString(m) && !slices.Contains(notes, t) {
					notes = append(notes, t)
				}
			}
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return " (the value given by -t " + strings.Join(notes, ", -t ") + ")"
}

// knownHostsHint explains a host key given as a known_hosts line, which
// ssh-keyscan prints: the host's name comes before the key.
func knownHostsHint(path []string, v cue.Value) string {
	if len(path) == 0 || kind(path[:len(path)-1]) != "ssh" {
		return ""
	}
	if last := path[len(path)-1]; last != "hostKey" && last != "jumpHostKey" {
		return ""
	}
	s, err := v.String()
	if err != nil {
		return ""
	}
	if f := strings.Fields(s); len(f) >= 3 && keyTypeRE.MatchString(f[1]) {
		return fmt.Sprintf(" (a known_hosts line, as ssh-keyscan prints it: drop the host name %q before the key type)", f[0])
	}
	return ""
}

var keyTypeRE = regexp.MustCompile(`^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+$`)

var undefinedDefRE = regexp.MustCompile(`undefined field: #(\w+)`)

// schemaDefs are the definitions a user may take from the schema.
var schemaDefs = []string{"Deployment", "Host", "SSH", "Nix", "NixFile", "NixFlake", "Guix", "Name", "Tag", "Goal"}

// pos converts a CUE position to the user's file, relative to the working
// directory.
func (l *loader) pos(p token.Pos) Pos {
	return Pos{File: relFile(l.wd, p.Filename()), Line: p.Line(), Col: p.Column()}
}

// nearest is the position of the closest field at or above path that the
// user wrote, so that a missing field is reported where the user would add
// it.
func (l *loader) nearest(path []string) Pos {
	if l.user.Exists() {
		for i := len(path); i > 0; i-- {
			v := l.user.LookupPath(l.cuePath(path[:i]))
			if !v.Exists() {
				continue
			}
			if p := l.valuePos(v, path[:i]); p.File != "" {
				return p
			}
		}
	}
	return l.packagePos()
}

// valuePos is where the user wrote v, or the zero Pos.
func (l *loader) valuePos(v cue.Value, path []string) Pos {
	// A scalar is shown where it was written, though it reached the
	// field through a reference (address: s.address).
	if k := v.IncompleteKind(); v.Err() == nil && v.IsConcrete() && k&(cue.StructKind|cue.ListKind) == 0 {
		if p := v.Pos(); p.IsValid() && !l.isSchema(p.Filename()) {
			return l.pos(p)
		}
	}
	// A value made of several conjuncts (a host from a comprehension and a
	// pattern constraint) is shown where the user wrote it literally.
	if op, args := v.Expr(); op == cue.AndOp {
		var best token.Pos
		for _, a := range args {
			switch src := a.Source().(type) {
			case *ast.StructLit, *ast.BasicLit, *ast.ListLit:
			case *ast.Field:
				if _, pattern := src.Label.(*ast.ListLit); pattern {
					continue // [string]: #Host
				}
			default:
				continue
			}
			if p := a.Pos(); p.IsValid() && !l.isSchema(p.Filename()) && (!best.IsValid() || p.Compare(best) < 0) {
				best = p
			}
		}
		if best.IsValid() {
			return l.pos(best)
		}
	}
	if p := v.Pos(); p.IsValid() && !l.isSchema(p.Filename()) {
		return l.pos(p)
	}
	return Pos{}
}

// packagePos is the package clause of the package's first file, where a
// missing top-level field is reported.
func (l *loader) packagePos() Pos {
	if l.user.Exists() {
		if p := l.user.Pos(); p.IsValid() && !l.isSchema(p.Filename()) {
			return l.pos(p)
		}
	}
	files, _ := filepath.Glob(filepath.Join(l.dir, "*.cue"))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			if c := strings.Index(line, "package "); c >= 0 && strings.TrimSpace(line[:c]) == "" {
				return Pos{File: relFile(l.wd, f), Line: i + 1, Col: c + 1}
			}
		}
	}
	return Pos{File: relFile(l.wd, l.dir)}
}

// firstReal returns CUE's first message that is not a mere count.
func firstReal(msgs []string) string {
	for _, m := range msgs {
		if !strings.Contains(m, "errors in empty disjunction") {
			return strings.TrimSuffix(m, ":")
		}
	}
	return strings.TrimSuffix(msgs[0], ":")
}

func dedup(xs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// show prints a user's value in CUE syntax, shortened.
func show(v cue.Value) string {
	s := fmt.Sprint(v)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// showPath prints a field path as CUE writes it: hosts."forum-1".ssh.port.
// An element of one of the schema's lists (tags, loadPath) shows as
// tags[1], as an index, not as a field named "1".
func showPath(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 && (path[i-1] == "tags" || path[i-1] == "loadPath") && isIndex(p) {
			b.WriteString("[" + p + "]")
			continue
		}
		if i > 0 {
			b.WriteString(".")
		}
		b.WriteString(quoteLabel(p))
	}
	return b.String()
}

func isIndex(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && strconv.Itoa(n) == s
}

func quoteLabel(s string) string {
	if identRE.MatchString(s) {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// kind says which schema definition holds the field at path.
func kind(path []string) string {
	switch {
	case len(path) == 0:
		return "deployment"
	case path[0] != "hosts":
		return "" // the user's own fields, such as _forum
	case len(path) == 2:
		return "host"
	case len(path) == 3 && (path[2] == "ssh" || path[2] == "nix" || path[2] == "guix"):
		return path[2]
	}
	return ""
}

// fields lists what each definition allows, for "did you mean".
var fields = map[string][]string{
	"deployment": {"name", "hosts"},
	"host":       {"address", "ssh", "tags", "build", "activation", "timeout", "substitute", "nix", "guix"},
	"ssh":        {"user", "port", "identityFile", "hostKey", "jumpHost", "jumpHostKey", "sudo"},
	"nix":        {"file", "attribute", "args", "flake"},
	"guix":       {"config", "loadPath", "channels", "system", "authorize"},
}

// unknownField says that the last field of path is not allowed, with the
// allowed field it is closest to.
func (l *loader) unknownField(path []string) string {
	name := path[len(path)-1]
	k := kind(path[:len(path)-1])
	allowed := fields[k]
	msg := fmt.Sprintf("unknown field %s", quoteLabel(name))
	if k == "" {
		// Not a struct of the schema, but one of the user's own
		// definitions: suggest from its fields.
		if best := closest(name, l.fieldsOf(path[:len(path)-1], name)); best != "" {
			return msg + fmt.Sprintf(" (did you mean %s?)", best)
		}
		return msg
	}
	if best := closest(name, allowed); best != "" {
		return msg + fmt.Sprintf(" (did you mean %s?)", best)
	}
	return msg + fmt.Sprintf(" in %s: allowed are %s", k, strings.Join(allowed, ", "))
}

// fieldsOf lists the regular fields of the user's value at path, but for
// name.
func (l *loader) fieldsOf(path []string, name string) []string {
	if !l.user.Exists() {
		return nil
	}
	it, err := l.user.LookupPath(l.cuePath(path)).Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var out []string
	for it.Next() {
		if f := it.Selector().Unquoted(); f != name {
			out = append(out, f)
		}
	}
	return out
}

// closest is the word of words nearest to name, if any is near.
func closest(name string, words []string) string {
	best, bestD := "", 3
	for _, f := range words {
		if d := distance(strings.ToLower(name), strings.ToLower(f)); d < bestD {
			best, bestD = f, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// expectation says in words what the schema wants at path.
func expectation(path []string) string {
	if len(path) == 0 {
		return ""
	}
	last := path[len(path)-1]
	switch kind(path[:len(path)-1]) {
	case "deployment":
		switch last {
		case "name":
			return "a name of letters, digits, '-', '.' and '_'"
		case "hosts":
			return "a map from host name to host"
		}
	case "host":
		switch last {
		case "address":
			return "a non-empty DNS name or IP address"
		case "ssh":
			return "{user, port, identityFile, hostKey, jumpHost, jumpHostKey, sudo}"
		case "tags":
			return "a list of tags"
		case "build":
			return `"local" or "target"`
		case "activation":
			return `one of "switch", "boot", "test", "dry-activate"`
		case "timeout":
			return `a duration such as "90s" or "5m"`
		case "substitute":
			return "true or false"
		case "nix":
			return `either {file: "FILE", attribute: "ATTR"} or {flake: "REF#NAME"}, not both`
		case "guix":
			return `{config: "FILE", loadPath: [...], channels: "FILE"}`
		}
	case "ssh":
		switch last {
		case "port":
			return "a port number from 1 to 65535"
		case "user":
			return "a non-empty user name"
		case "hostKey", "jumpHostKey":
			return `an SSH public key such as "ssh-ed25519 AAAA..."`
		case "identityFile", "jumpHost":
			return "a non-empty string"
		case "sudo":
			return "true or false"
		}
	case "nix":
		switch last {
		case "flake":
			return `a flake reference with a configuration name, such as ".#web-1"`
		case "file", "attribute":
			return "a non-empty string"
		}
	case "guix":
		switch last {
		case "config", "channels", "system":
			return "a non-empty string"
		case "loadPath":
			return "a list of directories"
		case "authorize":
			return "true or false"
		}
	}
	if len(path) == 4 && path[2] == "tags" {
		return "a tag: a letter or digit, then letters, digits, '-', '_', '.', '/' or ':'"
	}
	return ""
}

var identRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// errorAt is an error about the field at path, placed at the nearest field
// the user wrote.
func (l *loader) errorAt(path []string, msg string) *Error {
	return &Error{Pos: l.nearest(path), Path: showPath(path), Msg: msg}
}

// unknownFields finds fields the schema does not allow in the user's value.
// CUE reports them too, but not in a struct that has other errors.
func (l *loader) unknownFields() Errors {
	var errs Errors
	var check func(v cue.Value, path []string)
	check = func(v cue.Value, path []string) {
		it, err := v.Fields()
		if err != nil {
			return
		}
		k := kind(path)
		isHosts := len(path) == 1 && path[0] == "hosts"
		for it.Next() {
			name := it.Selector().Unquoted()
			f := append(slices.Clone(path), name)
			if !isHosts && !slices.Contains(fields[k], name) {
				errs = append(errs, &Error{Pos: l.valuePos(it.Value(), f), Path: showPath(path), Msg: l.unknownField(f), unknown: showPath(f)})
				continue
			}
			switch {
			case len(path) == 0 && name == "hosts", isHosts,
				k == "host" && (name == "ssh" || name == "nix" || name == "guix"):
				check(it.Value(), f)
			}
		}
	}
	if l.user.Exists() {
		check(l.user, nil)
	}
	return errs
}

// isSchemaOnly reports whether the user's value at path is nothing but
// what the schema says there: the user did not write the field, though a
// definition of the schema put it in their value. A field whose default
// failed (ssh.sudo, when ssh.user is in error) no longer prints as the
// schema's, but still comes from the schema alone.
func (l *loader) isSchemaOnly(path []string, uv cue.Value) bool {
	sv, ok := l.schemaField(path)
	return ok && (show(sv) == show(uv) || !l.userWrote(uv))
}

// userWrote reports whether any part of v comes from the user's files.
func (l *loader) userWrote(v cue.Value) bool {
	if p := v.Pos(); p.IsValid() && !l.isSchema(p.Filename()) {
		return true
	}
	_, args := v.Expr()
	for _, a := range args {
		if p := a.Pos(); p.IsValid() && !l.isSchema(p.Filename()) {
			return true
		}
	}
	return false
}

// schemaField is the schema's own value for the field at path.
func (l *loader) schemaField(path []string) (cue.Value, bool) {
	if len(path) == 0 || !l.schema.Exists() {
		return cue.Value{}, false
	}
	def := map[string]string{"deployment": "Deployment", "host": "Host", "ssh": "SSH", "guix": "Guix"}[kind(path[:len(path)-1])]
	if def == "" {
		return cue.Value{}, false
	}
	v := l.schema.LookupPath(cue.MakePath(cue.Def(def), cue.Str(path[len(path)-1])))
	return v, v.Exists()
}

// hasDefault reports whether the schema gives the field at path a default,
// so that it is never missing on its own account: it is incomplete only
// because a field it depends on is in error.
func (l *loader) hasDefault(path []string) bool {
	sv, ok := l.schemaField(path)
	if !ok {
		return false
	}
	_, isDefault := sv.Default()
	return isDefault
}

// isDependent reports whether an error at path is only that a field with a
// default the user did not set has no value, which happens when what the
// default depends on is in error.
func (l *loader) isDependent(path []string, msgs []string) bool {
	for _, m := range msgs {
		if !strings.Contains(m, "incomplete value") {
			return false
		}
	}
	if !l.hasDefault(path) {
		return false
	}
	uv := l.user.LookupPath(l.cuePath(path))
	return !uv.Exists() || l.isSchemaOnly(path, uv)
}
