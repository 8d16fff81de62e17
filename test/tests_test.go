//go:build stack

package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/workflows"
)

const topwordDir = "examples/topword"

// topwordOutcome is a topword example's documented outcome, per test.
type topwordOutcome struct {
	Outcome contract.Outcome  `json:"outcome"`
	Score   *float64          `json:"score"`
	Tests   map[string]string `json:"tests"`
}

// putTopword generates the large test's data (as make run does) and
// stores the topword assignment through the starter: the tests form.
func putTopword(t *testing.T, ctx context.Context) contract.Assignment {
	t.Helper()
	large := filepath.Join(stk.root, topwordDir, "tests", "large")
	if _, err := os.Stat(filepath.Join(large, "expected", "part-00000")); err != nil {
		out, err := exec.CommandContext(ctx, "python3", filepath.Join(stk.root, topwordDir, "generate.py"), large).CombinedOutput()
		if err != nil {
			t.Fatalf("generate the large data set: %v\n%s", err, out)
		}
	}
	if out, err := stk.starter(ctx, "assignment", topwordDir); err != nil {
		t.Fatalf("starter assignment: %v\n%s", err, out)
	}
	a, err := stk.store.Assignment(ctx, "topword")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestMultiTestAssignment grades every topword example on the real stack.
// Each fails one test for the reason the test exists: a reducer that is
// right only with one reduce task (three-reducers), a job without a
// combiner (the COMBINE_INPUT_RECORDS check), a quadratic reducer that
// times out in the third test, the large generated data set, while the
// tests before and after it keep their scores (partial results). Hidden
// and after_due tests are redacted for the portal, in full for staff, and
// results.json has gradescope's fields.
func TestMultiTestAssignment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a := putTopword(t, ctx)
	if len(a.Tests) != 5 || a.Points != 100 {
		t.Fatalf("stored assignment has %d tests, %g points", len(a.Tests), a.Points)
	}
	for _, tc := range a.Tests {
		if len(tc.InputFiles) == 0 || len(tc.ExpectedFiles) == 0 || tc.InputFiles[0].SHA256 == "" {
			t.Fatalf("test %s: files not stored by content: %+v", tc.Name, tc)
		}
	}
	// Tests small, three-reducers and combiner share one input: stored once.
	if a.Tests[0].InputFiles[0].Blob != a.Tests[1].InputFiles[0].Blob {
		t.Errorf("the same input stored twice: %s, %s", a.Tests[0].InputFiles[0].Blob, a.Tests[1].InputFiles[0].Blob)
	}

	raw, err := os.ReadFile(filepath.Join(stk.root, topwordDir, "outcomes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]topwordOutcome
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	batch := randHex(4)
	ids := map[string]string{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]contract.Result{}
	for name := range want {
		id := "tw-" + name + "-" + batch
		ids[name] = id
		files := readFiles(t, filepath.Join(stk.root, topwordDir, "submissions", name))
		wg.Go(func() {
			got, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: "topword", Student: "tw-" + name, Files: files})
			if err != nil {
				t.Errorf("%s: submit: %v", name, err)
				return
			}
			var res contract.Result
			if err := got.Run.Get(ctx, &res); err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			results[name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for name, w := range want {
		res := results[name]
		sub, err := stk.store.Submission(ctx, ids[name])
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != w.Outcome || (w.Score != nil && res.Score != *w.Score) {
			t.Errorf("%s: outcome %s score %g, want %s %v", name, res.Outcome, res.Score, w.Outcome, w.Score)
		}
		if len(sub.Tests) != len(a.Tests) {
			t.Errorf("%s: %d test results, want %d", name, len(sub.Tests), len(a.Tests))
			continue
		}
		for i, tr := range sub.Tests {
			if tr.Name != a.Tests[i].Name {
				t.Errorf("%s: test %d is %s, want %s (assignment order)", name, i, tr.Name, a.Tests[i].Name)
			}
			if tr.Status != w.Tests[tr.Name] {
				t.Errorf("%s: test %s: %s (%s), want %s", name, tr.Name, tr.Status, tr.Feedback, w.Tests[tr.Name])
			}
			if tr.Status == contract.TestPassed && tr.Score != tr.MaxScore {
				t.Errorf("%s: test %s passed with %g of %g", name, tr.Name, tr.Score, tr.MaxScore)
			}
		}
		if sub.Grader == nil || sub.Grader.AssignmentRevision != a.UpdatedAt.UnixMilli() || sub.Grader.ImageID == "" {
			t.Errorf("%s: grader version %+v, want revision %d and an image digest", name, sub.Grader, a.UpdatedAt.UnixMilli())
		}
		// One container ran every test: a single execute attempt.
		if sub.Attempts["execute"] != 1 {
			t.Errorf("%s: %d execute attempts", name, sub.Attempts["execute"])
		}
	}
	// The combiner check reads the framework's own counter.
	nc, _ := stk.store.Submission(ctx, ids["python-no-combiner"])
	for _, tr := range nc.Tests {
		if tr.Name == "combiner" && tr.Counters["COMBINE_INPUT_RECORDS"] != 0 {
			t.Errorf("no combiner, yet COMBINE_INPUT_RECORDS = %d", tr.Counters["COMBINE_INPUT_RECORDS"])
		}
	}
	ok, _ := stk.store.Submission(ctx, ids["python-correct"])
	for _, tr := range ok.Tests {
		if tr.Name == "combiner" && tr.Counters["COMBINE_INPUT_RECORDS"] <= 0 {
			t.Errorf("with a combiner, COMBINE_INPUT_RECORDS = %d", tr.Counters["COMBINE_INPUT_RECORDS"])
		}
	}

	t.Run("redaction", func(t *testing.T) { checkRedaction(t, ids["python-quadratic"]) })
	t.Run("results.json", func(t *testing.T) { checkResultsJSON(t, ids["python-quadratic"]) })
}

// checkRedaction: the portal sees hidden tests (and after_due ones before
// due_at) as name, score and status only, and no job log; staff see all.
func checkRedaction(t *testing.T, id string) {
	base := api(t)
	var portal, staff struct {
		Tests []store.TestResult `json:"tests"`
	}
	if code, err := getJSON(base, portalToken, "/v1/submissions/"+id, &portal); err != nil || code != http.StatusOK {
		t.Fatalf("portal GET: %d %v", code, err)
	}
	if code, err := getJSON(base, staffToken, "/v1/submissions/"+id, &staff); err != nil || code != http.StatusOK {
		t.Fatalf("staff GET: %d %v", code, err)
	}
	if len(portal.Tests) != 5 || len(staff.Tests) != 5 {
		t.Fatalf("portal sees %d tests, staff %d", len(portal.Tests), len(staff.Tests))
	}
	for i, p := range portal.Tests {
		s := staff.Tests[i]
		if p.Name != s.Name || p.Score != s.Score || p.Status != s.Status || p.MaxScore != s.MaxScore {
			t.Errorf("test %s: portal %+v differs from staff in name, score or status", s.Name, p)
		}
		if p.LogTail != "" {
			t.Errorf("test %s: the portal sees the job log", s.Name)
		}
		if s.LogTail == "" {
			t.Errorf("test %s: staff do not see the job log", s.Name)
		}
		withheld := s.Visibility == contract.VisibilityHidden || s.Visibility == contract.VisibilityAfterDue // due 2027-01-15
		if withheld && (p.Feedback != "" || p.Expected != 0 || p.Got != 0 || p.Counters != nil || p.Seconds != 0) {
			t.Errorf("test %s (%s): the portal sees detail: %+v", s.Name, s.Visibility, p)
		}
		if withheld && s.Feedback == "" {
			t.Errorf("test %s: staff see no feedback", s.Name)
		}
		if !withheld && p.Feedback != s.Feedback {
			t.Errorf("visible test %s: portal feedback %q, staff %q", s.Name, p.Feedback, s.Feedback)
		}
	}
}

// heartbeatTestsDone is how many finished tests the server holds in the
// heartbeat details of the submission's pending execute activity.
func heartbeatTestsDone(ctx context.Context, id string) int {
	desc, err := stk.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(id), "")
	if err != nil {
		return 0
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityType().GetName() != contract.ActivityExecute || pa.GetHeartbeatDetails() == nil {
			continue
		}
		var prog struct{ Done []contract.TestRun }
		if converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &prog) == nil {
			return len(prog.Done)
		}
	}
	return 0
}

// checkResultsJSON: the gradescope results.json field list.
func checkResultsJSON(t *testing.T, id string) {
	base := api(t)
	var doc map[string]json.RawMessage
	if code, err := getJSON(base, portalToken, "/v1/submissions/"+id+"/results.json", &doc); err != nil || code != http.StatusOK {
		t.Fatalf("GET results.json: %d %v", code, err)
	}
	for _, f := range []string{"score", "execution_time", "output", "tests"} {
		if doc[f] == nil {
			t.Errorf("results.json lacks %s", f)
		}
	}
	var tests []map[string]json.RawMessage
	if err := json.Unmarshal(doc["tests"], &tests); err != nil || len(tests) != 5 {
		t.Fatalf("tests: %v (%d)", err, len(tests))
	}
	allowed := map[string]bool{"name": true, "score": true, "max_score": true, "status": true, "visibility": true, "output": true}
	for _, tc := range tests {
		for _, f := range []string{"name", "score", "max_score", "status", "visibility", "output"} {
			if tc[f] == nil {
				t.Errorf("a test lacks %s: %v", f, tc)
			}
		}
		for f := range tc {
			if !allowed[f] {
				t.Errorf("a test has field %s, not in gradescope's list", f)
			}
		}
		var status, vis string
		_ = json.Unmarshal(tc["status"], &status)
		_ = json.Unmarshal(tc["visibility"], &vis)
		if status != "passed" && status != "failed" {
			t.Errorf("status %q", status)
		}
		if vis != "visible" && vis != "hidden" && vis != "after_due_date" && vis != "after_published" {
			t.Errorf("visibility %q", vis)
		}
		var out string
		_ = json.Unmarshal(tc["output"], &out)
		if (vis == "hidden" || vis == "after_due_date") && out != "" {
			t.Errorf("a withheld test's output reaches the portal: %q", out)
		}
	}
	var score float64
	_ = json.Unmarshal(doc["score"], &score)
	if score != 80 {
		t.Errorf("score %g, want 80", score)
	}
}

// TestTestsResumeAfterWorkerKilled kills the execute worker after two of
// topword's tests finished: the next attempt, on a new worker, runs only
// the tests left (its heartbeat details carry the finished ones), and the
// scores of the first two survive.
func TestTestsResumeAfterWorkerKilled(t *testing.T) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	putTopword(t, ctx)
	id := "tw-resume-" + randHex(4)
	files := readFiles(t, filepath.Join(stk.root, topwordDir, "submissions", "python-quadratic"))
	got, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: "topword", Student: "tw-resume", Files: files})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "two tests finished", func() (bool, error) {
		sub, err := stk.store.Submission(ctx, id)
		return len(sub.LiveTests) >= 2, err
	})
	// The SDK sends heartbeats at most every 0.8 of the heartbeat timeout:
	// kill only once the server holds details that carry both tests.
	waitFor(t, time.Minute, "a heartbeat with two tests done", func() (bool, error) {
		return heartbeatTestsDone(ctx, id) >= 2, nil
	})
	executeWorker.Kill()
	replacement, err := stk.startWorker(ctx, "worker-execute-resume", "execute")
	if err != nil {
		t.Fatal(err)
	}
	executeWorker = replacement
	if err := replacement.WaitLog(ctx, "resuming after earlier attempts"); err != nil {
		t.Fatalf("the new attempt did not resume: %v\n%s", err, replacement.Tail(20))
	}
	var res contract.Result
	if err := got.Run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	sub, err := stk.store.Submission(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != contract.OutcomeTimeLimit || res.Score != 80 || sub.Attempts["execute"] < 2 {
		t.Fatalf("got %s %g after %d execute attempts, want time_limit_exceeded 80 after 2 or more", res.Outcome, res.Score, sub.Attempts["execute"])
	}
	for _, tr := range sub.Tests[:2] {
		if tr.Status != contract.TestPassed {
			t.Errorf("test %s: %s after the resume", tr.Name, tr.Status)
		}
	}
	if cs, err := stk.containers(ctx, id); err != nil || len(cs) != 0 {
		t.Errorf("%d containers left (%v)", len(cs), err)
	}
}

// TestRuntimeImage: an assignment that names the extra runtime image (from
// the operator's allow-list) runs its jobs there, so a reducer importing a
// package only that image has passes; the same submission fails on the
// default image, and an image off the list is refused at upload.
func TestRuntimeImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in := stk.intake()
	files := wordcountTree(t)
	put := func(name, image string) error {
		cfg, err := intake.DecodeAssignment([]byte(`{"runtimes": ["streaming"], "image": "`+image+`",
			"tests": [{"name": "counts", "points": 10, "input": "input", "expected": "expected"}]}`), name)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = in.PutAssignment(ctx, intake.AssignmentUpload{Config: cfg, Files: files})
		return err
	}
	if err := put("rt-extra", extraImage); err != nil {
		t.Fatal(err)
	}
	if err := put("rt-default", ""); err != nil {
		t.Fatal(err)
	}
	// The single-test form takes the field too.
	putSingle := func(name, image string) error {
		cfg, err := intake.DecodeAssignment([]byte(`{"runtimes": ["streaming"], "points": 10, "image": "`+image+`"}`), name)
		if err != nil {
			t.Fatal(err)
		}
		wc := filepath.Join(stk.root, exampleDir)
		_, _, err = in.PutAssignment(ctx, intake.AssignmentUpload{Config: cfg,
			Input: readFiles(t, filepath.Join(wc, "input")), Expected: readFiles(t, filepath.Join(wc, "expected"))})
		return err
	}
	if err := putSingle("rt-single", extraImage); err != nil {
		t.Fatal(err)
	}
	for _, put := range []func(string, string) error{put, putSingle} {
		var fe *intake.FieldError
		if err := put("rt-unknown", "evil/miner:latest"); !errors.As(err, &fe) || fe.Field != "image" {
			t.Errorf("an image off the allow-list: %v, want a field error on image", err)
		}
	}
	sub := readFiles(t, filepath.Join(stk.root, "test/testdata/extra-image"))
	for _, tc := range []struct {
		assignment string
		outcome    contract.Outcome
		image      string
	}{{"rt-extra", contract.OutcomePassed, extraImage}, {"rt-default", contract.OutcomeRuntimeError, stk.image},
		{"rt-single", contract.OutcomePassed, extraImage}} {
		id := tc.assignment + "-" + randHex(4)
		res := grade(t, ctx, intake.Submission{ID: id, Assignment: tc.assignment, Student: "rt", Files: sub})
		s, _ := stk.store.Submission(ctx, id)
		if res.Outcome != tc.outcome || s.Grader == nil || s.Grader.Image != tc.image {
			t.Errorf("%s: %s on %+v, want %s on %s (%+v)", tc.assignment, res.Outcome, s.Grader, tc.outcome, tc.image, s.Tests)
		}
	}
}

// TestRegradeAll: staff change an assignment's expected output, then
// regrade every student's latest submission through the API: the request
// plans the run (each regrade's ID reserved) and answers 202 at once; the
// run's workflow starts the regrades, in the regrade lane (Temporal
// priority and fairness key of their own); GET /v1/regrades/{id} follows
// them and reports who changed from what score to what. A repeated
// request with the same run ID plans nothing new. Then staff undo the fix
// and regrade every submission (scope all) with the starter's -wait: the
// before of a submission regraded once is that regrade, so the report
// shows the change since the last regrade.
func TestRegradeAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	base := api(t)
	in := stk.intake()
	wc := filepath.Join(stk.root, exampleDir)
	base0 := loadAssignment(t)
	name := "rg-" + randHex(3)
	cfg := base0
	cfg.Name, cfg.InputFiles, cfg.ExpectedFiles, cfg.UpdatedAt = name, nil, nil, time.Time{}
	expected := readFiles(t, filepath.Join(wc, "expected"))
	put := func(exp map[string][]byte) {
		t.Helper()
		if _, _, err := in.PutAssignment(ctx, intake.AssignmentUpload{Config: cfg, Input: readFiles(t, filepath.Join(wc, "input")), Expected: exp}); err != nil {
			t.Fatal(err)
		}
	}
	put(expected)
	grade := func(id, student, dir string) contract.Result {
		t.Helper()
		got, err := in.Submit(ctx, intake.Submission{ID: id, Assignment: name, Student: student, Files: readFiles(t, filepath.Join(wc, "submissions", dir))})
		if err != nil {
			t.Fatal(err)
		}
		var res contract.Result
		if err := got.Run.Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	// ada submits twice (only the latest is regraded), bob once.
	adaFirst := grade(name+"-ada-1", "ada", "python-wrong")
	adaLatest := grade(name+"-ada-2", "ada", "python-correct")
	grade(name+"-bob-1", "bob", "python-correct")
	if adaLatest.Outcome != contract.OutcomePassed || adaFirst.Outcome != contract.OutcomeWrongAnswer {
		t.Fatalf("ada's submissions: %s, %s", adaFirst.Outcome, adaLatest.Outcome)
	}
	// Staff "fix" the expected output: one more line, which nobody produces.
	fixed := map[string][]byte{}
	for k, v := range expected {
		fixed[k] = append(append([]byte{}, v...), []byte("zzzznotaword\t1\n")...)
	}
	put(fixed)

	// Round 1, through the API: 202 at once with the plan, then poll.
	runID := "rg-" + randHex(6)
	post := func() (int, string, intake.RegradeReport) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/assignments/"+name+"/regrade",
			strings.NewReader(`{"scope": "latest", "id": "`+runID+`"}`))
		req.Header.Set("Authorization", "Bearer "+staffToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep intake.RegradeReport
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			t.Fatalf("POST regrade: %d, %v", resp.StatusCode, err)
		}
		return resp.StatusCode, resp.Header.Get("Location"), rep
	}
	code, loc, rep := post()
	if code != http.StatusAccepted || loc != "/v1/regrades/"+runID || rep.ID != runID || rep.WorkflowID != contract.RegradeAllWorkflowID(runID) {
		t.Fatalf("POST regrade: %d, Location %q, run %q workflow %q", code, loc, rep.ID, rep.WorkflowID)
	}
	if rep.Total != 2 || rep.Planned+rep.Started != 2 || len(rep.Pending) != 2 || rep.Failed != 0 {
		t.Fatalf("planned report: total %d, planned %d, started %d, pending %v, failed %d; want 2 items (each student's latest), all pending",
			rep.Total, rep.Planned, rep.Started, rep.Pending, rep.Failed)
	}
	// The same request again answers the same run and reserves nothing.
	if code, _, again := post(); code != http.StatusAccepted || again.ID != runID || again.Total != 2 {
		t.Fatalf("repeated POST: %d, run %q of %d", code, again.ID, again.Total)
	}
	if sub, err := stk.store.Submission(ctx, name+"-ada-2"); err != nil || sub.Regrades != 1 {
		t.Fatalf("ada's latest has %d regrade numbers reserved after a repeated request, %v; want 1", sub.Regrades, err)
	}
	waitFor(t, 4*time.Minute, "the regrades of round 1", func() (bool, error) {
		rep = intake.RegradeReport{} // pending is left out once empty
		code, err := getJSON(base, staffToken, loc, &rep)
		if err != nil || code != http.StatusOK {
			return false, fmt.Errorf("GET %s: %d %v", loc, code, err)
		}
		return len(rep.Pending) == 0, nil
	})
	if rep.Done != 2 || rep.Started != 2 || rep.Planned != 0 || len(rep.Changed) != 2 || rep.Unchanged != 0 {
		t.Fatalf("round 1 report: done %d, started %d, planned %d, %d changed, %d unchanged: %+v",
			rep.Done, rep.Started, rep.Planned, len(rep.Changed), rep.Unchanged, rep.Changed)
	}
	for _, c := range rep.Changed {
		if c.From != name+"-ada-2" && c.From != name+"-bob-1" {
			t.Errorf("regraded %s, which is no student's latest", c.From)
		}
		if c.To != c.From+"-r1" || c.BeforeID != c.From {
			t.Errorf("%s: regraded as %s against %s, want %s-r1 against the original", c.Student, c.To, c.BeforeID, c.From)
		}
		if c.Before != 100 || c.After >= 100 || c.BeforeStatus != string(contract.OutcomePassed) || c.AfterStatus != string(contract.OutcomeWrongAnswer) {
			t.Errorf("%s: %g %s -> %g %s, want 100 passed -> less, wrong_answer", c.Student, c.Before, c.BeforeStatus, c.After, c.AfterStatus)
		}
		checkGraders(t, c)
		sub, err := stk.store.Submission(ctx, c.To)
		if err != nil || sub.Lane != contract.LaneRegrade || sub.RegradeOf != c.From {
			t.Fatalf("regrade %s: %v lane %q of %q", c.To, err, sub.Lane, sub.RegradeOf)
		}
		desc, err := stk.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(c.To), "")
		if err != nil {
			t.Fatal(err)
		}
		if p := desc.WorkflowExecutionInfo.GetPriority(); p.GetPriorityKey() != contract.PriorityRegrade || p.GetFairnessKey() != "regrade:"+name {
			t.Errorf("regrade %s runs at priority %v, want %d regrade:%s", c.To, p, contract.PriorityRegrade, name)
		}
	}
	var started contract.RegradesStarted
	if err := stk.temporal.GetWorkflow(ctx, contract.RegradeAllWorkflowID(runID), "").Get(ctx, &started); err != nil ||
		started != (contract.RegradesStarted{Next: 2, Started: 2}) {
		t.Errorf("regrade-all workflow: %+v, %v; want both started", started, err)
	}
	replayRegradeAll(t, ctx, runID)

	// Round 2: the fix is undone; every submission is regraded, with the
	// starter, which waits until none is pending.
	put(expected)
	out, err := stk.starter(ctx, "regrade-all", "-assignment", name, "-all", "-wait")
	if err != nil {
		t.Fatal(err)
	}
	var id2 string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "regrade rg-"); ok {
			id2, _, _ = strings.Cut("rg-"+rest, ":")
		}
	}
	if id2 == "" {
		t.Fatalf("starter output names no run:\n%s", out)
	}
	rep, err = in.RegradeReport(ctx, id2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scope != intake.ScopeAll || rep.Total != 3 || rep.Done != 3 || len(rep.Pending) != 0 || len(rep.Changed) != 2 || rep.Unchanged != 1 {
		t.Fatalf("round 2 report (starter said:\n%s): scope %s, total %d, done %d, pending %v, %d changed, %d unchanged: %+v",
			out, rep.Scope, rep.Total, rep.Done, rep.Pending, len(rep.Changed), rep.Unchanged, rep.Changed)
	}
	for _, c := range rep.Changed {
		// ada's and bob's latest: since their round-1 regrade, wrong back to passed.
		if c.From != name+"-ada-2" && c.From != name+"-bob-1" {
			t.Errorf("%s changed, want only the two regraded in round 1", c.From)
			continue
		}
		if c.To != c.From+"-r2" || c.BeforeID != c.From+"-r1" {
			t.Errorf("%s: regraded as %s against %s, want %s-r2 against %s-r1", c.Student, c.To, c.BeforeID, c.From, c.From)
		}
		if c.Before >= 100 || c.BeforeStatus != string(contract.OutcomeWrongAnswer) || c.After != 100 || c.AfterStatus != string(contract.OutcomePassed) {
			t.Errorf("%s: %g %s -> %g %s, want wrong_answer -> 100 passed", c.From, c.Before, c.BeforeStatus, c.After, c.AfterStatus)
		}
		checkGraders(t, c)
	}
	// ada's first submission had never been regraded: its before is its
	// own grade, which the original expected output gives again.
	if sub, err := stk.store.Submission(ctx, name+"-ada-1-r1"); err != nil || sub.Outcome != contract.OutcomeWrongAnswer {
		t.Errorf("ada's first submission regraded: %s, %v; want wrong_answer, unchanged", sub.Outcome, err)
	}
}

// checkGraders: where the read model recorded the grader versions of a
// change's two grades, the after is of a later assignment revision.
func checkGraders(t *testing.T, c intake.RegradeChange) {
	t.Helper()
	if c.BeforeGrader != nil && c.AfterGrader != nil && c.AfterGrader.AssignmentRevision <= c.BeforeGrader.AssignmentRevision {
		t.Errorf("%s: graded by revision %d after %d, want a later one", c.From, c.AfterGrader.AssignmentRevision, c.BeforeGrader.AssignmentRevision)
	}
}

// replayRegradeAll replays the finished regrade-all workflow of run id
// against the current workflow code. With GRADEFLOW_RECORD_HISTORIES=DIR
// it also writes its history to DIR/regrade_all.history.json, the way
// workflows/testdata/v2 is recorded (see TestWorkflowPaths).
func replayRegradeAll(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	hist := historyOf(t, ctx, contract.RegradeAllWorkflowID(id))
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.RegradeAll, workflow.RegisterOptions{Name: contract.RegradeAllName})
	if err := r.ReplayWorkflowHistory(nil, hist); err != nil {
		t.Fatalf("replay regrade-all: %v", err)
	}
	if dir := os.Getenv("GRADEFLOW_RECORD_HISTORIES"); dir != "" {
		raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "regrade_all.history.json"), append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTestsJava: a Java submission in the tests form. Each test's job runs
// through RunJar in the one container; a test with three reducers gives the
// driver (which builds its own Configuration) three reduce tasks through
// the test's Hadoop configuration, and the combiner check reads the JVM's
// framework counters.
func TestTestsJava(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in := stk.intake()
	wc := filepath.Join(stk.root, exampleDir)
	files := wordcountTree(t)
	cfg, err := intake.DecodeAssignment([]byte(`{"runtimes": ["jar"], "main_class": "WordCount", "tests": [
		{"name": "one", "points": 10, "input": "input", "expected": "expected"},
		{"name": "three", "points": 10, "input": "input", "expected": "expected", "reducers": 3},
		{"name": "combiner", "points": 10, "input": "input", "expected": "expected",
		 "counters": [{"counter": "COMBINE_INPUT_RECORDS", "op": ">", "value": 0}]}]}`), "tw-java")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.PutAssignment(ctx, intake.AssignmentUpload{Config: cfg, Files: files}); err != nil {
		t.Fatal(err)
	}
	id := "tw-java-" + randHex(4)
	res := grade(t, ctx, intake.Submission{ID: id, Assignment: "tw-java", Student: "tw-java",
		Files: readFiles(t, filepath.Join(wc, "submissions/java-correct"))})
	sub, err := stk.store.Submission(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != contract.OutcomePassed || res.Score != 30 || len(sub.Tests) != 3 {
		t.Fatalf("%s %g: %+v", res.Outcome, res.Score, sub.Tests)
	}
	if c := sub.Tests[2].Counters["COMBINE_INPUT_RECORDS"]; c <= 0 {
		t.Errorf("COMBINE_INPUT_RECORDS = %d", c)
	}
}

// wordcountTree is the wordcount example's input and expected output as
// the files of a tests-form assignment: input/… and expected/….
func wordcountTree(t *testing.T) map[string][]byte {
	t.Helper()
	wc := filepath.Join(stk.root, exampleDir)
	files := map[string][]byte{}
	for _, part := range []string{"input", "expected"} {
		for k, v := range readFiles(t, filepath.Join(wc, part)) {
			files[part+"/"+k] = v
		}
	}
	return files
}
