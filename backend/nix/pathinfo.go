package nix

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// pathInfoArgv prints, as JSON, what the store records of every path in
// the closure of paths: NAR hash and size, deriver, references. One
// process gives what nix-store --query --requisites and --dump-db give in
// two.
func (o Options) pathInfoArgv(paths []string) []string {
	argv := append([]string{"nix", "--extra-experimental-features", "nix-command"}, o.options()...)
	return append(append(argv, "path-info", "--json", "--recursive"), paths...)
}

// pathInfoJSON is one path in nix path-info --json.
type pathInfoJSON struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    int64    `json:"narSize"`
	Deriver    string   `json:"deriver"`
	References []string `json:"references"`
}

// parsePathInfo reads nix path-info --json: a list of records (Nix before
// 2.19) or an object from path to record (later). Hashes come out as
// "sha256:" and base16, whatever form nix printed.
func parsePathInfo(out string) (map[string]pathInfo, error) {
	var list []pathInfoJSON
	if t := strings.TrimSpace(out); strings.HasPrefix(t, "{") {
		var byPath map[string]*pathInfoJSON
		if err := json.Unmarshal([]byte(t), &byPath); err != nil {
			return nil, fmt.Errorf("parse nix path-info: %w", err)
		}
		for p, r := range byPath {
			if r == nil {
				return nil, fmt.Errorf("parse nix path-info: %s is not valid", p)
			}
			r.Path = p
			list = append(list, *r)
		}
	} else if err := json.Unmarshal([]byte(t), &list); err != nil {
		return nil, fmt.Errorf("parse nix path-info: %w", err)
	}
	info := make(map[string]pathInfo, len(list))
	for _, r := range list {
		if r.Path == "" || r.NarSize <= 0 {
			return nil, fmt.Errorf("parse nix path-info: incomplete record for %q", r.Path)
		}
		h, err := sha256Base16(r.NarHash)
		if err != nil {
			return nil, fmt.Errorf("parse nix path-info: %s: %w", r.Path, err)
		}
		info[r.Path] = pathInfo{narHash: "sha256:" + h, narSize: r.NarSize, deriver: r.Deriver, references: r.References}
	}
	return info, nil
}

// sha256Base16 reads a SHA-256 hash as nix prints it (SRI "sha256-BASE64",
// or "sha256:" with base32 or base16) and returns it in base16.
func sha256Base16(s string) (string, error) {
	var raw []byte
	var err error
	switch {
	case strings.HasPrefix(s, "sha256-"):
		raw, err = base64.StdEncoding.DecodeString(s[len("sha256-"):])
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+64:
		raw, err = hex.DecodeString(s[len("sha256:"):])
	case strings.HasPrefix(s, "sha256:") && len(s) == len("sha256:")+52:
		raw, err = nixBase32Decode(s[len("sha256:"):], 32)
	default:
		return "", fmt.Errorf("unknown hash form %q", s)
	}
	if err == nil && len(raw) != 32 {
		err = errors.New("not 32 bytes")
	}
	if err != nil {
		return "", fmt.Errorf("hash %q: %w", s, err)
	}
	return hex.EncodeToString(raw), nil
}

const nixBase32Chars = "0123456789abcdfghijklmnpqrsvwxyz"

// nixBase32Decode reads nix's base32, whose last character holds the
// lowest bits of the first byte.
func nixBase32Decode(s string, size int) ([]byte, error) {
	out := make([]byte, size)
	for n := 0; n < len(s); n++ {
		digit := strings.IndexByte(nixBase32Chars, s[len(s)-n-1])
		if digit < 0 {
			return nil, fmt.Errorf("bad base32 character %q", s[len(s)-n-1])
		}
		b := n * 5
		i, j := b/8, uint(b%8)
		out[i] |= byte(digit << j)
		if carry := byte(digit >> (8 - j)); i < size-1 {
			out[i+1] |= carry
		} else if carry != 0 {
			return nil, errors.New("base32 overflows")
		}
	}
	return out, nil
}

// dependencyOrder lists every path of info, each after the paths it
// references, as nix-store --query --requisites does.
func dependencyOrder(info map[string]pathInfo) []string {
	paths := make([]string, 0, len(info))
	for p := range info {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	order := make([]string, 0, len(paths))
	done := make(map[string]bool, len(paths))
	var visit func(p string)
	visit = func(p string) {
		if done[p] {
			return
		}
		done[p] = true
		refs := append([]string(nil), info[p].references...)
		sort.Strings(refs)
		for _, r := range refs {
			if _, ok := info[r]; ok && r != p {
				visit(r)
			}
		}
		order = append(order, p)
	}
	for _, p := range paths {
		visit(p)
	}
	return order
}
