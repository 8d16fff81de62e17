package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestLoader(t *testing.T) {
	env := map[string]string{
		"N": "7", "BIG": "9000000000", "F": "0.5", "D": "3s", "B": "true", "S": "hello", "SECRET": "x",
		"BAD_N": "seven", "BAD_D": "soon", "BAD_F": "half", "BAD_B": "perhaps", "EMPTY": "",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	l := New("t", lookup)
	l.SetOutput(io.Discard)
	var (
		n, dflt, flagged int
		big              int64
		f                float64
		d                time.Duration
		b                bool
		s, secret        string
		empty            string
	)
	l.Int(&n, "n", "N", 1, "n")
	l.Int(&dflt, "dflt", "UNSET", 42, "unset variable: default")
	l.Int(&flagged, "flagged", "N", 1, "the flag wins")
	l.Int64(&big, "big", "BIG", 0, "big")
	l.Float(&f, "f", "F", 0, "f")
	l.Duration(&d, "d", "D", 0, "d")
	l.Bool(&b, "b", "B", false, "b")
	l.String(&s, "s", "S", "", "s")
	l.String(&empty, "empty", "EMPTY", "fallback", "an empty variable is unset")
	l.Secret(&secret, "SECRET")
	rest, err := l.Parse([]string{"-flagged", "9", "arg"})
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 || dflt != 42 || flagged != 9 || big != 9000000000 || f != 0.5 || d != 3*time.Second || !b || s != "hello" ||
		secret != "x" || empty != "fallback" || len(rest) != 1 || rest[0] != "arg" {
		t.Errorf("n=%d dflt=%d flagged=%d big=%d f=%g d=%s b=%v s=%q secret=%q empty=%q rest=%v",
			n, dflt, flagged, big, f, d, b, s, secret, empty, rest)
	}
	if fs := l.FlagSet().Lookup("n"); fs == nil || !strings.Contains(fs.Usage, "(N)") {
		t.Errorf("usage does not name the variable: %+v", fs)
	}

	bad := New("t", lookup)
	bad.SetOutput(io.Discard)
	bad.Int(&n, "n", "BAD_N", 1, "")
	bad.Duration(&d, "d", "BAD_D", 0, "")
	bad.Float(&f, "f", "BAD_F", 0, "")
	bad.Bool(&b, "b", "BAD_B", false, "")
	_, err = bad.Parse(nil)
	for _, name := range []string{"BAD_N", "BAD_D", "BAD_F", "BAD_B"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}

	checked := New("t", lookup)
	if _, err := checked.Parse(nil); err != nil {
		t.Fatal(err)
	}
	checked.Check(true, "fine")
	checked.Check(false, "LIMIT: must be positive")
	if err := checked.Err(); err == nil || err.Error() != "LIMIT: must be positive" {
		t.Errorf("check error %v", err)
	}
}
