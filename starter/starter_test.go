package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
)

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"mapper.py": "m", "lib/tok.py": "t"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := readDir(dir)
	if err != nil || len(files) != 2 || string(files["lib/tok.py"]) != "t" || string(files["mapper.py"]) != "m" {
		t.Fatalf("readDir = %v, %v", files, err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := readDir(dir); err == nil || !strings.Contains(err.Error(), "symlinks") {
		t.Errorf("a symlink was read: %v", err)
	}
	if _, err := readDir(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing directory was read")
	}
}

func TestPrintTable(t *testing.T) {
	score := 100.0
	rows := []*row{
		{name: "python-correct", res: contract.Result{Grade: contract.Grade{Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100}},
			want: expectation{Outcome: contract.OutcomePassed, Score: &score}, ok: true},
		{name: "python-broken", err: errors.New("grading failed\nwith detail"), want: expectation{Outcome: contract.OutcomeWrongAnswer}},
	}
	var out bytes.Buffer
	err := printTable(&out, rows)
	if err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("error %v, want one mismatch of 2", err)
	}
	text := out.String()
	for _, want := range []string{"SUBMISSION", "python-correct", "passed ok", "error: grading failed", "MISMATCH"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "with detail") {
		t.Errorf("table shows more than an error's first line:\n%s", text)
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"TEMPORAL_ADDRESS": "t:1", "MONGODB_URI": "mongodb://m", "GRADEFLOW_STARTER_TIMEOUT": "30s"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, args, err := loadConfig([]string{"-db", "d", "status", "x"}, lookup)
	if err != nil || cfg.Temporal.Address != "t:1" || cfg.Mongo.URI != "mongodb://m" || cfg.Mongo.DB != "d" ||
		cfg.Timeout != 30*time.Second || strings.Join(args, " ") != "status x" {
		t.Errorf("config %+v args %v err %v", cfg, args, err)
	}
	var ue usageError
	if _, _, err := loadConfig(nil, lookup); !errors.As(err, &ue) {
		t.Errorf("no command: %v, want a usage error", err)
	}
	env["GRADEFLOW_STARTER_TIMEOUT"] = "forever"
	if _, _, err := loadConfig([]string{"status", "x"}, lookup); err == nil || !strings.Contains(err.Error(), "GRADEFLOW_STARTER_TIMEOUT") {
		t.Errorf("bad timeout: %v, want an error naming the variable", err)
	}
}
