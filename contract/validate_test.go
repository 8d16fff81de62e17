package contract

import (
	"strings"
	"testing"
)

func TestCheckFileNames(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		wantErr string
	}{
		{"plain", []string{"mapper.py", "reducer.py", "lib/util.py"}, ""},
		{"file and directory", []string{"x", "x/y"}, "collide"},
		{"deep collision", []string{"a/b", "a/b/c/d"}, "collide"},
		{"option-like", []string{"-proc:only.java"}, "'-'"},
		{"argfile-like", []string{"src/@opts"}, "'@'"},
		{"control character", []string{"map\nper.py"}, "control"},
		{"C1 control", []string{"map\u0085per.py"}, "control"},
		{"bidi override", []string{"mapper\u202ey.py"}, "override"},
		{"isolate", []string{"mapper\u2066.py"}, "override"},
		{"zero width", []string{"map\u200bper.py"}, "override"},
		{"escape", []string{"../mapper.py"}, "relative path"},
		{"absolute", []string{"/etc/passwd"}, "relative path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckFileNames(tc.files)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckFileNames(%q) = %v", tc.files, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckFileNames(%q) = %v, want an error mentioning %q", tc.files, err, tc.wantErr)
			}
		})
	}
}

func TestValidNames(t *testing.T) {
	tests := []struct {
		check func(string) bool
		kind  string
		in    string
		want  bool
	}{
		{ValidName, "assignment", "wordcount", true},
		{ValidName, "assignment", "hw-2_b", true},
		{ValidName, "assignment", "-rf", false},
		{ValidName, "assignment", "_x", false},
		{ValidName, "assignment", "Upper", false},
		{ValidName, "assignment", strings.Repeat("a", 65), false},
		{ValidID, "id", "20261202t120000-abc", true},
		{ValidID, "id", "sub.r1", true},
		{ValidID, "id", "-x", false},
		{ValidID, "id", ".hidden", false},
		{ValidID, "id", "a/b", false},
		{ValidStudent, "student", "alice@example.edu", true},
		{ValidStudent, "student", "zoë", true},
		{ValidStudent, "student", "-alice", false},
		{ValidStudent, "student", "@alice", false},
		{ValidStudent, "student", "ali ce", false},
		{ValidStudent, "student", "ali\tce", false},
		{ValidStudent, "student", "alice\u202e", false},
		{ValidStudent, "student", "ali\u200bce", false},
		{ValidStudent, "student", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.in, func(t *testing.T) {
			if got := tc.check(tc.in); got != tc.want {
				t.Fatalf("valid %s %q = %v, want %v", tc.kind, tc.in, got, tc.want)
			}
		})
	}
}
