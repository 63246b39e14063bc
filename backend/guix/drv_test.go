package guix

import (
	"strings"
	"testing"
)

func TestDrvOutputs(t *testing.T) {
	aterm := `Derive([("debug","/gnu/store/aaa-system-debug","",""),("out","/gnu/store/bbb-system","","")],` +
		`[("/gnu/store/ccc-x.drv",["out"])],["/gnu/store/ddd-builder"],"x86_64-linux","/gnu/store/eee-guile/bin/guile",` +
		`["--no-auto-compile","/gnu/store/ddd-builder"],[("out","/gnu/store/bbb-system"),("s","a \"quoted\"\nline")])`
	outs, err := drvOutputs(aterm)
	if err != nil {
		t.Fatal(err)
	}
	if outs["out"] != "/gnu/store/bbb-system" || outs["debug"] != "/gnu/store/aaa-system-debug" || len(outs) != 2 {
		t.Errorf("drvOutputs = %v", outs)
	}
	for _, bad := range []string{"", "Derive(", `Derive([("out","/gnu/store/x`, "hello", `Derive([])`} {
		if _, err := drvOutputs(bad); err == nil {
			t.Errorf("drvOutputs(%q) succeeded", bad)
		}
	}
}

func TestParseState(t *testing.T) {
	s, err := parseState("\n\n\n")
	if err != nil || s.Current != "" || s.Profile != "" || s.Generation != 0 {
		t.Errorf("fresh host: %+v, %v", s, err)
	}
	s, err = parseState("/gnu/store/a-system\n/gnu/store/b-system\nsystem-12-link\n")
	if err != nil || s.Current != "/gnu/store/a-system" || s.Profile != "/gnu/store/b-system" || s.Generation != 12 {
		t.Errorf("deployed host: %+v, %v", s, err)
	}
	if _, err := parseState("oops"); err == nil || !strings.Contains(err.Error(), "unexpected output") {
		t.Errorf("garbage: %v", err)
	}
}
