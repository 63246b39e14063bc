package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// writeFleet writes a deployment of n Nix hosts made by a comprehension.
func writeFleet(t testing.TB, dir string, n int) {
	t.Helper()
	files := map[string]string{
		"system.nix": "{ }: { }\n",
		"deployment.cue": fmt.Sprintf(`package fleet

import "list"

name: "fleet"
hosts: {
	for i in list.Range(0, %d, 1) {
		"host-\(i)": {
			address: "10.0.\(div(i, 256)).\(mod(i, 256))"
			tags: ["web", "rack-\(mod(i, 20))"]
			nix: {file: "system.nix", attribute: "hosts.host-\(i)"}
		}
	}
}
`, n),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
