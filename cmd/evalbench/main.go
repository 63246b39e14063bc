// Command evalbench measures `deploy eval --json` against `cue export` of the
// same generated deployment, for fleets of several sizes, and prints wall
// time, peak memory and their ratios. `make bench` runs it.
//
// It installs nothing: it expects the deploy binary and a cue command of the
// same version as the library (see -deploy and -cue).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "evalbench: %v\n", err)
		os.Exit(1)
	}
}

// sample is one run of one command.
type sample struct {
	wall time.Duration
	rss  int64 // peak resident set, bytes
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("evalbench", flag.ContinueOnError)
	deploy := fs.String("deploy", "./bin/deploy", "the deploy binary")
	cue := fs.String("cue", "cue", "the cue command, at the library's version")
	sizes := fs.String("sizes", "100,1000,5000", "fleet sizes, comma-separated")
	runs := fs.Int("runs", 5, "runs of each command; the median is shown")
	keep := fs.String("keep", "", "write the generated deployments under this directory and keep them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("parse -sizes: %q is not a positive number", s)
		}
		ns = append(ns, n)
	}
	for _, p := range []*string{deploy, cue} {
		abs, err := exec.LookPath(*p)
		if err != nil {
			return fmt.Errorf("find %q: %w", *p, err)
		}
		if abs, err = filepath.Abs(abs); err != nil {
			return err
		}
		*p = abs
	}
	root := *keep
	if root == "" {
		tmp, err := os.MkdirTemp("", "evalbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		root = tmp
	}
	ver, _ := exec.Command(*cue, "version").Output()
	fmt.Fprintf(stdout, "cue: %s\n", firstLine(string(ver)))
	fmt.Fprintf(stdout, "runs per command: %d (median wall time, median peak RSS)\n\n", *runs)

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "hosts\tdeploy eval --json\tpeak RSS\tcue export\tpeak RSS\ttime ratio\tmemory ratio\tdeploy validate\tratio\t")
	for _, n := range ns {
		dir := filepath.Join(root, fmt.Sprintf("fleet-%d", n))
		if err := generate(dir, n); err != nil {
			return err
		}
		d, err := measure(*runs, dir, *deploy, "eval", "--json")
		if err != nil {
			return err
		}
		c, err := measure(*runs, dir, *cue, "export", ".")
		if err != nil {
			return err
		}
		// deploy validate is the loader alone (no plans, no JSON), to show
		// which part of eval costs what.
		v, err := measure(*runs, dir, *deploy, "validate", ".")
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.2fx\t%.2fx\t%s\t%.2fx\t\n", n,
			ms(d.wall), mib(d.rss), ms(c.wall), mib(c.rss),
			float64(d.wall)/float64(c.wall), float64(d.rss)/float64(c.rss),
			ms(v.wall), float64(v.wall)/float64(c.wall))
	}
	return tw.Flush()
}

// generate writes a deployment of n Nix hosts, made by a comprehension, as
// a CUE module in dir.
func generate(dir string, n int) error {
	files := map[string]string{
		"cue.mod/module.cue": "module: \"bench.example/fleet\"\nlanguage: version: \"v0.9.0\"\n",
		"system.nix":         "{ }: { }\n",
		"deployment.cue": fmt.Sprintf(`package fleet

import "list"

name: "bench"

_n: %d

hosts: {
	for i in list.Range(0, _n, 1) {
		"host-\(i)": {
			address: "10.\(div(i, 65536)).\(mod(div(i, 256), 256)).\(mod(i, 256))"
			tags: ["web", "rack-\(mod(i, 20))"]
			nix: {
				file:      "system.nix"
				attribute: "hosts.host-\(i).config.system.build.toplevel"
			}
		}
	}
}
`, n),
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measure runs argv in dir `runs` times, output discarded, and returns the
// median wall time and median peak RSS.
func measure(runs int, dir string, argv ...string) (sample, error) {
	var walls []time.Duration
	var rsss []int64
	for range runs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		cmd.Stdout = io.Discard
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		cancel()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return sample{}, fmt.Errorf("run %s in %s: %w\n%s", strings.Join(argv, " "), dir, err, stderr.String())
			}
			return sample{}, fmt.Errorf("run %s: %w", strings.Join(argv, " "), err)
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			return sample{}, errors.New("no rusage on this system")
		}
		walls = append(walls, wall)
		rsss = append(rsss, ru.Maxrss*1024) // kilobytes on Linux
	}
	slices.Sort(walls)
	slices.Sort(rsss)
	return sample{wall: walls[len(walls)/2], rss: rsss[len(rsss)/2]}, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}
