package activities

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
)

// bundleResult is a container's stdout: a tar of result.json and files.
func bundleResult(t *testing.T, result string, files map[string]string) []byte {
	t.Helper()
	all := map[string]string{"./result.json": result}
	for k, v := range files {
		all[k] = v
	}
	return tarOf(t, all)
}

// TestSanity runs the sanity step against a fake store and sandbox through
// each way it can end: which outcome, whether a container ran and what it
// was given, what was stored.
func TestSanity(t *testing.T) {
	streaming := map[string]string{"mapper.py": "print(1)\n", "reducer.py": "print(2)\n", "lib/tok.py": "x = 1\n"}
	java := map[string]string{"WordCount.java": "class WordCount {}\n"}
	okResult := `{"ok":true,"kind":"sanity","exit_code":0}`
	tests := []struct {
		name        string
		files       map[string]string // the submission's
		noAssign    bool
		noExpected  bool
		run         func(t *testing.T) (sandbox.Result, error)
		wantFailure string // see failureOf
		wantCmd     string // first words of the container's command
		wantRuntime string
		wantJar     bool
		wantStages  []contract.Stage
	}{
		{
			name: "python passes", files: streaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, okResult, nil)}, nil
			},
			wantCmd: "sanity-python --forbid subprocess", wantRuntime: contract.RuntimeStreaming,
			wantStages: []contract.Stage{contract.StageSanity, contract.StageQueued},
		},
		{
			name: "python syntax error", files: streaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: 1, Stdout: bundleResult(t,
					`{"ok":false,"errors":[{"file":"mapper.py","line":3,"message":"SyntaxError: invalid syntax","category":"syntax"}]}`, nil)}, nil
			},
			wantFailure: string(contract.OutcomeSyntaxError), wantCmd: "sanity-python",
			wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "forbidden import", files: streaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: 1, Stdout: bundleResult(t,
					`{"ok":false,"errors":[{"file":"mapper.py","line":1,"message":"forbidden module 'subprocess'","category":"forbidden_import"}]}`, nil)}, nil
			},
			wantFailure: string(contract.OutcomeForbiddenImport), wantCmd: "sanity-python",
			wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "java compiles", files: java,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, okResult, map[string]string{"./job.jar": "PK-jar"})}, nil
			},
			wantCmd: "compile-java --main-class WordCount", wantRuntime: contract.RuntimeJar, wantJar: true,
			wantStages: []contract.Stage{contract.StageSanity, contract.StageQueued},
		},
		{
			name: "java compile error", files: java,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: 1, Stdout: bundleResult(t, `{"ok":false,"message":"WordCount.java:1: error: ';' expected"}`, nil)}, nil
			},
			wantFailure: string(contract.OutcomeCompileError), wantCmd: "compile-java",
			wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "check out of time", files: java,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{TimedOut: true, ExitCode: 137}, nil
			},
			wantFailure: string(contract.OutcomeCompileError), wantCmd: "compile-java",
			wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "nothing runnable: no container", files: map[string]string{"README.txt": "hi"},
			wantFailure: string(contract.OutcomeInvalidSubmission),
			wantStages:  []contract.Stage{contract.StageSanity},
		},
		{
			name: "unknown assignment is staff's to fix", files: streaming, noAssign: true,
			wantFailure: "config", wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "assignment without expected output", files: streaming, noExpected: true,
			wantFailure: "config", wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "checker wrote no result: ours, retried", files: streaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: 2, Stderr: "Traceback"}, nil
			},
			wantFailure: "retry", wantCmd: "sanity-python",
			wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "engine down: retried", files: streaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{}, errors.New("docker: connection refused")
			},
			wantFailure: "retry", wantCmd: "sanity-python",
			wantStages: []contract.Stage{contract.StageSanity},
		},
		{
			name: "compiled but no jar: ours, retried", files: java,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, okResult, nil)}, nil
			},
			wantFailure: "retry", wantCmd: "compile-java",
			wantStages: []contract.Stage{contract.StageSanity},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			asg := wordcount()
			if tc.noExpected {
				asg.ExpectedFiles = nil
			}
			if !tc.noAssign {
				st.assignments["wc"] = asg
			}
			stageSubmission(st, tc.files)
			sb := &fakeSandbox{run: func(spec sandbox.Spec) (sandbox.Result, error) {
				if tc.run == nil {
					t.Fatalf("no container expected, ran %v", spec.Cmd)
				}
				return tc.run(t)
			}}
			cfg := DefaultConfig()
			cfg.WorkDir = t.TempDir()
			a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg, NamespaceID: "ns-1"}

			var plan contract.Plan
			err := runActivity(t, a, a.Sanity, contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"}, &plan)
			if got := failureOf(err); got != tc.wantFailure {
				t.Fatalf("failure %q (%v), want %q", got, err, tc.wantFailure)
			}
			if g, ok := contract.AsStudentFailure(err); ok && (g.Feedback == "" || g.MaxScore != 100) {
				t.Errorf("student failure without feedback or max score: %+v", g)
			}
			if !slices.Equal(st.stages(), tc.wantStages) {
				t.Errorf("stages %v, want %v", st.stages(), tc.wantStages)
			}
			if tc.wantCmd != "" {
				if len(sb.specs) != 1 {
					t.Fatalf("%d containers, want 1", len(sb.specs))
				}
				spec := sb.specs[0]
				if cmd := strings.Join(spec.Cmd, " "); !strings.HasPrefix(cmd, tc.wantCmd) {
					t.Errorf("command %q, want %q...", cmd, tc.wantCmd)
				}
				if len(sb.jobs[0]) != len(tc.files) {
					t.Errorf("container saw files %v, want the submission's %d", sb.jobs[0], len(tc.files))
				}
				if spec.Labels[sandbox.LabelNamespace] != "ns-1" || spec.Labels[sandbox.LabelSubmission] != "s1" ||
					spec.Labels[sandbox.LabelKind] != "sanity" || spec.MemoryBytes != 1024<<20 || spec.TimeLimit != cfg.SanityTimeout {
					t.Errorf("spec labels %v memory %d limit %s", spec.Labels, spec.MemoryBytes, spec.TimeLimit)
				}
			}
			if err != nil {
				return
			}
			if plan.Runtime != tc.wantRuntime || plan.SubmissionID != "s1" || plan.Config.Name != "wc" || len(plan.Files) != len(tc.files) {
				t.Errorf("plan %+v", plan)
			}
			_, stored := st.files[store.ArtifactFile("s1", "job.jar")]
			if tc.wantJar != (plan.Jar != "") || tc.wantJar != stored {
				t.Errorf("jar %q stored %v, want %v", plan.Jar, stored, tc.wantJar)
			}
		})
	}
}

// TestExecute runs the execute step against a fake store and sandbox.
func TestExecute(t *testing.T) {
	okResult := `{"ok":true,"kind":"streaming","exit_code":0}`
	tests := []struct {
		name        string
		runtime     string
		run         func(t *testing.T) (sandbox.Result, error)
		wantFailure string
		wantCmd     string
		wantOutputs []string
	}{
		{
			name: "streaming job output stored per attempt", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{Elapsed: 2 * time.Second, Stdout: bundleResult(t, okResult, map[string]string{
					"./output/part-00001": "b\t1\n", "./output/part-00000": "a\t2\n", "./output/_SUCCESS": "",
					"./log.txt": "not output",
				})}, nil
			},
			wantCmd:     "streaming --mapper mapper.py --reducer reducer.py",
			wantOutputs: []string{"outputs/s1/a1/_SUCCESS", "outputs/s1/a1/part-00000", "outputs/s1/a1/part-00001"},
		},
		{
			name: "a result tar with an escaping name is refused whole and retried", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, okResult, map[string]string{
					"./output/part-00000": "a\t2\n", "./output/../../escape": "x",
				})}, nil
			},
			wantFailure: "retry", wantCmd: "streaming",
		},
		{
			name: "jar job", runtime: contract.RuntimeJar,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{Stdout: bundleResult(t, okResult, map[string]string{"./output/part-r-00000": "a\t2\n"})}, nil
			},
			wantCmd: "jar --main-class WordCount --jar /job/job.jar", wantOutputs: []string{"outputs/s1/a1/part-r-00000"},
		},
		{
			name: "time limit", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{TimedOut: true, ExitCode: 137}, nil
			},
			wantFailure: string(contract.OutcomeTimeLimit), wantCmd: "streaming",
		},
		{
			name: "memory limit", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{OOMKilled: true, ExitCode: 137}, nil
			},
			wantFailure: string(contract.OutcomeMemoryLimit), wantCmd: "streaming",
		},
		{
			name: "output flood", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{StdoutTruncated: true, Stdout: []byte("xxxx")}, nil
			},
			wantFailure: string(contract.OutcomeOutputLimit), wantCmd: "streaming",
		},
		{
			name: "job fails", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: 1, Stderr: "Traceback: ZeroDivisionError",
					Stdout: bundleResult(t, `{"ok":false,"exit_code":1,"message":"the mapper failed"}`, nil)}, nil
			},
			wantFailure: string(contract.OutcomeRuntimeError), wantCmd: "streaming",
		},
		{
			name: "job killed its runner", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: 137, Stderr: "fork: Resource temporarily unavailable"}, nil
			},
			wantFailure: string(contract.OutcomeRuntimeError), wantCmd: "streaming",
		},
		{
			name: "clean exit without a result: ours, retried", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{ExitCode: 0}, nil
			},
			wantFailure: "retry", wantCmd: "streaming",
		},
		{
			name: "engine down: retried", runtime: contract.RuntimeStreaming,
			run: func(t *testing.T) (sandbox.Result, error) {
				return sandbox.Result{}, errors.New("docker: connection refused")
			},
			wantFailure: "retry", wantCmd: "streaming",
		},
		{
			name: "unknown runtime", runtime: "cobol", wantFailure: "config",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			asg, files := stageWordcount(st)
			plan := contract.Plan{
				Request: contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"},
				Config:  asg, Runtime: tc.runtime, Files: files,
			}
			if tc.runtime == contract.RuntimeJar {
				plan.Jar = store.ArtifactFile("s1", "job.jar")
				st.files[plan.Jar] = []byte("PK-jar")
			}
			sb := &fakeSandbox{run: func(spec sandbox.Spec) (sandbox.Result, error) {
				if tc.run == nil {
					t.Fatalf("no container expected, ran %v", spec.Cmd)
				}
				return tc.run(t)
			}}
			var notified []contract.Stage
			cfg := DefaultConfig()
			cfg.WorkDir = t.TempDir()
			a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg, NamespaceID: "ns-1",
				Notify: func(_ context.Context, workflowID string, stage contract.Stage) error {
					if workflowID != "default-test-workflow-id" && workflowID != "submission-s1" {
						t.Errorf("notified workflow %q", workflowID)
					}
					notified = append(notified, stage)
					return nil
				}}

			var exec contract.Execution
			err := runActivity(t, a, a.Execute, plan, &exec)
			if got := failureOf(err); got != tc.wantFailure {
				t.Fatalf("failure %q (%v), want %q", got, err, tc.wantFailure)
			}
			// Every score names what graded it: the assignment's revision and the image.
			wantGrader := contract.GraderVersion{AssignmentRevision: asg.UpdatedAt.UnixMilli(), Image: cfg.Image}
			if g, ok := contract.AsStudentFailure(err); ok && (g.Feedback == "" || g.MaxScore != 100 || g.Grader != wantGrader) {
				t.Errorf("student failure without feedback, max score or grader: %+v", g)
			}
			if err == nil && exec.Grader != wantGrader {
				t.Errorf("grader %+v, want %+v", exec.Grader, wantGrader)
			}
			if len(sb.specs) > 0 && sb.specs[0].Image != cfg.Image {
				t.Errorf("image %q, want %q", sb.specs[0].Image, cfg.Image)
			}
			if st.stages()[0] != contract.StageRunning || !slices.Equal(notified, []contract.Stage{contract.StageRunning}) {
				t.Errorf("stages %v, notified %v; want running, signalled once", st.stages(), notified)
			}
			if tc.wantCmd == "" {
				return
			}
			if len(sb.specs) != 1 {
				t.Fatalf("%d containers, want 1", len(sb.specs))
			}
			spec := sb.specs[0]
			if cmd := strings.Join(spec.Cmd, " "); !strings.HasPrefix(cmd, tc.wantCmd) {
				t.Errorf("command %q, want %q...", cmd, tc.wantCmd)
			}
			if spec.TimeLimit != 20*time.Second || spec.Labels[sandbox.LabelKind] != "execute" || spec.Labels[sandbox.LabelNamespace] != "ns-1" ||
				!slices.Contains(spec.Env, "GRADEFLOW_TIMEOUT_SECONDS=50") {
				t.Errorf("spec limit %s labels %v env %v", spec.TimeLimit, spec.Labels, spec.Env)
			}
			if wantEnded := !strings.HasPrefix(tc.name, "engine down"); (st.ended == 1) != wantEnded {
				t.Errorf("execute end marked %d times, want it marked: %v", st.ended, wantEnded)
			}
			if err != nil {
				return
			}
			if !slices.Equal(exec.Outputs, tc.wantOutputs) {
				t.Errorf("outputs %v, want %v", exec.Outputs, tc.wantOutputs)
			}
			for _, o := range exec.Outputs {
				if _, ok := st.files[o]; !ok {
					t.Errorf("output %s not stored", o)
				}
			}
		})
	}
}

// TestExecuteHeartbeatsThroughSlowTransfers gives the store a slow link:
// fetching the files, downloading the input and storing the outputs each
// take many heartbeat intervals, and the step heartbeats through all of
// them, so that a slow store is never mistaken for a dead worker.
func TestExecuteHeartbeatsThroughSlowTransfers(t *testing.T) {
	st := newFakeStore()
	st.delay = 150 * time.Millisecond
	asg, files := stageWordcount(st)
	sb := &fakeSandbox{run: func(sandbox.Spec) (sandbox.Result, error) {
		return sandbox.Result{Stdout: bundleResult(t, `{"ok":true,"exit_code":0}`, map[string]string{
			"./output/part-00000": "a\t2\n", "./output/part-00001": "b\t1\n",
		})}, nil
	}}
	cfg := DefaultConfig()
	cfg.WorkDir = t.TempDir()
	cfg.HeartbeatEvery = 10 * time.Millisecond
	a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg}

	var mu sync.Mutex
	phases := map[string]int{}
	a.recordHeartbeat = func(_ context.Context, details ...any) {
		if len(details) == 1 {
			phase, _ := details[0].(string)
			mu.Lock()
			phases[phase]++
			mu.Unlock()
		}
	}
	plan := contract.Plan{
		Request: contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1"},
		Config:  asg, Runtime: contract.RuntimeStreaming, Files: files,
	}
	if err := runActivity(t, a, a.Execute, plan, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Each phase lasts at least one 150 ms transfer: 15 intervals of 10 ms.
	for _, phase := range []string{"fetching", "storing output"} {
		if phases[phase] < 5 {
			t.Errorf("%d heartbeats while %s, want several: %v", phases[phase], phase, phases)
		}
	}
}

// TestSanityNamesFromRequest: the intake passes the file names with the
// request, so the sanity step fetches the files without reading the
// submission's document (here there is none), beside the assignment.
func TestSanityNamesFromRequest(t *testing.T) {
	st := newFakeStore()
	st.assignments["wc"] = wordcount()
	names := []string{"mapper.py", "reducer.py"}
	for _, n := range names {
		st.files[store.SubmissionFile("s1", n)] = []byte("print(1)\n")
	}
	sb := &fakeSandbox{run: func(sandbox.Spec) (sandbox.Result, error) {
		return sandbox.Result{Stdout: bundleResult(t, `{"ok":true,"kind":"sanity","exit_code":0}`, nil)}, nil
	}}
	cfg := DefaultConfig()
	cfg.WorkDir = t.TempDir()
	a := &Activities{Files: st, Submissions: st, Sandbox: sb, Config: cfg}
	var plan contract.Plan
	req := contract.Request{SubmissionID: "s1", Assignment: "wc", Student: "ada", WorkflowID: "submission-s1", Files: names}
	if err := runActivity(t, a, a.Sanity, req, &plan); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan.Files, names) || len(sb.jobs) != 1 || sb.jobs[0]["mapper.py"] != "print(1)\n" || sb.jobs[0]["reducer.py"] != "print(1)\n" {
		t.Errorf("plan files %v, checked %v", plan.Files, sb.jobs)
	}
}
