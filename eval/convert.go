package eval

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
)

// convert turns CUE's errors into Errors at the user's own positions, with
// one message per field that a person can act on.
func (l *loader) convert(err error, user cue.Value) Errors {
	type group struct {
		path  []string
		msgs  []string
		poss  []token.Pos
		order int
	}
	groups := map[string]*group{}
	var keys []string
	for _, e := range cueerrors.Errors(err) {
		path := e.Path()
		if len(path) > 0 && path[0] == "#Deployment" {
			path = path[1:]
		}
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
	// A failed disjunction reports one error for each alternative and for
	// fields of the alternatives; keep only the one at the disjunction.
	disj := map[string]bool{}
	for k, g := range groups {
		for _, m := range g.msgs {
			if strings.Contains(m, "empty disjunction") {
				disj[k] = true
			}
		}
	}
	var out Errors
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
		out = append(out, l.message(g.path, g.msgs, g.poss, user))
	}
	return out.sortDedup()
}

// message builds the one error for a field from CUE's messages about it.
func (l *loader) message(path []string, msgs []string, poss []token.Pos, user cue.Value) *Error {
	var userPos []token.Pos
	for _, p := range poss {
		if p.IsValid() && !l.isSchema(p.Filename()) {
			userPos = append(userPos, p)
		}
	}
	sort.Slice(userPos, func(i, j int) bool { return userPos[i].Before(userPos[j]) })
	e := &Error{Path: showPath(path)}
	if len(userPos) > 0 {
		e.Pos = l.pos(userPos[0])
	} else {
		e.Pos = l.nearest(path, user)
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
	if user.Exists() && len(path) > 0 {
		uv = user.LookupPath(cuePath(path))
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
		e.Msg = fmt.Sprintf("-t %s: the package has no @tag(%s) attribute", name, name)
	case has("field not allowed"):
		e.Path = showPath(path[:len(path)-1])
		e.Msg = unknownField(path)
	case has("incomplete value") && !exists:
		e.Msg = "missing required field " + quoteLabel(path[len(path)-1])
		if expect != "" {
			e.Msg += ": expected " + expect
		}
	case has("incomplete value"):
		e.Msg = fmt.Sprintf("value %s is not concrete", show(uv))
		if expect != "" {
			e.Msg += ": expected " + expect
		}
	case len(userPos) > 1 && has("conflicting values") && exists && uv.Err() != nil:
		// Two of the user's own values disagree.
		var also []string
		for _, p := range userPos[1:] {
			also = append(also, l.pos(p).String())
		}
		e.Msg = firstReal(msgs) + " (also set at " + strings.Join(dedup(also), ", ") + ")"
	case expect != "" && exists:
		e.Msg = fmt.Sprintf("invalid value %s: expected %s", show(uv), expect)
	case expect != "":
		e.Msg = "invalid value: expected " + expect
	default:
		e.Msg = firstReal(msgs)
	}
	return e
}

// pos converts a CUE position to the user's file, relative to the working
// directory.
func (l *loader) pos(p token.Pos) Pos {
	return Pos{File: relFile(l.wd, p.Filename()), Line: p.Line(), Col: p.Column()}
}

// nearest is the position of the closest field at or above path that the
// user wrote, so that a missing field is reported where the user would add
// it.
func (l *loader) nearest(path []string, user cue.Value) Pos {
	if user.Exists() {
		for i := len(path); i > 0; i-- {
			v := user.LookupPath(cuePath(path[:i]))
			if !v.Exists() {
				continue
			}
			if p := v.Pos(); p.IsValid() && !l.isSchema(p.Filename()) {
				return l.pos(p)
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
func showPath(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = quoteLabel(p)
	}
	return strings.Join(parts, ".")
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
		return "deployment"
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
	"ssh":        {"user", "port", "identityFile", "hostKey", "jumpHost", "sudo"},
	"nix":        {"file", "attribute", "args", "flake"},
	"guix":       {"config", "loadPath", "channels", "system", "authorize"},
}

func unknownField(path []string) string {
	name := path[len(path)-1]
	k := kind(path[:len(path)-1])
	allowed := fields[k]
	msg := fmt.Sprintf("unknown field %s", quoteLabel(name))
	if k == "" {
		return msg
	}
	best, bestD := "", 3
	for _, f := range allowed {
		if d := distance(strings.ToLower(name), strings.ToLower(f)); d < bestD {
			best, bestD = f, d
		}
	}
	if best != "" {
		return msg + fmt.Sprintf(" (did you mean %s?)", best)
	}
	return msg + fmt.Sprintf(" in %s: allowed are %s", k, strings.Join(allowed, ", "))
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
			return "{user, port, identityFile, hostKey, jumpHost, sudo}"
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
		case "hostKey":
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
	return &Error{Pos: l.nearest(path, l.user), Path: showPath(path), Msg: msg}
}
