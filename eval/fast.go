package eval

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"

	"cuelang.org/go/cue"

	"cuedeploy.dev/cuedeploy/schema"
)

// The fast path: most deployments are valid, and for them unifying every
// host with the schema in CUE costs several times what evaluating the
// user's package does. So a package that evaluates cleanly on its own is
// exported to JSON, as `cue export` would, and checked here against the
// same rules as schema/schema.cue, filling in its defaults. Anything that
// does not pass, or that this check is not sure of, goes the full way
// through CUE, which also gives the positioned errors. The fast path never
// reports an error itself.
//
// The patterns below must stay those of schema.cue; TestFastPatternsMatchSchema
// checks that they do, and TestFastPathAgrees that both paths decode the
// same deployments alike.

var (
	fastName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	fastTag     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:-]*$`)
	fastTimeout = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)
	fastHostKey = regexp.MustCompile(`^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/]+=*( .*)?$`)
	fastFlake   = regexp.MustCompile(`^[^#]+#.+$`)
)

type fastDeployment struct {
	Name  *string              `json:"name"`
	Hosts map[string]*fastHost `json:"hosts"`
}

type fastHost struct {
	Address    *string   `json:"address"`
	SSH        *fastSSH  `json:"ssh"`
	Tags       []string  `json:"tags"`
	Build      *string   `json:"build"`
	Activation *string   `json:"activation"`
	Timeout    *string   `json:"timeout"`
	Substitute *bool     `json:"substitute"`
	Nix        *fastNix  `json:"nix"`
	Guix       *fastGuix `json:"guix"`
}

type fastSSH struct {
	User         *string `json:"user"`
	Port         *int    `json:"port"`
	IdentityFile *string `json:"identityFile"`
	HostKey      *string `json:"hostKey"`
	JumpHost     *string `json:"jumpHost"`
	JumpHostKey  *string `json:"jumpHostKey"`
	Sudo         *bool   `json:"sudo"`
}

type fastNix struct {
	File      *string           `json:"file"`
	Attribute *string           `json:"attribute"`
	Args      map[string]string `json:"args"`
	Flake     *string           `json:"flake"`
}

type fastGuix struct {
	Config    *string  `json:"config"`
	LoadPath  []string `json:"loadPath"`
	Channels  *string  `json:"channels"`
	System    *string  `json:"system"`
	Authorize *bool    `json:"authorize"`
}

// fast returns the decoded deployment, or ok false when the full path must
// decide.
func (l *loader) fast(user cue.Value) (*schema.Deployment, bool) {
	b, err := user.MarshalJSON()
	if err != nil {
		return nil, false
	}
	// null is never valid in a deployment, but would decode as "absent".
	if bytes.Contains(b, []byte("null")) {
		return nil, false
	}
	var fd fastDeployment
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fd); err != nil || fd.Name == nil || !fastName.MatchString(*fd.Name) {
		return nil, false
	}
	d := &schema.Deployment{Name: *fd.Name, Dir: l.dir}
	names := make([]string, 0, len(fd.Hosts))
	for n := range fd.Hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r, ok := fastRaw(fd.Hosts[n])
		if !ok {
			return nil, false
		}
		h, errs := l.checkHost(n, r, nil)
		if len(errs) > 0 {
			return nil, false
		}
		d.Hosts = append(d.Hosts, h)
	}
	return d, true
}

// fastRaw checks one host against the schema's rules and fills in its
// defaults.
func fastRaw(f *fastHost) (*rawHost, bool) {
	if f == nil || f.Address == nil || *f.Address == "" {
		return nil, false
	}
	r := &rawHost{Address: *f.Address, Tags: f.Tags, Build: "local", Activation: "switch"}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	for _, t := range r.Tags {
		if !fastTag.MatchString(t) {
			return nil, false
		}
	}
	if f.Build != nil {
		if *f.Build != "local" && *f.Build != "target" {
			return nil, false
		}
		r.Build = *f.Build
	}
	if f.Activation != nil {
		switch *f.Activation {
		case "switch", "boot", "test", "dry-activate":
		default:
			return nil, false
		}
		r.Activation = *f.Activation
	}
	if f.Timeout != nil {
		if !fastTimeout.MatchString(*f.Timeout) {
			return nil, false
		}
		r.Timeout = *f.Timeout
	}
	if f.Substitute != nil {
		r.Substitute = *f.Substitute
	}
	r.SSH = schema.SSH{User: "root", Port: 22}
	if s := f.SSH; s != nil {
		if s.User != nil {
			if *s.User == "" {
				return nil, false
			}
			r.SSH.User = *s.User
		}
		if s.Port != nil {
			if *s.Port < 1 || *s.Port > 65535 {
				return nil, false
			}
			r.SSH.Port = *s.Port
		}
		if !optional(s.IdentityFile, &r.SSH.IdentityFile) || !optional(s.JumpHost, &r.SSH.JumpHost) {
			return nil, false
		}
		for _, k := range []struct{ from, to *string }{{s.HostKey, &r.SSH.HostKey}, {s.JumpHostKey, &r.SSH.JumpHostKey}} {
			if k.from != nil {
				if !fastHostKey.MatchString(*k.from) {
					return nil, false
				}
				*k.to = *k.from
			}
		}
	}
	r.SSH.Sudo = r.SSH.User != "root"
	if f.SSH != nil && f.SSH.Sudo != nil {
		r.SSH.Sudo = *f.SSH.Sudo
	}
	if n := f.Nix; n != nil {
		switch {
		case n.Flake == nil && n.File != nil && n.Attribute != nil && *n.File != "" && *n.Attribute != "":
			r.Nix = &schema.Nix{File: *n.File, Attribute: *n.Attribute, Args: n.Args}
		case n.Flake != nil && n.File == nil && n.Attribute == nil && n.Args == nil && fastFlake.MatchString(*n.Flake):
			r.Nix = &schema.Nix{Flake: *n.Flake}
		default:
			return nil, false
		}
	}
	if g := f.Guix; g != nil {
		if g.Config == nil || *g.Config == "" {
			return nil, false
		}
		r.Guix = &rawGuix{Config: *g.Config, LoadPath: g.LoadPath}
		if !optional(g.Channels, &r.Guix.Channels) || !optional(g.System, &r.Guix.System) {
			return nil, false
		}
		if g.Authorize != nil {
			r.Guix.Authorize = *g.Authorize
		}
	}
	return r, true
}

// optional copies an optional non-empty string (string & !="" in the
// schema) to dst; it reports false for an empty one.
func optional(v *string, dst *string) bool {
	if v == nil {
		return true
	}
	if *v == "" {
		return false
	}
	*dst = *v
	return true
}
