//go:build stack

package test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/workflows"
)

// TestQuarantineAfterWorkerDeaths grades a submission built to kill
// workers: every execute worker that starts it dies (the harness kills
// the process with SIGKILL as soon as its log shows the attempt). After
// GRADEFLOW_QUARANTINE_AFTER=3 deaths the next worker declines it without
// a container: it is quarantined in the read model, the API's staff view
// and the GradeflowStage search attribute, with every attempt's worker and
// host in the tracker, and no further attempt is made. Staff release it
// through the API; it is then graded, once.
func TestQuarantineAfterWorkerDeaths(t *testing.T) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	base := api(t)
	executeWorker.Terminate(30 * time.Second)
	defer restoreExecuteWorker(t)

	id := "quar-" + randHex(4)
	putRushAssignment(t, ctx, id, false)
	got, err := stk.intake().Submit(ctx, intake.Submission{ID: id, Assignment: id, Student: "quar-student",
		Files: readFiles(t, filepath.Join(stk.root, "test/testdata/slow-correct"))})
	if err != nil || !got.Created {
		t.Fatalf("submit: %v %v", got.Created, err)
	}
	const n = 3
	quarantine := fmt.Sprintf("GRADEFLOW_QUARANTINE_AFTER=%d", n)
	host, _ := os.Hostname()
	var killed []string
	for i := range n {
		w, err := stk.startWorker(ctx, fmt.Sprintf("worker-execute-doomed-%d", i), "execute", quarantine)
		if err != nil {
			t.Fatal(err)
		}
		// Killed once its attempt is in the tracker and its run signal in
		// the history.
		if err := waitLogLine(ctx, w, "execute run signalled", id); err != nil {
			t.Fatal(err)
		}
		w.Kill()
		killed = append(killed, fmt.Sprintf("%d@%s", w.Cmd.Process.Pid, host))
	}
	fresh, err := stk.startWorker(ctx, "worker-execute-fresh", "execute", quarantine)
	if err != nil {
		t.Fatal(err)
	}
	executeWorker = fresh
	freshID := fmt.Sprintf("%d@%s", fresh.Cmd.Process.Pid, host)

	var sub store.Submission
	waitFor(t, 2*time.Minute, id+" quarantined", func() (bool, error) {
		sub, err = stk.store.Submission(ctx, id)
		return err == nil && sub.Status == contract.StatusQuarantined, err
	})
	runs := sub.RunList()
	if len(runs) != n+1 {
		t.Fatalf("tracker has %d runs, want %d dead ones and the refusal: %+v", len(runs), n, runs)
	}
	for i, r := range runs {
		switch {
		case i < n && (r.Worker != killed[i] || r.Host != host || r.Ended != nil || r.Attempt != i+1):
			t.Errorf("run %d: %+v, want attempt %d by the killed worker %s, never ended", i, r, i+1, killed[i])
		case i == n && (r.Worker != freshID || r.End != contract.RunQuarantined || r.Ended == nil):
			t.Errorf("run %d: %+v, want the fresh worker %s declining it", i, r, freshID)
		}
	}
	if sub.Stage != contract.StageQuarantined {
		t.Errorf("stage %s, want quarantined", sub.Stage)
	}
	// The refusal ran no container.
	cs, err := stk.containers(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Labels[sandbox.LabelAttempt] == fmt.Sprint(n+1) {
			t.Errorf("a container ran for the declined attempt: %s", c.Name)
		}
	}
	// Staff find it in the Web UI by its search attribute.
	waitFor(t, 30*time.Second, "search attribute GradeflowStage=quarantined", func() (bool, error) {
		resp, err := stk.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf(`GradeflowStage="quarantined" AND WorkflowId=%q`, contract.WorkflowID(id))})
		return err == nil && len(resp.GetExecutions()) == 1, err
	})
	// The API: staff see the status and the runs; the portal cannot release.
	var view struct {
		store.Submission
		Runs []contract.Run `json:"runs"`
	}
	if code, err := getJSON(base, staffToken, "/v1/submissions/"+id, &view); err != nil || code != http.StatusOK ||
		view.Status != contract.StatusQuarantined || len(view.Runs) != n+1 || view.Runs[0].Worker != killed[0] {
		t.Errorf("staff view: %d %v status %s runs %+v", code, err, view.Status, view.Runs)
	}
	var held struct {
		Submissions []store.Submission `json:"submissions"`
	}
	if code, err := getJSON(base, staffToken, "/v1/submissions?status=quarantined", &held); err != nil || code != http.StatusOK ||
		!slices.ContainsFunc(held.Submissions, func(s store.Submission) bool { return s.ID == id }) {
		t.Errorf("staff listing of quarantined submissions: %d %v %+v, want %s in it", code, err, held.Submissions, id)
	}
	view.Runs = nil
	if code, err := getJSON(base, portalToken, "/v1/submissions/"+id, &view); err != nil || code != http.StatusOK || view.Runs != nil {
		t.Errorf("portal view: %d %v runs %+v, want no runs", code, err, view.Runs)
	}
	if code := post(t, base, portalToken, "/v1/submissions/"+id+"/release"); code != http.StatusForbidden {
		t.Errorf("portal release: %d, want 403", code)
	}
	// No further attempt while it is held: the fresh worker stays idle.
	time.Sleep(10 * time.Second)
	if sub, err = stk.store.Submission(ctx, id); err != nil || len(sub.Runs) != n+1 || sub.Status != contract.StatusQuarantined {
		t.Fatalf("after 10 s held: %d runs, status %s (%v)", len(sub.Runs), sub.Status, err)
	}

	released := time.Now()
	if code := post(t, base, staffToken, "/v1/submissions/"+id+"/release"); code != http.StatusAccepted {
		t.Fatalf("staff release: %d, want 202", code)
	}
	var res contract.Result
	if err := got.Run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.StatusGraded || res.Outcome != contract.OutcomePassed {
		t.Fatalf("after release: %s/%s, want graded/passed", res.Status, res.Outcome)
	}
	t.Logf("quarantined after %d worker deaths; graded %.1f s after the release", n, time.Since(released).Seconds())
	if sub, err = stk.store.Submission(ctx, id); err != nil {
		t.Fatal(err)
	}
	runs = sub.RunList()
	last := runs[len(runs)-1]
	if len(runs) != n+2 || last.End != contract.RunCompleted || last.Worker != freshID || last.ActivityID == runs[0].ActivityID || last.Attempt != 1 {
		t.Errorf("after release, runs %+v: want a new step's first attempt, completed by %s", runs, freshID)
	}
	if c := post(t, base, staffToken, "/v1/submissions/"+id+"/release"); c != http.StatusConflict {
		t.Errorf("release of a graded submission: %d, want 409", c)
	}
	// The history has every attempt: the completed step's result lists
	// them, workers and hosts included.
	exec := completedExecution(t, ctx, id)
	if len(exec.Runs) != n+2 || exec.Runs[0].Worker != killed[0] || exec.Runs[0].Host != host {
		t.Errorf("history: Execute result runs %+v, want all %d with their workers", exec.Runs, n+2)
	}
	if k := countCompleted(t, ctx, id, contract.ActivityExecute); k != 1 {
		t.Errorf("Execute completed %d times, want 1", k)
	}
	// And each attempt that ran signalled its worker and host as it
	// started, the dead ones included.
	signalled := runSignals(t, ctx, id)
	if len(signalled) != n+1 {
		t.Fatalf("history has %d run signals, want %d (the dead attempts and the last)", len(signalled), n+1)
	}
	for i, r := range signalled[:n] {
		if r.Worker != killed[i] || r.Host != host {
			t.Errorf("run signal %d: %+v, want worker %s on %s", i, r, killed[i], host)
		}
	}
	if last := signalled[n]; last.Worker != freshID {
		t.Errorf("last run signal %+v, want worker %s", last, freshID)
	}
	recordPath(t, ctx, id, "quarantined")
}

// TestSupersede: with the one execution slot busy, a student submits
// twice to an assignment with supersede on. The first of the two waits in
// the queue and is superseded by the second, at once (it leaves the queue
// before the busy job ends), never runs and is not graded; the second is
// graded. The student's job that was already running is not superseded.
func TestSupersede(t *testing.T) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	executeWorker.Terminate(30 * time.Second)
	defer restoreExecuteWorker(t)
	w, err := stk.startWorker(ctx, "worker-execute-one-slot-sup", "execute", "GRADEFLOW_EXECUTE_SLOTS=1")
	if err != nil {
		t.Fatal(err)
	}
	executeWorker = w

	name := "sup-" + randHex(3)
	putRushAssignment(t, ctx, name, true)
	dir := filepath.Join(stk.root, exampleDir)
	in := stk.intake()
	submitAs := func(id, files string) intake.Submitted {
		t.Helper()
		got, err := in.Submit(ctx, intake.Submission{ID: id, Assignment: name, Student: "sup-student", Files: readFiles(t, files)})
		if err != nil || !got.Created {
			t.Fatalf("submit %s: %v %v", id, got.Created, err)
		}
		return got
	}
	correct := filepath.Join(dir, "submissions/python-correct")
	running, older, newer := name+"-running", name+"-older", name+"-newer"
	gRunning := submitAs(running, filepath.Join(stk.root, "test/testdata/slow-correct"))
	stk.waitRunning(t, ctx, running)
	gOlder := submitAs(older, correct)
	waitFor(t, time.Minute, older+" queued", func() (bool, error) {
		s, err := stk.store.Submission(ctx, older)
		return err == nil && s.Stage == contract.StageQueued, err
	})
	supersededAt := time.Now()
	gNewer := submitAs(newer, correct)

	var rOlder contract.Result
	if err := gOlder.Run.Get(ctx, &rOlder); err != nil {
		t.Fatal(err)
	}
	if rOlder.Status != contract.StatusSuperseded || rOlder.Score != 0 {
		t.Errorf("older: %+v, want superseded, no score", rOlder.Grade)
	}
	runningSub, err := stk.store.Submission(ctx, running)
	if err != nil {
		t.Fatal(err)
	}
	if runningSub.Stage != contract.StageRunning {
		t.Errorf("the superseded one left the queue only after the running job ended (its stage %s)", runningSub.Stage)
	}
	for _, g := range []struct {
		run intake.Submitted
		id  string
	}{{gRunning, running}, {gNewer, newer}} {
		var r contract.Result
		if err := g.run.Run.Get(ctx, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != contract.StatusGraded || r.Outcome != contract.OutcomePassed {
			t.Errorf("%s: %s/%s, want graded/passed", g.id, r.Status, r.Outcome)
		}
	}
	s, err := stk.store.Submission(ctx, older)
	if err != nil {
		t.Fatal(err)
	}
	if s.Times.Completed != nil {
		t.Logf("the superseded submission was recorded %.0f ms after the newer one was submitted", s.Times.Completed.Sub(supersededAt).Seconds()*1000)
	}
	if s.Status != contract.StatusSuperseded || s.SupersededBy != newer || s.Stage != contract.StageDone || len(s.Runs) != 0 || s.Times.ExecuteStarted != nil {
		t.Errorf("older in the read model: status %s by %q stage %s runs %d started %v; want superseded by %s, never run",
			s.Status, s.SupersededBy, s.Stage, len(s.Runs), s.Times.ExecuteStarted, newer)
	}
	if k := countCompleted(t, ctx, older, contract.ActivityExecute); k != 0 {
		t.Errorf("older: Execute completed %d times, want 0", k)
	}
	recordPath(t, ctx, older, "superseded")
}

// recordPath replays a finished workflow's history against the current
// workflow code and, with GRADEFLOW_RECORD_HISTORIES=DIR, writes it to
// DIR/<name>.history.json, as TestWorkflowPaths does for the other paths.
func recordPath(t *testing.T, ctx context.Context, id, name string) {
	t.Helper()
	hist := history(t, ctx, id)
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Submission, workflow.RegisterOptions{Name: contract.WorkflowName})
	if err := r.ReplayWorkflowHistory(nil, hist); err != nil {
		t.Fatalf("replay %s: %v", name, err)
	}
	dir := os.Getenv("GRADEFLOW_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".history.json"), append(raw, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// putRushAssignment stores the wordcount example as assignment name, with
// supersede on or off, and a time limit that the slow test submission
// meets on a loaded machine.
func putRushAssignment(t *testing.T, ctx context.Context, name string, supersede bool) {
	t.Helper()
	putAssignmentCopy(t, ctx, name, func(a *contract.Assignment) { a.Supersede, a.TimeLimitSeconds = supersede, 120 })
}

// waitLogLine waits until one line of p's log contains every one of parts.
func waitLogLine(ctx context.Context, p *proc, parts ...string) error {
	for {
		if f, err := os.Open(p.LogPath); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line, all := sc.Text(), true
				for _, part := range parts {
					all = all && strings.Contains(line, part)
				}
				if all {
					_ = f.Close()
					return nil
				}
			}
			_ = f.Close()
		}
		if p.Exited() {
			return fmt.Errorf("%s exited before a line with %q:\n%s", p.Name, parts, p.Tail(3000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for a line with %q: %w", p.Name, parts, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// post POSTs to the API with no body and returns the status code.
func post(t *testing.T, base, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// runSignals decodes the SignalRun payloads in the submission's workflow
// history, in order.
func runSignals(t *testing.T, ctx context.Context, id string) []contract.Run {
	t.Helper()
	iter := stk.temporal.GetWorkflowHistory(ctx, contract.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []contract.Run
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == contract.SignalRun {
			var r contract.Run
			if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

// completedExecution decodes the result of the submission's completed
// Execute step from its workflow history.
func completedExecution(t *testing.T, ctx context.Context, id string) contract.Execution {
	t.Helper()
	results := completedResults(t, ctx, id, contract.ActivityExecute)
	if len(results) == 0 {
		t.Fatalf("no completed Execute in the history of %s", id)
	}
	var exec contract.Execution
	if err := converter.GetDefaultDataConverter().FromPayloads(results[0], &exec); err != nil {
		t.Fatal(err)
	}
	return exec
}
