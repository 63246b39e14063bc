package eval

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/schema"
)

func testDeployment() *schema.Deployment {
	mk := func(name string, tags ...string) schema.Host { return schema.Host{Name: name, Tags: tags} }
	return &schema.Deployment{Name: "t", Hosts: []schema.Host{
		mk("db-1", "db", "prod"),
		mk("forum-1", "forum", "prod"),
		mk("forum-2", "forum", "prod"),
		mk("forum-3", "forum", "canary"),
		mk("lb", "lb", "prod"),
	}}
}

func names(hs []schema.Host) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return strings.Join(out, " ")
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct{ sel, want string }{
		{"", "db-1 forum-1 forum-2 forum-3 lb"},
		{"lb", "lb"},
		{"forum-*", "forum-1 forum-2 forum-3"},
		{"forum-?,lb", "forum-1 forum-2 forum-3 lb"},
		{"tag:forum", "forum-1 forum-2 forum-3"},
		{"tag:prod,!tag:forum", "db-1 lb"},
		{"!tag:canary", "db-1 forum-1 forum-2 lb"},
		{"!lb, !db-*", "forum-1 forum-2 forum-3"},
		{"tag:for*", "forum-1 forum-2 forum-3"},
		{" lb , db-1 ", "db-1 lb"},
		{"forum-*,!forum-2", "forum-1 forum-3"},
	} {
		got, err := Select(testDeployment(), tc.sel)
		if err != nil {
			t.Errorf("Select(%q): %v", tc.sel, err)
			continue
		}
		if names(got) != tc.want {
			t.Errorf("Select(%q) = %q, want %q", tc.sel, names(got), tc.want)
		}
	}
}

func TestSelectErrors(t *testing.T) {
	for _, tc := range []struct{ sel, want string }{
		{"web", `select "web": matches no host; known host names: db-1, forum-1, forum-2, forum-3, lb`},
		{"tag:web", `select "tag:web": matches no host; known tags: canary, db, forum, lb, prod`},
		{"lb,!tag:nope", `select "!tag:nope": matches no host; known tags: canary, db, forum, lb, prod`},
		{"lb,,db-1", `select "lb,,db-1": empty term`},
		{"!", `select "!": empty term`},
		{"[", `select "[": syntax error in pattern (globs: * ? [abc]; \[ is a literal "[")`},
		{"forum-*,!tag:forum", `select "forum-*,!tag:forum": leaves no host (every host it picks is excluded)`},
	} {
		_, err := Select(testDeployment(), tc.sel)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Select(%q) error = %v, want %s", tc.sel, err, tc.want)
		}
	}
	var se *SelectError
	for _, sel := range []string{"lb,,db-1", "[", "forum-*,!tag:forum"} {
		if _, err := Select(testDeployment(), sel); !errors.As(err, &se) {
			t.Errorf("Select(%q) error %v is not a SelectError (the CLI's exit 2 for bad input)", sel, err)
		}
	}
	if _, err := Select(testDeployment(), "tag:web"); !errors.As(err, &se) || !slices.Contains(se.Known, "forum") {
		t.Errorf("unmatched term is not a SelectError listing the known tags: %v", err)
	}
}

// Long lists of known names are cut, so the message stays readable.
func TestSelectErrorListsAtMost20(t *testing.T) {
	d := &schema.Deployment{}
	for i := range 30 {
		d.Hosts = append(d.Hosts, schema.Host{Name: string(rune('a'+i%26)) + strings.Repeat("x", i/26)})
	}
	_, err := Select(d, "zzz")
	if err == nil || !strings.Contains(err.Error(), "(10 more)") {
		t.Errorf("got %v", err)
	}
}
