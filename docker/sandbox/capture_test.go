package sandbox

import (
	"strings"
	"testing"
)

func TestCapBuffer(t *testing.T) {
	tests := []struct {
		name      string
		max       int64
		writes    []string
		want      string
		truncated bool
	}{
		{"under", 10, []string{"abc", "de"}, "abcde", false},
		{"exactly", 5, []string{"abc", "de"}, "abcde", false},
		{"over in one write", 4, []string{"abcdef"}, "abcd", true},
		{"over across writes", 4, []string{"abc", "def", "ghi"}, "abcd", true},
		{"zero cap", 0, []string{"a"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &capBuffer{max: tc.max}
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v: writes must always succeed in full", n, err)
				}
			}
			if string(b.buf) != tc.want || b.truncated != tc.truncated {
				t.Fatalf("got %q truncated=%v, want %q truncated=%v", b.buf, b.truncated, tc.want, tc.truncated)
			}
		})
	}
}

func TestHeadTail(t *testing.T) {
	tests := []struct {
		name   string
		max    int64
		writes []string
		want   string
	}{
		{"fits", 20, []string{"hello ", "world"}, "hello world"},
		{"fills head then tail exactly", 8, []string{"abcdefgh"}, "abcdefgh"},
		{"keeps start and end", 8, []string{"abcd", "0123456789", "wxyz"}, "abcd\n[… output truncated …]\nwxyz"},
		{"single large write", 6, []string{strings.Repeat("a", 3) + strings.Repeat("-", 100) + "xyz"}, "aaa\n[… output truncated …]\nxyz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHeadTail(tc.max)
			for _, w := range tc.writes {
				if n, _ := h.Write([]byte(w)); n != len(w) {
					t.Fatalf("short write %d", n)
				}
			}
			if got := h.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
