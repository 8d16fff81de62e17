package sandbox

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int64
		want    []string
		wantErr string
	}{
		{name: "lines in order", in: "{\"a\":1}\n{\"b\":2}\n", max: 64, want: []string{`{"a":1}`, `{"b":2}`}},
		{name: "a line longer than the reader's buffer", in: strings.Repeat("x", 100) + "\n", max: 200, want: []string{strings.Repeat("x", 100)}},
		{name: "over the cap", in: strings.Repeat("x", 100) + "\n", max: 50, wantErr: "over 50 bytes"},
		{name: "unterminated last line is not an answer", in: "{\"a\":1}", max: 64, wantErr: "EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rd := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
			var got []string
			var err error
			for {
				var line []byte
				if line, err = readLine(rd, tc.max); err != nil {
					break
				}
				got = append(got, string(line))
			}
			if tc.wantErr != "" {
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("lines %q, want %q", got, tc.want)
			}
		})
	}
}
