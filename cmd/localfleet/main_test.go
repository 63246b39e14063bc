package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuedeploy.dev/cuedeploy/hosts/fleet"
	"cuedeploy.dev/cuedeploy/hosts/fleet/fleettest"
)

// localfleet runs the command line in-process and returns its exit code
// and output, as main would.
func localfleet(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code, err := run(context.Background(), args, &out, &errb)
	if err != nil {
		errb.WriteString("localfleet: " + err.Error() + "\n")
		code = exitCode(err)
	}
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	for _, args := range [][]string{
		{},
		{"up", "--state", state},
		{"up", "--state", state, "--count", "2", "a"},
		{"up", "--state", state, "--cue", "x.cue", "a"},
		{"up", "--state", state, "--cue", "x.cue", "--package", "1x", "a"},
		{"stop", "--state", state},
		{"frobnicate"},
	} {
		if code, _, stderr := localfleet(t, args...); code != 2 || stderr == "" {
			t.Errorf("localfleet %q: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a usage error made the state directory: %v", err)
	}
	code, stdout, _ := localfleet(t, "--help")
	if code != 0 || !strings.Contains(stdout, "up") || !strings.Contains(stdout, "down") {
		t.Errorf("localfleet --help: exit %d, stdout %q", code, stdout)
	}
}

func TestListWithoutFleet(t *testing.T) {
	code, stdout, stderr := localfleet(t, "list", "--state", t.TempDir())
	if code != 1 || stdout != "" || !strings.Contains(stderr, "no fleet") {
		t.Errorf("list without a fleet: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestUpListStopStartDown(t *testing.T) {
	fleettest.Require(t)
	dir := t.TempDir()
	state, cueFile := filepath.Join(dir, "state"), filepath.Join(dir, "fleet.cue")
	code, stdout, stderr := localfleet(t, "up", "--state", state, "--base-port", "0", "--count", "2", "--prefix", "web-",
		"--cue", cueFile, "--package", "demo")
	if code != 0 {
		t.Fatalf("up: exit %d: %s", code, stderr)
	}
	t.Cleanup(func() {
		if f, err := fleet.Load(state); err == nil {
			f.Down()
		}
	})
	if !strings.Contains(stdout, "web-1\t127.0.0.1:") || !strings.Contains(stdout, "web-2\t127.0.0.1:") {
		t.Errorf("up printed %q", stdout)
	}
	src, err := os.ReadFile(cueFile)
	if err != nil || !strings.Contains(string(src), "package demo\n") || !strings.Contains(string(src), `hosts: "web-2": {address: "127.0.0.1"`) {
		t.Errorf("cue file: %v\n%s", err, src)
	}

	list := func() map[string]hostRow {
		t.Helper()
		code, stdout, stderr := localfleet(t, "list", "--state", state, "--json")
		if code != 0 {
			t.Fatalf("list: exit %d: %s", code, stderr)
		}
		var rows []hostRow
		if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
			t.Fatalf("list --json: %v\n%s", err, stdout)
		}
		m := map[string]hostRow{}
		for _, r := range rows {
			m[r.Name] = r
		}
		return m
	}
	if rows := list(); len(rows) != 2 || !rows["web-1"].Alive || !rows["web-2"].Alive || rows["web-1"].Connections != 0 {
		t.Fatalf("list after up: %+v", rows)
	}
	if code, _, stderr := localfleet(t, "stop", "--state", state, "web-1"); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, stderr)
	}
	if rows := list(); rows["web-1"].Alive || !rows["web-2"].Alive {
		t.Fatalf("list after stop web-1: %+v", rows)
	}
	if code, _, stderr := localfleet(t, "start", "--state", state, "web-1"); code != 0 {
		t.Fatalf("start: exit %d: %s", code, stderr)
	}
	if rows := list(); !rows["web-1"].Alive {
		t.Fatalf("list after start web-1: %+v", rows)
	}
	if code, _, _ := localfleet(t, "stop", "--state", state, "web-9"); code != 1 {
		t.Errorf("stop of an unknown host: exit %d; want 1", code)
	}
	if code, _, stderr := localfleet(t, "down", "--state", state); code != 0 {
		t.Fatalf("down: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state directory after down: %v", err)
	}
}
