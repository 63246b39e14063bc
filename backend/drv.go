package backend

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// What Nix and Guix share on disk: derivation files in ATerm form, and
// profile generations named system-N-link.

// DrvOutputs reads the outputs of a derivation file,
// Derive([("NAME","PATH","HASHALGO","HASH"),...],...), as name to path.
func DrvOutputs(aterm string) (map[string]string, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(aterm), "Derive([")
	if !ok {
		return nil, errors.New("not a derivation (no Derive([)")
	}
	outs := map[string]string{}
	for !strings.HasPrefix(s, "]") {
		if len(outs) > 0 {
			if s, ok = strings.CutPrefix(s, ","); !ok {
				return nil, fmt.Errorf("malformed derivation: want ',' or ']' at %.20q", s)
			}
		}
		if s, ok = strings.CutPrefix(s, "("); !ok {
			return nil, fmt.Errorf("malformed derivation: want '(' at %.20q", s)
		}
		var fields [4]string
		for i := range fields {
			if i > 0 {
				if s, ok = strings.CutPrefix(s, ","); !ok {
					return nil, fmt.Errorf("malformed derivation: want ',' at %.20q", s)
				}
			}
			v, rest, err := atermString(s)
			if err != nil {
				return nil, err
			}
			fields[i], s = v, rest
		}
		if s, ok = strings.CutPrefix(s, ")"); !ok {
			return nil, fmt.Errorf("malformed derivation: want ')' at %.20q", s)
		}
		outs[fields[0]] = fields[1]
	}
	if len(outs) == 0 {
		return nil, errors.New("derivation has no outputs")
	}
	return outs, nil
}

// atermString reads a quoted ATerm string, with nix's escapes (\" \\ \n
// \r \t), at the start of s and returns it and the rest of s.
func atermString(s string) (string, string, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("malformed derivation: want a string at %.20q", s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i++; i == len(s) {
				return "", "", errors.New("malformed derivation: unterminated string")
			}
			switch c = s[i]; c {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			}
		}
		b.WriteByte(c)
	}
	return "", "", errors.New("malformed derivation: unterminated string")
}

// Generation parses a profile generation link, "system-12-link" or a path
// ending in it, into 12; anything else is 0.
func Generation(link string) int {
	num, ok := strings.CutPrefix(filepath.Base(strings.TrimSpace(link)), "system-")
	if !ok {
		return 0
	}
	if num, ok = strings.CutSuffix(num, "-link"); !ok {
		return 0
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0
	}
	return n
}
