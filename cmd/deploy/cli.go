package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"
	"golang.org/x/term"

	"cuedeploy.dev/cuedeploy/eval"
)

// Exit codes, documented in README.md.
const (
	exitOK       = 0 // every selected host reached its goal
	exitFailed   = 1 // at least one host did not
	exitInvalid  = 2 // bad input: usage, the deployment, the selector
	exitInternal = 3 // the deployer itself: a program it runs is not on PATH (found before any host is touched), I/O
)

// cli is the whole command line; each command is a struct in its own file.
type cli struct {
	Dir       string   `short:"C" name:"dir" default:"." help:"Directory of the deployment's CUE package." type:"path"`
	Tag       []string `short:"t" name:"tag" placeholder:"NAME=VALUE" sep:"none" help:"Set @tag(NAME) in the deployment, as cue -t."`
	LogLevel  string   `name:"log-level" enum:"debug,info,warn,error" default:"info" help:"Log level (${enum})."`
	LogFormat string   `name:"log-format" enum:"console,json" default:"console" help:"Log format on stderr (${enum})."`

	Deploy   deployCmd   `cmd:"" default:"withargs" help:"Build, copy and activate the selected hosts (the default command)."`
	Build    buildCmd    `cmd:"" help:"Build the selected systems and print their store paths."`
	Eval     evalCmd     `cmd:"" help:"Print the plan of each selected host: every command a deploy runs. Touches no host."`
	Validate validateCmd `cmd:"" help:"Validate deployments against the schema; no Nix or Guix is run."`
	Hosts    hostsCmd    `cmd:"" help:"List the selected hosts."`
	Version  versionCmd  `cmd:"" help:"Print the version."`
}

// env is what every command's Run receives.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	log    zerolog.Logger
	// tty is true when stderr is a terminal (live status display).
	tty bool
	cli *cli
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c cli
	exited := -1
	parser, err := kong.New(&c,
		kong.Name("deploy"),
		kong.Description("Deploy NixOS and Guix System machines from a deployment written in CUE."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exited = code }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "deploy: %v\n", err)
		return exitInternal
	}
	kctx, err := parser.Parse(args)
	if exited >= 0 {
		return exited // --help
	}
	if err != nil {
		fmt.Fprintf(stderr, "deploy: %v\n", err)
		return exitInvalid
	}
	switch strings.Fields(kctx.Command())[0] {
	case "deploy":
		setStopping("stopping; activations under way are rolled back")
	case "build":
		setStopping("stopping the build")
	}
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, cli: &c}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		e.tty = true
	}
	e.log = newLogger(stderr, c.LogLevel, c.LogFormat, e.tty)
	err = kctx.Run(e)
	if c.LogFormat == "json" {
		return exitCode(err, jsonReport{e.log})
	}
	return exitCode(err, textReport{stderr})
}

func newLogger(w io.Writer, level, format string, tty bool) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	// Milliseconds: a run's phases are often shorter than a second.
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	var out io.Writer = w
	if format == "console" {
		tf := "15:04:05"
		if lvl <= zerolog.DebugLevel {
			tf = "15:04:05.000"
		}
		out = zerolog.ConsoleWriter{Out: w, NoColor: !tty, TimeFormat: tf}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

// errFailed says a run ended with hosts that did not reach their goal; the
// hosts' errors were already reported.
var errFailed = errors.New("some hosts did not reach their goal")

// exitCode reports err once and maps it to the process's exit code.
func exitCode(err error, rep reporter) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errFailed) {
		return exitFailed
	}
	var loadErrs eval.Errors
	var selErr *eval.SelectError
	var usage usageError
	switch {
	case errors.As(err, &loadErrs):
		rep.deployment(loadErrs)
		return exitInvalid
	case errors.As(err, &selErr), errors.As(err, &usage):
		rep.fatal(err)
		return exitInvalid
	}
	rep.fatal(err)
	return exitInternal
}

// reporter prints the error that ends a run.
type reporter interface {
	deployment(eval.Errors)
	fatal(error)
}

// textReport prints errors as a compiler does, one per line.
type textReport struct{ w io.Writer }

func (r textReport) deployment(es eval.Errors) {
	fmt.Fprintln(r.w, es.Error())
	fmt.Fprintf(r.w, "deploy: %d error%s in the deployment; nothing was touched\n", len(es), plural(len(es)))
}

func (r textReport) fatal(err error) { fmt.Fprintf(r.w, "deploy: %v\n", err) }

// jsonReport logs errors as JSON lines, one per deployment error with its
// file, line, column and field, for CI annotations.
type jsonReport struct{ log zerolog.Logger }

func (r jsonReport) deployment(es eval.Errors) {
	for _, e := range es {
		r.log.Error().Str("file", e.Pos.File).Int("line", e.Pos.Line).Int("column", e.Pos.Col).
			Str("field", e.Path).Msg(e.Msg)
	}
	r.log.Error().Int("errors", len(es)).Msg("invalid deployment; nothing was touched")
}

func (r jsonReport) fatal(err error) { r.log.Error().Msg(err.Error()) }

// usageError is wrong input on the command line.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// parseKV parses NAME=VALUE flags into their values and the names in the
// order given, a name given again where it was last.
func parseKV(flag string, kvs []string) (map[string]string, []string, error) {
	m := map[string]string{}
	var order []string
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, nil, usageError{fmt.Sprintf("%s %q: expected NAME=VALUE", flag, kv)}
		}
		m[k] = v
		order = append(slices.DeleteFunc(order, func(n string) bool { return n == k }), k)
	}
	return m, order, nil
}
