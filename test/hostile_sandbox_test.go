//go:build stack

package test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
)

// sandboxCase is one hostile submission against the sandbox's trust
// boundary (issue 8): its files, the outcomes it may honestly end in, what
// the feedback must and must not say, and how often each step may run.
type sandboxCase struct {
	name       string
	files      map[string][]byte // nil: read test/testdata/hostile-sandbox/<name>
	want       []contract.Outcome
	about      string // the feedback mentions this
	noRetry    string // this activity ran exactly once ("" = execute)
	wantScore0 bool
	// refused: the intake refuses these files at upload (naming the field);
	// the case then stores them past it, as a hand-made submission would
	// be, to show that the sanity step refuses them again.
	refused bool
}

// TestHostileSandbox grades submissions that attack the sandbox and the
// runner at once: forbidden-module bypasses (checked while the code runs),
// forged results, planted symlinks, checker crashes, name tricks, forbidden
// Java APIs, feedback leaks. Each must end in its scored student outcome
// without an infrastructure retry, leave no container behind, and leave the
// execute worker's memory flat.
func TestHostileSandbox(t *testing.T) {
	correctJava := readFiles(t, filepath.Join(stk.root, exampleDir, "submissions/java-correct"))
	correctPy := readFiles(t, filepath.Join(stk.root, exampleDir, "submissions/python-correct"))
	with := func(base map[string][]byte, extra map[string]string) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = []byte(v)
		}
		return out
	}
	runtimeOrForbidden := []contract.Outcome{contract.OutcomeRuntimeError, contract.OutcomeForbiddenImport}
	cases := []sandboxCase{
		// Forbidden modules, past the static check: refused while running.
		{name: "py-builtins-import", want: runtimeOrForbidden, about: "forbidden module 'subprocess'", wantScore0: true},
		{name: "py-importlib-alias", want: runtimeOrForbidden, about: "forbidden module 'socket'", wantScore0: true},
		{name: "py-exec-encoded", want: runtimeOrForbidden, about: "forbidden module 'subprocess'", wantScore0: true},
		{name: "py-c-core", want: runtimeOrForbidden, about: "forbidden module '_posixsubprocess'", wantScore0: true},
		{name: "py-posix-spawn", want: runtimeOrForbidden, about: "os.posix_spawn is not allowed", wantScore0: true},
		{name: "py-pyc", want: []contract.Outcome{contract.OutcomeForbiddenImport}, about: "helper.pyc", noRetry: "sanity", wantScore0: true},
		{name: "py-zip", want: []contract.Outcome{contract.OutcomeForbiddenImport}, about: "lib.zip", noRetry: "sanity", wantScore0: true},
		// The import policy defeated from inside: the kernel still says no.
		{name: "py-kernel", want: []contract.Outcome{contract.OutcomePassed}},
		// Forged results: a mapper that emits nothing never passes.
		// (Its writes to inherited fds can only reach its own output pipe, and
		// break the reducer: a runtime error is as honest as a wrong answer.)
		{name: "forge-result", want: []contract.Outcome{contract.OutcomeWrongAnswer, contract.OutcomeRuntimeError}, wantScore0: true},
		{name: "plant-symlink", want: []contract.Outcome{contract.OutcomePassed}},
		// The student's failure is the student's outcome, first time.
		{name: "checker-crash", want: []contract.Outcome{contract.OutcomeSyntaxError}, about: "too deeply nested", noRetry: "sanity", wantScore0: true},
		{name: "file-and-dir", files: with(correctPy, map[string]string{"x": "a file\n", "x/y": "and a file below it\n"}),
			want: []contract.Outcome{contract.OutcomeInvalidSubmission}, about: "collide", noRetry: "sanity", wantScore0: true, refused: true},
		{name: "javac-option", files: with(correctJava, map[string]string{"-Xplugin:evil.java": "class X {}\n", "@argfile.java": "class Y {}\n"}),
			want: []contract.Outcome{contract.OutcomeInvalidSubmission}, about: "not allowed", noRetry: "sanity", wantScore0: true, refused: true},
		// Java: forbidden APIs in the bytecode, and at run time.
		{name: "java-process", want: []contract.Outcome{contract.OutcomeCompileError}, about: "java.lang.ProcessBuilder", noRetry: "sanity", wantScore0: true},
		{name: "java-reflection", want: []contract.Outcome{contract.OutcomeCompileError}, about: "java.lang.Class.forName", noRetry: "sanity", wantScore0: true},
		{name: "java-runtime-fork", want: []contract.Outcome{contract.OutcomePassed}},
		// Leaks: the input, the mount table, host paths.
		{name: "leak-input", want: []contract.Outcome{contract.OutcomeRuntimeError}, about: "ValueError", wantScore0: true},
	}

	inputLines := secretLines(t, filepath.Join(stk.root, exampleDir, "input"))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	batch := randHex(3)
	t.Run("group", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				files := tc.files
				if files == nil {
					files = readFiles(t, filepath.Join(stk.root, "test/testdata/hostile-sandbox", tc.name))
				}
				id := "hsbx-" + tc.name + "-" + batch
				var res contract.Result
				if tc.refused {
					_, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: "wordcount", Student: "e2e-hostile", Files: files})
					var fe *intake.FieldError
					if !errors.As(err, &fe) || fe.Field != "files" {
						t.Fatalf("upload of %s: %v, want the files refused", tc.name, err)
					}
					res = gradeBypassingIntake(t, ctx, id, files)
				} else {
					res = gradeFiles(t, ctx, id, files)
				}
				if res.Status != contract.StatusGraded || !slices.Contains(tc.want, res.Outcome) {
					t.Fatalf("got %s/%s (score %g), want graded/%v; feedback:\n%s", res.Status, res.Outcome, res.Score, tc.want, res.Feedback)
				}
				if tc.wantScore0 && res.Score != 0 {
					t.Errorf("score %g, want 0", res.Score)
				}
				if tc.about != "" && !strings.Contains(res.Feedback, tc.about) {
					t.Errorf("feedback does not mention %q:\n%s", tc.about, res.Feedback)
				}
				for _, l := range inputLines {
					if strings.Contains(res.Feedback, l) {
						t.Errorf("feedback shows a line of the hidden input %q:\n%s", l, res.Feedback)
					}
				}
				for _, leak := range []string{stk.dir, "/runs/", "mountinfo", "overlay", "/var/lib/docker"} {
					if strings.Contains(res.Feedback, leak) {
						t.Errorf("feedback shows %q (host layout):\n%s", leak, res.Feedback)
					}
				}
				sub, err := stk.store.Submission(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				step := tc.noRetry
				if step == "" {
					step = "execute"
				}
				if sub.Attempts[step] != 1 {
					t.Errorf("%s ran %d times: a submission's own failure must be scored, not retried (attempts %v)", step, sub.Attempts[step], sub.Attempts)
				}
				waitFor(t, 30*time.Second, "no container left", func() (bool, error) {
					cs, err := stk.containers(ctx, id)
					return err == nil && len(cs) == 0, err
				})
			})
		}
	})
	// Flat memory: the execute worker's peak resident set over its whole
	// life (every test so far) stays far below what reading a claimed size
	// whole would cost.
	executeMu.Lock()
	pid := executeWorker.Cmd.Process.Pid
	executeMu.Unlock()
	peak, err := peakRSS(pid)
	if err != nil {
		t.Fatalf("execute worker memory: %v", err)
	}
	t.Logf("execute worker peak RSS %d MiB", peak>>20)
	if peak > 300<<20 {
		t.Errorf("execute worker peak RSS %d MiB, want under 300 MiB", peak>>20)
	}
}

// gradeFiles submits files as one wordcount submission and waits for its result.
func gradeFiles(t testing.TB, ctx context.Context, id string, files map[string][]byte) contract.Result {
	t.Helper()
	return grade(t, ctx, intake.Submission{ID: id, Assignment: "wordcount", Student: "e2e-hostile", Files: files})
}

// gradeBypassingIntake stores a submission's document and files directly,
// past the intake's checks, starts its workflow and waits for its result.
func gradeBypassingIntake(t testing.TB, ctx context.Context, id string, files map[string][]byte) contract.Result {
	t.Helper()
	names := make([]string, 0, len(files))
	for name, data := range files {
		names = append(names, name)
		if err := stk.store.PutFile(ctx, store.SubmissionFile(id, name), data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stk.store.CreateSubmission(ctx, store.Submission{ID: id, Assignment: "wordcount", Student: "e2e-hostile",
		Files: names, WorkflowID: contract.WorkflowID(id)}); err != nil {
		t.Fatal(err)
	}
	if err := stk.store.FilesStored(ctx, id); err != nil {
		t.Fatal(err)
	}
	in := contract.Input{SubmissionID: id, Assignment: "wordcount", Student: "e2e-hostile"}
	run, err := stk.temporal.ExecuteWorkflow(ctx, contract.StartOptions(in), contract.WorkflowName, in)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	var res contract.Result
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("grade %s: %v", id, err)
	}
	return res
}

// secretLines are the input lines long enough that finding one in feedback
// cannot be chance.
func secretLines(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); len(l) >= 16 {
				out = append(out, l)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no input lines to look for")
	}
	return out
}

// peakRSS is a process's peak resident set (VmHWM).
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
