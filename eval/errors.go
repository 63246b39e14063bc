package eval

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// Pos is a place in a user's CUE file.
type Pos struct {
	File string // as given to the loader, made relative to the working directory when shorter
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.File == "" {
		return "-"
	}
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem in a deployment, at the user's own file and line.
type Error struct {
	Pos Pos
	// Path is the field path in the deployment, such as
	// hosts."forum-1".ssh.port, or "" for problems of a whole file.
	Path string
	Msg  string
	// unknown is the path of a field the schema does not allow, for
	// "unknown field" errors; nothing below it is reported again.
	unknown string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.File != "" {
		// An error of the command line (-t) has no file.
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem a load found, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortDedup puts errors in file order and drops repeats.
func (es Errors) sortDedup() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.File != b.File {
			// Errors without a file (tags, the command line) go first.
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return es[i].Path < es[j].Path
	})
	// One message per field: the same complaint found twice (by CUE and by
	// the loader's own checks) is shown once, at its first place.
	var unknown []string
	for _, e := range es {
		if e.unknown != "" {
			unknown = append(unknown, e.unknown)
		}
	}
	// A user's hidden field that holds hosts (_forum.out) fails where the
	// hosts taken from it do: the error is shown for the host alone.
	hostAt := map[Pos]bool{}
	for _, e := range es {
		if strings.HasPrefix(e.Path, "hosts.") {
			hostAt[e.Pos] = true
		}
	}
	out := es[:0]
	seen := map[string]bool{}
	for _, e := range es {
		if inside(e.Path, unknown) {
			continue
		}
		if strings.HasPrefix(e.Path, "_") && e.Pos.File != "" && hostAt[e.Pos] {
			continue
		}
		k := e.Path + "\x00" + e.Msg
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	return out
}

// relFile shows a file relative to the working directory when that is
// shorter, as compilers do.
func relFile(wd, file string) string {
	if file == "" || wd == "" || !filepath.IsAbs(file) {
		return file
	}
	if r, err := filepath.Rel(wd, file); err == nil && len(r) < len(file) {
		return r
	}
	return file
}

// inside reports whether path is one of roots or below one.
func inside(path string, roots []string) bool {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, r+".") || strings.HasPrefix(path, r+"[") {
			return true
		}
	}
	return false
}
