package schema

import _ "embed"

// Source is the CUE schema, importable as ImportPath.
//
//go:embed schema.cue
var Source string

// ImportPath is how user CUE imports the schema.
const ImportPath = "cuedeploy.dev/schema"
