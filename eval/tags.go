package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
)

// declaredTag is one @tag(NAME) attribute in the user's files.
type declaredTag struct {
	name, typ  string
	shorthands []string
	pos        Pos
	path       []string // the field it sits on
}

// checkTags checks every -t value against the @tag attributes of the
// package's files before CUE sees them, because CUE stops at the first bad
// one and names no file. Problems it cannot judge are left to CUE.
func (l *loader) checkTags() Errors {
	if len(l.tags) == 0 {
		return nil
	}
	decl, ifs, ok := l.declaredTags()
	if !ok {
		return nil
	}
	byName := map[string][]declaredTag{}
	var names []string
	short := map[string]bool{}
	for _, d := range decl {
		if byName[d.name] == nil {
			names = append(names, fmt.Sprintf("%s (%s)", d.name, d.pos))
		}
		byName[d.name] = append(byName[d.name], d)
		for _, s := range d.shorthands {
			short[s] = true
		}
	}
	known := "it has no @tag at all"
	if len(names) > 0 {
		known = "its tags are " + strings.Join(names, ", ")
	}
	var errs Errors
	given := map[string]string{} // the first -t NAME=VALUE of each name
	for _, t := range l.tags {
		name, val, isKV := strings.Cut(t, "=")
		switch {
		case !isKV && (ifs[name] || short[name]):
		case !isKV && len(byName[name]) > 0:
			errs = append(errs, &Error{Msg: fmt.Sprintf("-t %s: expected NAME=VALUE to set @tag(%s) at %s", t, name, byName[name][0].pos)})
		case !isKV:
			errs = append(errs, &Error{Msg: fmt.Sprintf("-t %s: no @if(%s) in the package, and NAME=VALUE is needed to set a @tag; %s", t, name, known)})
		case name == "":
			errs = append(errs, &Error{Msg: fmt.Sprintf("-t %s: expected NAME=VALUE", t)})
		case len(byName[name]) == 0:
			errs = append(errs, &Error{Msg: fmt.Sprintf("-t %s: the package has no @tag(%s); %s", t, name, known)})
		default:
			for _, d := range byName[name] {
				if want := badTagValue(d.typ, val); want != "" {
					errs = append(errs, &Error{Pos: d.pos, Path: showPath(d.path),
						Msg: fmt.Sprintf("-t %s: @tag(%s, type=%s) expects %s", t, name, d.typ, want)})
				}
			}
			// CUE unifies both values, and the conflict spreads to
			// everything that uses the tag.
			if first, seen := given[name]; !seen {
				given[name] = t
			} else if first != t {
				errs = append(errs, &Error{Msg: fmt.Sprintf("-t %s and -t %s: @tag(%s) is given twice, with different values; give it once", first, t, name)})
			}
		}
	}
	return errs
}

// badTagValue says what a value of tag type typ must be, when val is not
// one.
func badTagValue(typ, val string) string {
	switch typ {
	case "int":
		if _, err := strconv.ParseInt(val, 0, 64); err != nil {
			return "an integer"
		}
	case "number":
		if _, err := strconv.ParseFloat(val, 64); err != nil {
			return "a number"
		}
	case "bool":
		if _, err := strconv.ParseBool(val); err != nil {
			return "true or false"
		}
	}
	return ""
}

// declaredTags lists the @tag attributes and @if names of the package's
// files. ok is false when a file cannot be parsed (CUE reports that).
func (l *loader) declaredTags() (tags []declaredTag, ifs map[string]bool, ok bool) {
	files, _ := filepath.Glob(filepath.Join(l.dir, "*.cue"))
	sort.Strings(files)
	ifs = map[string]bool{}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, false
		}
		f, err := parser.ParseFile(file, src)
		if err != nil {
			return nil, nil, false
		}
		for _, a := range f.Decls {
			if at, isAttr := a.(*ast.Attribute); isAttr {
				if k, body := at.Split(); k == "if" {
					for _, w := range strings.FieldsFunc(body, func(r rune) bool {
						return !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
					}) {
						ifs[w] = true
					}
				}
			}
		}
		var stack []string
		ast.Walk(f, func(n ast.Node) bool {
			fd, isField := n.(*ast.Field)
			if !isField {
				return true
			}
			label, _, _ := ast.LabelName(fd.Label)
			stack = append(stack, label)
			for _, at := range fd.Attrs {
				k, body := at.Split()
				if k != "tag" {
					continue
				}
				parts := strings.Split(body, ",")
				d := declaredTag{name: strings.TrimSpace(parts[0]), typ: "string",
					pos: l.pos(at.Pos()), path: append([]string(nil), stack...)}
				for _, p := range parts[1:] {
					k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
					switch strings.TrimSpace(k) {
					case "type":
						d.typ = strings.TrimSpace(v)
					case "short":
						d.shorthands = append(d.shorthands, strings.Split(strings.TrimSpace(v), "|")...)
					}
				}
				tags = append(tags, d)
			}
			return true
		}, func(n ast.Node) {
			if _, isField := n.(*ast.Field); isField {
				stack = stack[:len(stack)-1]
			}
		})
	}
	return tags, ifs, true
}
