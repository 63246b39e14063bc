package backend

import (
	"reflect"
	"testing"
)

func TestDrvOutputs(t *testing.T) {
	aterm := `Derive([("debug","/gnu/store/aaa-system-debug","",""),("out","/gnu/store/bbb-system","","")],` +
		`[("/gnu/store/ccc-x.drv",["out"])],["/gnu/store/ddd-builder"],"x86_64-linux","/gnu/store/eee-guile/bin/guile",` +
		`["--no-auto-compile","/gnu/store/ddd-builder"],[("out","/gnu/store/bbb-system"),("s","a \"quoted\"\nline")])`
	outs, err := DrvOutputs(aterm)
	if err != nil {
		t.Fatal(err)
	}
	if outs["out"] != "/gnu/store/bbb-system" || outs["debug"] != "/gnu/store/aaa-system-debug" || len(outs) != 2 {
		t.Errorf("DrvOutputs = %v", outs)
	}
	for _, bad := range []string{"", "Derive(", `Derive([("out","/gnu/store/x`, "hello", `Derive([])`} {
		if _, err := DrvOutputs(bad); err == nil {
			t.Errorf("DrvOutputs(%q) succeeded", bad)
		}
	}
}

func TestParseDrvOutputsRefusesMalformed(t *testing.T) {
	for _, in := range []string{
		``,
		`Derive(`,
		`Derive([("out","/nix/store/x","","")`,
		`Derive([("out","/nix/store/x","")],[],`,
		`Derive([("out","/nix/store/x,"","")],`,
		`Derive([("out" "/nix/store/x","","")],`,
	} {
		if outs, err := DrvOutputs(in); err == nil {
			t.Errorf("DrvOutputs(%q) = %v, want an error", in, outs)
		}
	}
	outs, err := DrvOutputs(`Derive([("dev","/nix/store/a-x-dev","",""),("out","/nix/store/b-x\"y","","")],[],[]`)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"dev": "/nix/store/a-x-dev", "out": `/nix/store/b-x"y`}; !reflect.DeepEqual(outs, want) {
		t.Errorf("got %v, want %v", outs, want)
	}
}

func TestGeneration(t *testing.T) {
	for link, want := range map[string]int{"system-12-link": 12, "/nix/var/nix/profiles/system-1-link": 1, "": 0, "system": 0, "system-x-link": 0} {
		if got := Generation(link); got != want {
			t.Errorf("Generation(%q) = %d, want %d", link, got, want)
		}
	}
}
