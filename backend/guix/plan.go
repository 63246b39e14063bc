package guix

import (
	"path"

	"cuedeploy.dev/cuedeploy/backend"
)

// Plan implements backend.Backend.
func (b *Backend) Plan(ts []*backend.Target) [][]backend.Step {
	plans := make([][]backend.Step, len(ts))
	for i, t := range ts {
		plans[i] = b.plan(t)
	}
	return plans
}

func or(v, place string) string {
	if v == "" {
		return place
	}
	return v
}

func (b *Backend) plan(t *backend.Target) []backend.Step {
	g := t.Host.Guix
	drv, out := or(t.Drv, backend.PlaceDrv), or(t.Out, backend.PlaceOut)
	local := func(phase string, argv []string) backend.Step {
		return backend.Step{Phase: phase, On: backend.OnLocal, Argv: argv}
	}
	steps := []backend.Step{
		{Phase: backend.PhaseEval, On: backend.OnLocal, Argv: VersionArgv(), When: "it is the run's first Guix host"},
		local(backend.PhaseEval, InstantiateArgv(g)),
		local(backend.PhaseEval, ReadDrvArgv(drv)),
	}
	if t.Host.Build != "target" {
		steps = append(steps,
			local(backend.PhaseBuild, GCRootsArgv(b.GCRoots)),
			local(backend.PhaseBuild, BuildArgv(g, b.gcRoot(t))))
	}
	steps = append(steps, backend.Step{Phase: backend.PhaseConnect, On: backend.OnTarget, Argv: StateArgv()})
	if g.Authorize {
		steps = append(steps, backend.Step{Phase: backend.PhaseCopy, On: backend.OnTarget,
			Argv: AuthorizeArgv(), StdinFrom: KeyArgv(), Root: true})
	}
	closure := out
	if t.Host.Build == "target" {
		closure = drv
	}
	steps = append(steps,
		backend.Step{Phase: backend.PhaseCopy, On: backend.OnTarget, Argv: MissingArgv(), StdinFrom: RequisitesArgv(closure)},
		backend.Step{Phase: backend.PhaseCopy, On: backend.OnTarget, Argv: ImportArgv(),
			StdinFrom: ExportArgv([]string{backend.PlaceMissing}), Root: true, When: "the host lacks paths"})
	if t.Host.Build == "target" {
		steps = append(steps, backend.Step{Phase: backend.PhaseBuild, On: backend.OnTarget, Argv: BuildDrvArgv(drv)})
	}
	steps = append(steps,
		backend.Step{Phase: backend.PhaseCopy, On: backend.OnTarget, Argv: UnpackArgv(b.Stage), StdinFrom: PackArgv(g), Root: true},
		backend.Step{Phase: backend.PhaseActivate, On: backend.OnTarget, Argv: ReconfigureArgv(g, b.Stage), Root: true},
		backend.Step{Phase: backend.PhaseRollback, On: backend.OnTarget, Argv: backend.StopArgv(backend.PlaceActivationPID, stagedConfig(g, b.Stage)),
			Root: true, When: backend.StopWhen},
		backend.Step{Phase: backend.PhaseRollback, On: backend.OnTarget, Argv: SwitchGenerationArgv(backend.PlacePrevious),
			Root: true, When: "activation failed"},
	)
	return steps
}

// gcRoot is the deployer's GC root for t's system.
func (b *Backend) gcRoot(t *backend.Target) string { return path.Join(b.GCRoots, t.Host.Name) }
