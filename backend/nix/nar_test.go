package nix

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"cuedeploy.dev/cuedeploy/backend/backendtest"
)

// narOfNix is what the real nix-store --dump writes for path.
func narOfNix(t *testing.T, path string) []byte {
	t.Helper()
	if _, err := exec.LookPath("nix-store"); err != nil {
		backendtest.Skip(t, "nix-store not found on PATH")
	}
	out, err := exec.Command("nix-store", "--dump", path).Output()
	if err != nil {
		t.Fatalf("nix-store --dump %s: %v", path, err)
	}
	return out
}

// TestWriteNARMatchesNix compares our archives byte for byte with the real
// nix-store --dump: files with and without the executable bit, empty and
// padded sizes, symlinks, nested and empty directories, and names whose
// byte order differs from other orders.
func TestWriteNARMatchesNix(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	files := map[string]string{
		"a":              "",
		"B":              "upper case sorts first",
		"a.b":            "1234567", // 7 bytes: padded
		"bin/run":        "#!/bin/sh\necho hi\n",
		"bin/z":          "12345678", // 8 bytes: no padding
		"lib/deep/x/y/z": string(bytes.Repeat([]byte("0123456789"), 20000)),
		"ünïcode":        "name in UTF-8",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "bin/run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"sw": "bin", "dangling": "/nonexistent/x", "up": "../root/a"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{root, filepath.Join(root, "bin/run"), filepath.Join(root, "a"), filepath.Join(root, "sw"), filepath.Join(root, "empty")} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			want := narOfNix(t, p)
			var got bytes.Buffer
			n, err := writeNAR(&got, p)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(got.Len()) {
				t.Errorf("writeNAR returned size %d, wrote %d bytes", n, got.Len())
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("archive of %s differs from nix-store --dump: %d bytes, want %d", p, got.Len(), len(want))
			}
		})
	}
}

func TestWriteNARRefusesDevices(t *testing.T) {
	if _, err := writeNAR(&bytes.Buffer{}, "/dev/null"); err == nil {
		t.Fatal("archiving /dev/null: no error")
	}
}
