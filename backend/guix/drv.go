package guix

import (
	"errors"
	"fmt"
	"strings"
)

// drvOutputs reads the outputs of a derivation file's ATerm,
// Derive([("out","/gnu/store/…-system","",""),…],…), as name → path.
func drvOutputs(aterm string) (map[string]string, error) {
	s := strings.TrimSpace(aterm)
	if !strings.HasPrefix(s, "Derive([") {
		return nil, errors.New("not a derivation")
	}
	s = s[len("Derive(["):]
	outs := map[string]string{}
	for {
		if strings.HasPrefix(s, "]") {
			break
		}
		if !strings.HasPrefix(s, "(") {
			return nil, errors.New("malformed outputs")
		}
		s = s[1:]
		var fields []string
		for len(fields) < 4 {
			v, rest, err := atermString(s)
			if err != nil {
				return nil, err
			}
			fields = append(fields, v)
			s = rest
			if len(fields) < 4 {
				if !strings.HasPrefix(s, ",") {
					return nil, errors.New("malformed output")
				}
				s = s[1:]
			}
		}
		if !strings.HasPrefix(s, ")") {
			return nil, errors.New("malformed output")
		}
		outs[fields[0]] = fields[1]
		s = strings.TrimPrefix(s[1:], ",")
	}
	if len(outs) == 0 {
		return nil, errors.New("derivation has no outputs")
	}
	return outs, nil
}

// atermString reads a quoted ATerm string at the start of s.
func atermString(s string) (string, string, error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("expected a string at %.20q", s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			i++
			if i == len(s) {
				break
			}
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated string")
}
