package guix

import (
	"strings"
	"testing"
)

func TestParseState(t *testing.T) {
	s, err := parseState("\n\n\n")
	if err != nil || s.Current != "" || s.Profile != "" || s.Generation != 0 {
		t.Errorf("fresh host: %+v, %v", s, err)
	}
	s, err = parseState("/gnu/store/a-system\n/gnu/store/b-system\nsystem-12-link\n")
	if err != nil || s.Current != "/gnu/store/a-system" || s.Profile != "/gnu/store/b-system" || s.Generation != 12 {
		t.Errorf("deployed host: %+v, %v", s, err)
	}
	if _, err := parseState("oops"); err == nil || !strings.Contains(err.Error(), "unexpected output") {
		t.Errorf("garbage: %v", err)
	}
}
