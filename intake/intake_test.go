package intake

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

// TestCheck: the checks made before anything is stored or looked up name
// the field at fault.
func TestCheck(t *testing.T) {
	files := map[string][]byte{"mapper.py": []byte("x")}
	tests := []struct {
		name    string
		sub     Submission
		field   string
		problem Problem
	}{
		{name: "no assignment", sub: Submission{Student: "ada", Files: files}, field: "assignment", problem: Missing},
		{name: "no student", sub: Submission{Assignment: "wc", Files: files}, field: "student", problem: Missing},
		{name: "student with a space", sub: Submission{Assignment: "wc", Student: "a b", Files: files}, field: "student", problem: Invalid},
		{name: "bad id", sub: Submission{ID: "../x", Assignment: "wc", Student: "ada", Files: files}, field: "id", problem: Invalid},
		{name: "no files", sub: Submission{Assignment: "wc", Student: "ada"}, field: "files", problem: Missing},
		{name: "escaping file", sub: Submission{Assignment: "wc", Student: "ada", Files: map[string][]byte{"../etc/passwd": nil}}, field: "files", problem: Unsafe},
		{name: "absolute file", sub: Submission{Assignment: "wc", Student: "ada", Files: map[string][]byte{"/etc/passwd": nil}}, field: "files", problem: Unsafe},
		{name: "option-like student", sub: Submission{Assignment: "wc", Student: "-rf", Files: files}, field: "student", problem: Invalid},
		{name: "student with a direction override", sub: Submission{Assignment: "wc", Student: "ada‮", Files: files}, field: "student", problem: Invalid},
		{name: "option-like id", sub: Submission{ID: "-x", Assignment: "wc", Student: "ada", Files: files}, field: "id", problem: Invalid},
		{name: "option-like file", sub: Submission{Assignment: "wc", Student: "ada", Files: map[string][]byte{"-proc:only.java": nil}}, field: "files", problem: Invalid},
		{name: "argfile-like file", sub: Submission{Assignment: "wc", Student: "ada", Files: map[string][]byte{"src/@args": nil}}, field: "files", problem: Invalid},
		{name: "file and directory", sub: Submission{Assignment: "wc", Student: "ada", Files: map[string][]byte{"x": nil, "x/y": nil}}, field: "files", problem: Invalid},
		{name: "control character in a file name", sub: Submission{Assignment: "wc", Student: "ada", Files: map[string][]byte{"map\x1bper.py": nil}}, field: "files", problem: Invalid},
	}
	s := New(nil, nil, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Check(context.Background(), &tt.sub)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.Problem != tt.problem || fe.Msg == "" {
				t.Fatalf("error %v, want a %s problem with field %s", err, tt.problem, tt.field)
			}
		})
	}
}

func TestDecodeAssignment(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		urlName   string
		want      string // the decoded name; "" when an error is wanted
		field     string
		problem   Problem
		supersede bool
	}{
		{name: "file names itself", raw: `{"name":"wc","points":10}`, want: "wc"},
		{name: "URL names it", raw: `{"points":10}`, urlName: "wc", want: "wc"},
		{name: "both name it", raw: `{"name":"other"}`, urlName: "wc", field: "name", problem: Invalid},
		{name: "neither names it", raw: `{}`, field: "name", problem: Missing},
		{name: "malformed", raw: `{"points":`, urlName: "wc", field: "config", problem: Malformed},
		{name: "trailing data", raw: `{} {}`, urlName: "wc", field: "config", problem: Invalid},
		{name: "wrong type", raw: `{"points":"many"}`, urlName: "wc", field: "points", problem: Invalid},
		{name: "unknown field", raw: `{"pionts":3}`, urlName: "wc", field: "pionts", problem: Invalid},
		{name: "files are not configuration", raw: `{"input_files":["x"]}`, urlName: "wc", field: "input_files", problem: Invalid},
		{name: "supersede on", raw: `{"points":10,"supersede":true}`, urlName: "wc", want: "wc", supersede: true},
		{name: "supersede is a boolean", raw: `{"supersede":"yes"}`, urlName: "wc", field: "supersede", problem: Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := DecodeAssignment([]byte(tt.raw), tt.urlName)
			if tt.want != "" {
				if err != nil || a.Name != tt.want || a.Supersede != tt.supersede {
					t.Fatalf("decoded %+v, %v; want name %s", a, err, tt.want)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.Problem != tt.problem {
				t.Fatalf("error %v, want a %s problem with field %s", err, tt.problem, tt.field)
			}
		})
	}
}

func TestCheckAssignment(t *testing.T) {
	tests := []struct {
		name         string
		a            contract.Assignment
		allowPrivate bool
		field        string // "" for valid
	}{
		{name: "defaults are valid", a: contract.Assignment{Name: "wc"}},
		{name: "bad name", a: contract.Assignment{Name: "Bad.Name"}, field: "name"},
		{name: "time limit", a: contract.Assignment{Name: "wc", TimeLimitSeconds: 5000}, field: "time_limit_seconds"},
		{name: "memory", a: contract.Assignment{Name: "wc", MemoryMB: 1}, field: "memory_mb"},
		{name: "compare", a: contract.Assignment{Name: "wc", Compare: "fuzzy"}, field: "compare"},
		{name: "runtime", a: contract.Assignment{Name: "wc", Runtimes: []string{"cobol"}}, field: "runtimes"},
		{name: "mapper path", a: contract.Assignment{Name: "wc", Mapper: "../m.py"}, field: "mapper"},
		{name: "webhook scheme", a: contract.Assignment{Name: "wc", WebhookURL: "ftp://x/y"}, field: "webhook_url"},
		{name: "webhook relative", a: contract.Assignment{Name: "wc", WebhookURL: "/hook"}, field: "webhook_url"},
		{name: "webhook https", a: contract.Assignment{Name: "wc", WebhookURL: "https://hooks.example/x"}},
		{name: "webhook loopback", a: contract.Assignment{Name: "wc", WebhookURL: "http://127.0.0.1:8080/x"}, field: "webhook_url"},
		{name: "webhook localhost", a: contract.Assignment{Name: "wc", WebhookURL: "http://localhost/x"}, field: "webhook_url"},
		{name: "webhook metadata", a: contract.Assignment{Name: "wc", WebhookURL: "http://169.254.169.254/latest"}, field: "webhook_url"},
		{name: "webhook private", a: contract.Assignment{Name: "wc", WebhookURL: "https://10.0.0.7/x"}, field: "webhook_url"},
		{name: "webhook mapped loopback", a: contract.Assignment{Name: "wc", WebhookURL: "http://[::ffff:127.0.0.1]/x"}, field: "webhook_url"},
		{name: "webhook credentials", a: contract.Assignment{Name: "wc", WebhookURL: "https://u:p@hooks.example/x"}, field: "webhook_url"},
		{name: "webhook private allowed", a: contract.Assignment{Name: "wc", WebhookURL: "http://10.0.0.7/x"}, allowPrivate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAssignment(&tt.a, tt.allowPrivate)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.Problem != Invalid {
				t.Fatalf("error %v, want field %s invalid", err, tt.field)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	a, b := NewID(testNow), NewID(testNow)
	if a == b || !contract.ValidID(a) || len(a) != len("20260102t030405-")+16 {
		t.Errorf("ids %q, %q", a, b)
	}
}

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
