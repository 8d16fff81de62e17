package activities

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/gradeflow/gradeflow/activities/checkers"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// fakeCheckers answers warm checks by calling check, recording what each
// request was and which files its directory held.
type fakeCheckers struct {
	check func(req checkers.Request) (checkers.Response, error)
	reqs  []checkers.Request
	files [][]string
}

func (f *fakeCheckers) Check(_ context.Context, req checkers.Request) (checkers.Response, error) {
	var names []string
	_ = filepath.WalkDir(req.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(req.Dir, p)
			names = append(names, rel)
		}
		return nil
	})
	f.reqs = append(f.reqs, req)
	f.files = append(f.files, names)
	return f.check(req)
}

// TestSanityWarm: the sanity step with a warm checker pool. Its answer is
// the verdict, and no container runs; a failed verdict is in the read model
// at once; a checker that cannot answer leaves the check to a container of
// its own, as without a pool.
func TestSanityWarm(t *testing.T) {
	streaming := map[string]string{"mapper.py": "print(1)\n", "reducer.py": "print(2)\n"}
	java := map[string]string{"WordCount.java": "class WordCount {}\n"}
	answer := func(result string, jar []byte) func(checkers.Request) (checkers.Response, error) {
		return func(checkers.Request) (checkers.Response, error) {
			return checkers.Response{Result: json.RawMessage(result), Jar: jar, Checker: "c-1"}, nil
		}
	}
	tests := []struct {
		name          string
		files         map[string]string
		check         func(checkers.Request) (checkers.Response, error)
		wantKind      string
		wantFailure   string
		wantContainer bool
		wantJar       bool
		wantRecorded  contract.Outcome
	}{
		{
			name: "python passes warm", files: streaming, check: answer(`{"ok":true}`, nil),
			wantKind: checkers.KindPython,
		},
		{
			name: "python syntax error warm, recorded at once", files: streaming,
			check:    answer(`{"ok":false,"errors":[{"file":"mapper.py","line":1,"message":"SyntaxError: x","category":"syntax"}]}`, nil),
			wantKind: checkers.KindPython, wantFailure: string(contract.OutcomeSyntaxError), wantRecorded: contract.OutcomeSyntaxError,
		},
		{
			name: "forbidden import warm", files: streaming,
			check:    answer(`{"ok":false,"errors":[{"file":"mapper.py","line":1,"message":"forbidden module 'socket' imported","category":"forbidden_import"}]}`, nil),
			wantKind: checkers.KindPython, wantFailure: string(contract.OutcomeForbiddenImport), wantRecorded: contract.OutcomeForbiddenImport,
		},
		{
			name: "java compiles warm: the checker's jar is stored", files: java, check: answer(`{"ok":true}`, []byte("PK-jar")),
			wantKind: checkers.KindJava, wantJar: true,
		},
		{
			name: "java compile error warm", files: java, check: answer(`{"ok":false,"message":"WordCount.java:1: error: x"}`, nil),
			wantKind: checkers.KindJava, wantFailure: string(contract.OutcomeCompileError), wantRecorded: contract.OutcomeCompileError,
		},
		{
			name: "checker failed: a container of its own", files: streaming,
			check: func(checkers.Request) (checkers.Response, error) {
				return checkers.Response{}, checkers.ErrFailed
			},
			wantKind: checkers.KindPython, wantContainer: true,
		},
		{
			name: "no checker warm: a container of its own", files: java,
			check: func(checkers.Request) (checkers.Response, error) {
				return checkers.Response{}, checkers.ErrUnavailable
			},
			wantKind: checkers.KindJava, wantContainer: true, wantJar: true,
		},
		{
			name: "answer without a result: a container of its own", files: streaming, check: answer(`nonsense`, nil),
			wantKind: checkers.KindPython, wantContainer: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			st.assignments["wc"] = wordcount()
			stageSubmission(st, tc.files)
			sb := &fakeSandbox{run: func(spec sandbox.Spec) (sandbox.Result, error) {
				if !tc.wantContainer {
					t.Fatalf("no container expected, ran %v", spec.Cmd)
				}
				return sandbox.Result{Stdout: bundleResult(t, `{"ok":true}`, map[string]string{"job.jar": "PK-oneshot"})}, nil
			}}
			ch := &fakeCheckers{check: tc.check}
			cfg := DefaultConfig()
			cfg.WorkDir = t.TempDir()
			a := &Activities{Files: st, Submissions: st, Sandbox: sb, Checkers: ch, Config: cfg, NamespaceID: "ns-1"}
			var plan contract.Plan
			err := runActivity(t, a, a.Sanity, contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"}, &plan)
			if got := failureOf(err); got != tc.wantFailure {
				t.Fatalf("failure %q (%v), want %q", got, err, tc.wantFailure)
			}
			if len(ch.reqs) != 1 || ch.reqs[0].Kind != tc.wantKind || len(ch.files[0]) != len(tc.files) {
				t.Fatalf("checker requests %+v with files %v, want one %s request with the submission's %d files", ch.reqs, ch.files, tc.wantKind, len(tc.files))
			}
			if r := ch.reqs[0]; r.MainClass != "WordCount" || len(r.Forbid) == 0 {
				t.Errorf("request %+v lacks the assignment's main class or forbidden modules", r)
			}
			if (len(sb.specs) == 1) != tc.wantContainer {
				t.Errorf("%d containers, want container %v", len(sb.specs), tc.wantContainer)
			}
			g, recorded := st.recorded["s1"]
			if tc.wantRecorded == "" && recorded {
				t.Errorf("recorded %+v, want nothing", g)
			}
			if tc.wantRecorded != "" {
				v, _ := contract.AsStudentFailure(err)
				if !recorded || g.Status != contract.StatusGraded || g.Outcome != tc.wantRecorded || g.Feedback != v.Feedback || g.MaxScore != 100 || g.Score != 0 {
					t.Errorf("recorded %+v (%v), want the verdict %s as the workflow records it", g, recorded, tc.wantRecorded)
				}
			}
			if err != nil {
				return
			}
			jar, stored := st.files[store.ArtifactFile("s1", "job.jar")]
			if tc.wantJar != stored || tc.wantJar != (plan.Jar != "") {
				t.Errorf("jar stored %v plan %q, want %v", stored, plan.Jar, tc.wantJar)
			}
			if stored && !tc.wantContainer && string(jar) != "PK-jar" {
				t.Errorf("stored jar %q, want the checker's", jar)
			}
		})
	}
}
