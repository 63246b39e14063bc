package nix

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"cuedeploy.dev/cuedeploy/backend"
)

// TestNARCache checks what the cache keeps: the archive of a path that
// two hosts share, byte for byte what the store's serialization gives;
// not a path only one host has, nor one over the budget, nor one whose
// size the store records differently; and nothing once the hosts are done.
func TestNARCache(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, data string) (string, pathInfo) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "data"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		n, err := writeNAR(&buf, p)
		if err != nil {
			t.Fatal(err)
		}
		return p, pathInfo{narSize: n}
	}
	shared, sharedIn := mk("shared", "every host has this\n")
	own, ownIn := mk("own", "one host has this\n")

	c := newNARCache()
	c.share([]string{shared, own}, []string{shared})
	data, ok := c.get(shared, sharedIn)
	if !ok {
		t.Fatal("a path two hosts lack is not kept")
	}
	var want bytes.Buffer
	if _, err := writeNAR(&want, shared); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want.Bytes()) {
		t.Error("the kept archive differs from the store's serialization")
	}
	if again, ok := c.get(shared, sharedIn); !ok || &again[0] != &data[0] {
		t.Error("the second host does not get the kept archive")
	}
	if _, ok := c.get(own, ownIn); ok {
		t.Error("a path only one host has is kept")
	}
	if used := int64(narCacheTotal) - c.left; used != sharedIn.narSize {
		t.Errorf("the cache takes %d bytes, want %d", used, sharedIn.narSize)
	}

	wrong := sharedIn
	wrong.narSize++
	c2 := newNARCache()
	c2.share([]string{shared}, []string{shared})
	if _, ok := c2.get(shared, wrong); ok {
		t.Error("an archive whose size differs from the store's record is kept")
	}
	if c2.left != narCacheTotal {
		t.Errorf("a failed archive keeps %d bytes of the budget", narCacheTotal-c2.left)
	}

	c.done([]string{shared, own})
	if _, ok := c.entries[shared]; !ok {
		t.Error("the archive went while a host still needs it")
	}
	c.done([]string{shared})
	if len(c.entries) != 0 || len(c.hosts) != 0 || c.left != narCacheTotal {
		t.Errorf("after every host is done the cache holds %d archives, %d counts, %d bytes", len(c.entries), len(c.hosts), narCacheTotal-c.left)
	}

	c3 := newNARCache()
	c3.left = sharedIn.narSize - 1
	c3.share([]string{shared}, []string{shared})
	if _, ok := c3.get(shared, sharedIn); ok {
		t.Error("an archive over the budget is kept")
	}
}

// TestFinishLetsGoOfArchives: a host whose run ends without copying
// (unchanged, or failed before) lets go of the archives kept for it, once
// even if it copied too; a host whose run ended before its closure was
// known is not counted at all.
func TestFinishLetsGoOfArchives(t *testing.T) {
	p := filepath.Join(t.TempDir(), "shared")
	if err := os.WriteFile(p, []byte("two hosts lack this\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := writeNAR(&buf, p)
	if err != nil {
		t.Fatal(err)
	}
	in := pathInfo{narSize: n}
	b := New(Options{})
	copied, unchanged, early := &backend.Target{Closure: []string{p}}, &backend.Target{Closure: []string{p}}, &backend.Target{Closure: []string{p}}
	b.Finish(early)
	for _, tg := range []*backend.Target{copied, unchanged, early} {
		b.share(tg)
	}
	if got := b.nars.hosts[p]; got != 2 {
		t.Fatalf("%d hosts counted for the path, want 2 (not the one whose run had ended)", got)
	}
	if _, ok := b.nars.get(p, in); !ok {
		t.Fatal("a path two hosts lack is not kept")
	}
	b.unshare(copied) // its copy is done
	b.Finish(copied)
	if _, kept := b.nars.entries[p]; !kept {
		t.Error("the archive went while the unchanged host still counted")
	}
	b.Finish(unchanged)
	if _, kept := b.nars.entries[p]; kept || b.nars.left != narCacheTotal || len(b.nars.hosts) != 0 {
		t.Errorf("after every host finished: entry kept %v, %d bytes of budget left (want %d), counts %v", kept, b.nars.left, narCacheTotal, b.nars.hosts)
	}
}
