package nix

import (
	"fmt"
	"os"

	"cuedeploy.dev/cuedeploy/backend"
)

// drvOutput returns the path of the "out" output that the derivation file
// drv names, read from the file itself: the instantiation wrote it, and
// reading it costs no nix process. It fails for a derivation whose output
// path is not fixed yet (content-addressed), and when the file is not where
// its store path says (another store root); the caller then asks nix.
func drvOutput(drv string) (string, error) {
	data, err := os.ReadFile(drv)
	if err != nil {
		return "", err
	}
	outs, err := backend.DrvOutputs(string(data))
	if err != nil {
		return "", fmt.Errorf("%s: %w", drv, err)
	}
	out := outs["out"]
	if out == "" {
		return "", fmt.Errorf("%s: no fixed path for output out", drv)
	}
	return out, nil
}
