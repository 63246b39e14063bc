package backend

import (
	"fmt"
	"strconv"
	"strings"
)

// StopArgv ends an activation that was interrupted (time-out, Ctrl-C, the
// connection lost), pid being the process its script gave when it began,
// and waits until it has ended, so that it cannot finish after the
// rollback: sshd does not pass signals on to a root login's session
// ("session signalling requires privilege separation"), and closing the
// session ends the process only when it next writes. The process group
// sshd made for the activation's session (what the activation runs; sudo
// too) gets TERM, 10 s later KILL; still there 5 s after that, the step
// fails. A process whose command line lacks marker (it ended and its
// number was reused) is left alone, and one outside its session's first
// group is signalled alone.
func StopArgv(pid, marker string) []string {
	return []string{"sh", "-c", stopScript, "sh", pid, marker}
}

const stopScript = `p=$1 s=$2 i=0 g=; set -- $(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null); [ "$3" = "$4" ] && g=$3; ` +
	`k() { if [ -n "$g" ]; then kill -s "$1" -- "-$g"; else kill -s "$1" "$p"; fi 2>/dev/null; }; ` +
	`while grep -qaF -- "$s" /proc/"$p"/cmdline 2>/dev/null; do case $i in 0) k TERM ;; 100) k KILL ;; ` +
	`150) echo "the interrupted activation (process $p) did not end" >&2; exit 1 ;; esac; sleep 0.1; i=$((i+1)); done`

// BeginLine starts the line an activation's script prints before it
// changes anything, followed by its process number (the number StopArgv
// takes).
const BeginLine = "begin"

// BeginPID reads the begin line: BeginLine and a process number.
func BeginPID(l string) (int, error) {
	f := strings.Fields(l)
	if len(f) == 2 && f[0] == BeginLine {
		if pid, err := strconv.Atoi(f[1]); err == nil && pid > 0 {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("unexpected line %q", l)
}

// StopWhen is when a plan's StopArgv step runs.
const StopWhen = "the activation was interrupted (time-out, Ctrl-C, the connection lost): it may still run"
