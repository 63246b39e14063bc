package nix

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// drvOutput returns the path of the "out" output that the derivation file
// drv names, read from the file itself: the instantiation wrote it, and
// reading it costs no nix process. It fails for a derivation whose output
// path is not fixed yet (content-addressed), and when the file is not where
// its store path says (another store root); the caller then asks nix.
func drvOutput(drv string) (string, error) {
	data, err := os.ReadFile(drv)
	if err != nil {
		return "", err
	}
	outs, err := parseDrvOutputs(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", drv, err)
	}
	out := outs["out"]
	if out == "" {
		return "", fmt.Errorf("%s: no fixed path for output out", drv)
	}
	return out, nil
}

// parseDrvOutputs reads the outputs of a derivation in nix's ATerm form,
// Derive([("NAME","PATH","HASHALGO","HASH"),...],...), as name to path.
func parseDrvOutputs(data []byte) (map[string]string, error) {
	rest, ok := bytes.CutPrefix(data, []byte("Derive(["))
	if !ok {
		return nil, errors.New("not a derivation (no Derive([)")
	}
	p := aterm{b: rest}
	outs := map[string]string{}
	for {
		if p.eat(']') {
			return outs, nil
		}
		if len(outs) > 0 && !p.eat(',') {
			return nil, p.fail("',' or ']'")
		}
		if !p.eat('(') {
			return nil, p.fail("'('")
		}
		var fields [4]string
		for i := range fields {
			if i > 0 && !p.eat(',') {
				return nil, p.fail("','")
			}
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			fields[i] = s
		}
		if !p.eat(')') {
			return nil, p.fail("')'")
		}
		outs[fields[0]] = fields[1]
	}
}

// aterm reads the few ATerm forms a derivation's outputs use.
type aterm struct {
	b   []byte
	off int
}

func (p *aterm) eat(c byte) bool {
	if p.off < len(p.b) && p.b[p.off] == c {
		p.off++
		return true
	}
	return false
}

func (p *aterm) fail(want string) error {
	return fmt.Errorf("malformed derivation: want %s at byte %d of the outputs", want, p.off)
}

// str reads a quoted string with nix's escapes (\" \\ \n \r \t).
func (p *aterm) str() (string, error) {
	if !p.eat('"') {
		return "", p.fail("a string")
	}
	var s strings.Builder
	for p.off < len(p.b) {
		c := p.b[p.off]
		p.off++
		switch c {
		case '"':
			return s.String(), nil
		case '\\':
			if p.off >= len(p.b) {
				return "", p.fail("an escaped character")
			}
			e := p.b[p.off]
			p.off++
			switch e {
			case 'n':
				e = '\n'
			case 'r':
				e = '\r'
			case 't':
				e = '\t'
			}
			s.WriteByte(e)
		default:
			s.WriteByte(c)
		}
	}
	return "", p.fail("the end of a string")
}
