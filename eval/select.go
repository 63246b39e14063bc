package eval

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"cuedeploy.dev/cuedeploy/schema"
)

// SelectError is a selector that cannot be used: a term that matched no
// host, a malformed term, or a selection that leaves no host.
type SelectError struct {
	Term string
	// Reason says what is wrong; empty for a term that matched no host.
	Reason string
	// Known lists the tags (for a tag: term) or host names that exist.
	Known []string
}

func (e *SelectError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("select %q: %s", e.Term, e.Reason)
	}
	what := "host names"
	if strings.HasPrefix(strings.TrimPrefix(e.Term, "!"), "tag:") {
		what = "tags"
	}
	known := strings.Join(e.Known, ", ")
	if known == "" {
		known = "none"
	}
	return fmt.Sprintf("select %q: matches no host; known %s: %s", e.Term, what, known)
}

// Select returns the hosts of d that the selector sel picks, in name order.
//
// sel is comma-separated terms: NAME, a glob such as forum-*, or tag:TAG
// (which may be a glob too); a term starting with '!' excludes what it
// matches. With only exclusions, the rest of the hosts are selected. An
// empty selector selects every host. A term that matches no host is an
// error, and so is a selection that leaves no host: a typo must never
// become a silent empty run.
func Select(d *schema.Deployment, sel string) ([]schema.Host, error) {
	sel = strings.TrimSpace(sel)
	if sel == "" {
		return d.Hosts, nil
	}
	var include, exclude []string
	for _, t := range strings.Split(sel, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "" || t == "!":
			return nil, &SelectError{Term: sel, Reason: "empty term"}
		case strings.HasPrefix(t, "!"):
			exclude = append(exclude, t[1:])
		default:
			include = append(include, t)
		}
	}
	picked := make([]bool, len(d.Hosts))
	if len(include) == 0 {
		for i := range picked {
			picked[i] = true
		}
	}
	for _, t := range include {
		n, err := mark(d, t, picked, true)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, unmatched(d, t)
		}
	}
	for _, t := range exclude {
		n, err := mark(d, t, picked, false)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, unmatched(d, "!"+t)
		}
	}
	var out []schema.Host
	for i, p := range picked {
		if p {
			out = append(out, d.Hosts[i])
		}
	}
	if len(out) == 0 {
		return nil, &SelectError{Term: sel, Reason: "leaves no host (every host it picks is excluded)"}
	}
	return out, nil
}

// mark sets picked[i] = to for every host term matches, and counts them.
func mark(d *schema.Deployment, term string, picked []bool, to bool) (int, error) {
	n := 0
	for i := range d.Hosts {
		h := &d.Hosts[i]
		ok, err := matches(h, term)
		if err != nil {
			return 0, &SelectError{Term: term, Reason: err.Error() + ` (globs: * ? [abc]; \[ is a literal "[")`}
		}
		if ok {
			picked[i] = to
			n++
		}
	}
	return n, nil
}

func matches(h *schema.Host, term string) (bool, error) {
	if tag, ok := strings.CutPrefix(term, "tag:"); ok {
		for _, t := range h.Tags {
			if m, err := path.Match(tag, t); err != nil || m {
				return m, err
			}
		}
		return false, nil
	}
	return path.Match(term, h.Name)
}

func unmatched(d *schema.Deployment, term string) error {
	seen := map[string]bool{}
	var known []string
	isTag := strings.HasPrefix(strings.TrimPrefix(term, "!"), "tag:")
	for _, h := range d.Hosts {
		names := []string{h.Name}
		if isTag {
			names = h.Tags
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				known = append(known, n)
			}
		}
	}
	sort.Strings(known)
	if len(known) > 20 {
		known = append(known[:20], fmt.Sprintf("… (%d more)", len(known)-20))
	}
	return &SelectError{Term: term, Known: known}
}
