package main

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// goals are DESIGN.md's performance targets: deploy's time over the loop's.
var goals = [2]float64{first: 0.25, noop: 0.15}

var scenarios = [2]string{first: "first deploy", noop: "no-op redeploy"}

// report prints the results and returns whether every goal and check is met.
func report(w io.Writer, c *cli, rs []runStats) bool {
	ok := true
	yes := func(b bool) string {
		ok = ok && b
		if b {
			return "yes"
		}
		return "NO"
	}
	fmt.Fprintf(w, "deploy against a serial shell loop (nix-build, nix-copy-closure, ssh activation, host after host)\n")
	fmt.Fprintf(w, "%d hosts, median of %d runs; every run: a fresh fleet and a new salt for each side, so both evaluate,\n", c.Hosts, len(rs))
	fmt.Fprintf(w, "build and copy everything (nothing is built up front); the loop's no-op is the same loop again\n\n")

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tLOOP\tDEPLOY\tRATIO\tGOAL\tMET\tRUNS (loop/deploy)")
	for _, sc := range []int{first, noop} {
		var loop, dep []time.Duration
		var each []string
		for _, r := range rs {
			loop = append(loop, r.loop[sc])
			dep = append(dep, r.deploy[sc])
			each = append(each, fmt.Sprintf("%s/%s", secs(r.loop[sc]), secs(r.deploy[sc])))
		}
		l, d := median(loop), median(dep)
		ratio := d.Seconds() / l.Seconds()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3fx\t<= %.2fx\t%s\t%s\n", scenarios[sc], secs(l), secs(d), ratio, goals[sc],
			yes(ratio <= goals[sc]), strings.Join(each, " "))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nCPU time, medians (here: the command and its children; hosts: everything their SSH connections ran;\n")
	fmt.Fprintf(w, "others: what the rest of this %d-CPU machine used meanwhile, in cores busy on average)\n", runtime.NumCPU())
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSIDE\tWALL\tCPU HERE\tCPU HOSTS\tCPU TOTAL\tCORES USED\tOTHERS")
	for _, sc := range []int{first, noop} {
		for _, side := range []string{"loop", "deploy"} {
			var wall, here, hosts, total []time.Duration
			var used, others []float64
			for _, r := range rs {
				wl, h, hs, busy := r.loop[sc], r.loopCPU[sc], r.loopRemoteCPU[sc], r.loopBusy[sc]
				if side == "deploy" {
					wl, h, hs, busy = r.deploy[sc], r.deployCPU[sc], r.deployRemoteCPU[sc], r.deployBusy[sc]
				}
				wall, here, hosts, total = append(wall, wl), append(here, h), append(hosts, hs), append(total, h+hs)
				others = append(others, max(0, (busy-h-hs).Seconds())/wl.Seconds())
				used = append(used, (h+hs).Seconds()/wl.Seconds())
			}
			sort.Float64s(used)
			sort.Float64s(others)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\n", scenarios[sc], side, secs(median(wall)), secs(median(here)),
				secs(median(hosts)), secs(median(total)), used[len(used)/2], others[len(others)/2])
		}
	}
	tw.Flush()

	fmt.Fprintf(w, "\nSSH connections per host and run, from the hosts' sshd logs (goal for deploy: 1)\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tDEPLOY\tMET\tLOOP")
	for _, sc := range []int{first, noop} {
		var dep, loop []map[string]int
		for _, r := range rs {
			dep = append(dep, r.deployConns[sc])
			loop = append(loop, r.loopConns[sc])
		}
		dlo, dhi := span(dep)
		llo, lhi := span(loop)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", scenarios[sc], rangeOf(dlo, dhi), yes(dlo == 1 && dhi == 1), rangeOf(llo, lhi))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nSSH sessions (remote commands) per deploy host, by closure size (goal: round trips do not grow with paths)\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSESSIONS BY CLOSURE SIZE\tMET")
	for _, sc := range []int{first, noop} {
		byPaths := map[int]map[int]bool{}
		for _, r := range rs {
			for name, n := range r.deploySessions[sc] {
				p := r.closure[name]
				if byPaths[p] == nil {
					byPaths[p] = map[int]bool{}
				}
				byPaths[p][n] = true
			}
		}
		var sizes []int
		all := map[int]bool{}
		for p, ns := range byPaths {
			sizes = append(sizes, p)
			for n := range ns {
				all[n] = true
			}
		}
		sort.Ints(sizes)
		var parts []string
		for _, p := range sizes {
			parts = append(parts, fmt.Sprintf("%d paths: %s", p, setString(byPaths[p])))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", scenarios[sc], strings.Join(parts, "; "), yes(len(all) == 1))
	}
	tw.Flush()

	fmt.Fprintf(w, "\ncopy: bytes deploy sent against the NAR size of the paths each host lacked (all hosts, per run)\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSCENARIO\tLACKED\tCOPIED\tNAR SIZE\tSENT\tSENT-NAR\tFRAMING\tMET")
	for i, r := range rs {
		for _, sc := range []int{first, noop} {
			var lacked, copied int
			var nar, sent, frame int64
			exact := true
			for name, n := range r.paths[sc] {
				lacked += n
				copied += r.copied[sc][name]
				nar += r.nar[sc][name]
				sent += r.sent[sc][name]
				frame += r.frame[sc][name]
				exact = exact && r.sent[sc][name] == r.nar[sc][name]+r.frame[sc][name] && r.copied[sc][name] == n
			}
			fmt.Fprintf(tw, "%d\t%s\t%d paths\t%d paths\t%d\t%d\t%d\t%d\t%s\n", i+1, scenarios[sc], lacked, copied, nar, sent, sent-nar, frame, yes(exact))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "(MET: on every host, the paths copied are exactly the paths it lacked, and the bytes sent are their NAR\n")
	fmt.Fprintf(w, "size plus the framing of the nix daemon's AddToStoreNar: path, deriver, hash, references, sizes, flags and\n")
	fmt.Fprintf(w, "the 64 KiB frames' lengths per path)\n")
	return ok
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// span is the least and greatest value over every host of every run.
func span(ms []map[string]int) (lo, hi int) {
	lo, hi = 1<<31, -1
	for _, m := range ms {
		for _, n := range m {
			lo, hi = min(lo, n), max(hi, n)
		}
	}
	return lo, hi
}

func rangeOf(lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func setString(s map[int]bool) string {
	var ns []int
	for n := range s {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	var parts []string
	for _, n := range ns {
		parts = append(parts, fmt.Sprint(n))
	}
	return strings.Join(parts, ",")
}
