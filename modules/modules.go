// Package modules ships the CUE packages users import as
// cuedeploy.dev/modules/NAME. The loader overlays them into the user's CUE
// module beside the schema, so they always match the binary.
package modules

import "embed"

// FS holds one directory per CUE package.
//
//go:embed */*.cue
var FS embed.FS

// ImportPrefix is how user CUE imports them: ImportPrefix + "/" + NAME.
const ImportPrefix = "cuedeploy.dev/modules"
