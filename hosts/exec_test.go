package hosts

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A stopped local command gets TERM, which lets it clean up (nix stops its
// builders then), not KILL.
func TestLocalStopSendsTerm(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "mark")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	err := Local{}.Run(ctx, Cmd{Argv: []string{"sh", "-c", `trap 'echo cleaned up > "$1"; exit 3' TERM; sleep 10 >/dev/null 2>&1 & wait`, "sh", mark}})
	if err == nil {
		t.Fatal("the stopped command succeeded")
	}
	if data, _ := os.ReadFile(mark); string(data) != "cleaned up\n" {
		t.Errorf("the command did not clean up (%q): it did not get TERM", data)
	}
}
