package activities

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
)

func TestDetectRuntime(t *testing.T) {
	cfg := contract.Assignment{Name: "wc"}
	cfg.Defaults()
	streamingOnly := cfg
	streamingOnly.Runtimes = []string{contract.RuntimeStreaming}
	tests := []struct {
		name    string
		cfg     contract.Assignment
		files   []string
		want    string
		wantErr string
	}{
		{"streaming", cfg, []string{"mapper.py", "reducer.py"}, contract.RuntimeStreaming, ""},
		{"streaming with helpers", cfg, []string{"mapper.py", "reducer.py", "lib/tokens.py"}, contract.RuntimeStreaming, ""},
		{"java sources", cfg, []string{"WordCount.java", "util/Tok.java"}, contract.RuntimeJar, ""},
		{"a jar", cfg, []string{"job.jar"}, contract.RuntimeJar, ""},
		{"missing reducer", cfg, []string{"mapper.py"}, "", "missing reducer.py"},
		{"nothing runnable", cfg, []string{"README.txt"}, "", "no runnable files"},
		{"sources and jar", cfg, []string{"A.java", "a.jar"}, "", "not both"},
		{"two jars", cfg, []string{"a.jar", "b.jar"}, "", "one jar"},
		{"runtime not accepted", streamingOnly, []string{"WordCount.java"}, "", "does not accept jar"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DetectRuntime(tc.cfg, tc.files)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseBundle(t *testing.T) {
	ok := tarOf(t, map[string]string{
		"./result.json":       `{"ok":true,"kind":"streaming","exit_code":0,"errors":[]}`,
		"./output/part-00000": "a\t1\n",
		"./output/part-00001": "b\t2\n",
	})
	b, err := parseBundle(ok, 10, 1<<20)
	if err != nil || !b.result.OK || len(b.files) != 2 || string(b.files["output/part-00001"]) != "b\t2\n" {
		t.Fatalf("parseBundle = %+v, %v", b, err)
	}
	if _, err := parseBundle(tarOf(t, map[string]string{"output/part-00000": "x"}), 10, 1<<20); !errors.Is(err, errNoResult) {
		t.Fatalf("no result.json: err %v, want errNoResult", err)
	}
	if _, err := parseBundle(ok[:100], 10, 1<<20); err == nil {
		t.Fatal("tar cut inside a header parsed without error")
	}
	if _, err := parseBundle(tarOf(t, map[string]string{"result.json": "{"}), 10, 1<<20); err == nil {
		t.Fatal("bad result.json parsed without error")
	}
}

func TestSanityOutcomeAndFeedback(t *testing.T) {
	tests := []struct {
		name    string
		runtime string
		res     runResult
		want    contract.Outcome
		wantFB  string
	}{
		{"syntax", contract.RuntimeStreaming, runResult{Errors: []checkError{{File: "mapper.py", Line: 3, Col: 5, Message: "SyntaxError: invalid syntax", Category: "syntax"}}},
			contract.OutcomeSyntaxError, "mapper.py:3:5: SyntaxError: invalid syntax"},
		{"forbidden", contract.RuntimeStreaming, runResult{Errors: []checkError{{File: "mapper.py", Line: 1, Message: "forbidden module 'subprocess' imported", Category: "forbidden_import"}}},
			contract.OutcomeForbiddenImport, "mapper.py:1: forbidden module 'subprocess'"},
		{"syntax wins over forbidden", contract.RuntimeStreaming, runResult{Errors: []checkError{
			{File: "a.py", Category: "forbidden_import", Message: "x"}, {File: "b.py", Category: "syntax", Message: "y"}}},
			contract.OutcomeSyntaxError, "b.py: y"},
		{"java", contract.RuntimeJar, runResult{Message: "WordCount.java:5: error: ';' expected"}, contract.OutcomeCompileError, "';' expected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sanityOutcome(tc.runtime, &tc.res); got != tc.want {
				t.Errorf("outcome %s, want %s", got, tc.want)
			}
			if fb := sanityFeedback(tc.runtime, &tc.res); !strings.Contains(fb, tc.wantFB) {
				t.Errorf("feedback %q lacks %q", fb, tc.wantFB)
			}
		})
	}
}

func TestJudgeRun(t *testing.T) {
	tests := []struct {
		name   string
		res    sandbox.Result
		want   contract.Outcome
		failed bool
	}{
		{"clean", sandbox.Result{ExitCode: 0}, "", false},
		{"timed out", sandbox.Result{TimedOut: true, ExitCode: 137}, contract.OutcomeTimeLimit, true},
		{"oom", sandbox.Result{OOMKilled: true, ExitCode: 137}, contract.OutcomeMemoryLimit, true},
		{"timeout wins over oom", sandbox.Result{OOMKilled: true, TimedOut: true}, contract.OutcomeTimeLimit, true},
		{"output flood", sandbox.Result{StdoutTruncated: true}, contract.OutcomeOutputLimit, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, failed := judgeRun(tc.res, 20*time.Second, 1024, 1<<20)
			if failed != tc.failed || v.Outcome != tc.want {
				t.Fatalf("judgeRun = %+v, %v; want %s, %v", v, failed, tc.want, tc.failed)
			}
		})
	}
}

func TestParseBundleLimits(t *testing.T) {
	many := map[string]string{"result.json": `{"ok":true}`}
	for i := 0; i < 20; i++ {
		many[fmt.Sprintf("output/part-%05d", i)] = "x\n"
	}
	if _, err := parseBundle(tarOf(t, many), 5, 1<<20); !errors.Is(err, sandbox.ErrUnsafeTar) {
		t.Fatalf("21 entries with a cap of 5 files: err %v, want ErrUnsafeTar", err)
	}
	big := tarOf(t, map[string]string{"result.json": `{"ok":true}`, "output/part-00000": strings.Repeat("x", 4096)})
	if _, err := parseBundle(big, 5, 1024); !errors.Is(err, sandbox.ErrUnsafeTar) {
		t.Fatalf("4 KiB file with a 1 KiB cap: err %v, want ErrUnsafeTar", err)
	}
}
