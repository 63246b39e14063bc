package fleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCUE(t *testing.T) {
	f := &Fleet{
		StateDir:  "/srv/fleet",
		ClientKey: "/srv/fleet/client_key",
		Hosts: []Host{
			{Name: "forum-1", Port: 2201, HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForum"},
			{Name: "db.main_2", Port: 2202, HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDb"},
		},
	}
	got, err := f.CUE("forum")
	if err != nil {
		t.Fatal(err)
	}
	want := `// The local test fleet in /srv/fleet, written by localfleet; do not edit.

package forum

hosts: "forum-1": {address: "127.0.0.1", ssh: {port: 2201, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForum", identityFile: "/srv/fleet/client_key"}}
hosts: "db.main_2": {address: "127.0.0.1", ssh: {port: 2202, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDb", identityFile: "/srv/fleet/client_key"}}
`
	if string(got) != want {
		t.Errorf("CUE:\n%s\nwant:\n%s", got, want)
	}

	for _, bad := range []string{"", "1x", "my-pkg", "_x", "a b"} {
		if _, err := f.CUE(bad); err == nil {
			t.Errorf("CUE(%q) succeeded; want an error", bad)
		}
	}

	// With the cue tool at hand, check the text is CUE that unifies with
	// a deployment setting the same address and port itself.
	cue, err := exec.LookPath("cue")
	if err != nil {
		t.Log("no cue tool on PATH: checked the text only")
		return
	}
	dir := t.TempDir()
	dep := "package forum\n\nhosts: \"forum-1\": {address: \"127.0.0.1\", ssh: port: 2201}\n"
	for name, src := range map[string]string{"fleet.cue": string(got), "deploy.cue": dep} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(cue, "export", "--out", "json", "fleet.cue", "deploy.cue")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"identityFile": "/srv/fleet/client_key"`) {
		t.Errorf("cue export: %v\n%s", err, out)
	}
}

func TestCUEString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:     `"plain"`,
		`a"b`:       `"a\"b"`,
		`x\(y)`:     `"x\\(y)"`,
		"tab\tnl\n": `"tab\tnl\n"`,
		"bell\a":    `"bell\U00000007"`,
	} {
		if got := cueString(in); got != want {
			t.Errorf("cueString(%q) = %s; want %s", in, got, want)
		}
	}
}
