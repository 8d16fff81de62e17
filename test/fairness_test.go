//go:build stack

package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
)

// TestFairDispatchOrder checks that the Temporal server dispatches execute
// tasks by priority, then fairly between students, not first come, first
// served. The execute worker is stopped while a burst is queued: student A
// submits 6, then B, C and D submit one each, then one regrade-lane
// submission, each once the one before has queued. Once all 10 execute tasks wait in the task queue's backlog,
// one execute worker with ONE slot starts, and the order in which the jobs
// started (times.execute_started, one slot so one at a time) is checked:
// B, C and D start before A's later ones, and the regrade starts last.
// Before the slot opens, the API reports each submission's queue
// position: they must be the order the jobs then start in (fairness off,
// GRADEFLOW_FAIRNESS=off, the order is FIFO and the positions follow it).
func TestFairDispatchOrder(t *testing.T) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// No execute worker while the burst queues up.
	executeWorker.Terminate(30 * time.Second)
	defer restoreExecuteWorker(t)

	files := readFiles(t, filepath.Join(stk.root, exampleDir, "submissions/python-correct"))
	run := "fair-" + randHex(3)
	type job struct {
		id, who string
		run     client.WorkflowRun
	}
	var jobs []job
	// Each is submitted once the one before has queued: the model orders
	// by the queue time the read model has, which two sanity checks that
	// end in the same instant could invert against the server's task order.
	waitQueued := func(id string) {
		waitFor(t, 2*time.Minute, id+" queued", func() (bool, error) {
			sub, err := stk.store.Submission(ctx, id)
			return err == nil && sub.Stage == contract.StageQueued, err
		})
	}
	live := func(student string, n int) {
		for i := range n {
			id := fmt.Sprintf("%s-%s%d", run, student, i+1)
			got, err := stk.intake().Submit(ctx, intake.Submission{
				ID: id, Assignment: "wordcount", Student: run + "-" + student, Files: files,
			})
			if err != nil || !got.Created {
				t.Fatalf("submit %s: created %v, %v", id, got.Created, err)
			}
			jobs = append(jobs, job{id: id, who: student, run: got.Run})
			waitQueued(id)
		}
	}
	live("A", 6)
	live("B", 1)
	live("C", 1)
	live("D", 1)
	// The regrade lane: submitted as a regrade-all submits, with Lane set.
	rid := run + "-R1"
	got, err := stk.intake().Submit(ctx, intake.Submission{
		ID: rid, Assignment: "wordcount", Student: run + "-A", Files: files, Lane: contract.LaneRegrade,
	})
	if err != nil || !got.Created {
		t.Fatalf("submit %s: created %v, %v", rid, got.Created, err)
	}
	jobs = append(jobs, job{id: rid, who: "R", run: got.Run})
	waitQueued(rid)

	// Every execute task must wait in the backlog before a slot opens,
	// or the first one to arrive is simply matched to the waiting poller.
	waitFor(t, 3*time.Minute, "all 10 execute activities scheduled", func() (bool, error) {
		for _, j := range jobs {
			d, err := stk.temporal.DescribeWorkflowExecution(ctx, contract.WorkflowID(j.id), "")
			if err != nil {
				return false, err
			}
			scheduled := false
			for _, a := range d.GetPendingActivities() {
				if a.GetActivityType().GetName() == contract.ActivityExecute && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_SCHEDULED {
					scheduled = true
				}
			}
			if !scheduled {
				return false, fmt.Errorf("%s: execute not scheduled yet", j.id)
			}
		}
		return true, nil
	})
	waitFor(t, time.Minute, "10 execute tasks in the backlog", func() (bool, error) {
		desc, err := stk.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace:     "default",
			TaskQueue:     &taskqueuepb.TaskQueue{Name: contract.TaskQueueExecute, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: enumspb.TASK_QUEUE_TYPE_ACTIVITY,
			ReportStats:   true,
		})
		if err != nil {
			return false, err
		}
		backlog := desc.GetStats().GetApproximateBacklogCount()
		if backlog < int64(len(jobs)) {
			return false, fmt.Errorf("backlog %d", backlog)
		}
		return true, nil
	})

	// The positions the API reports while they wait.
	base := api(t)
	positions := map[string]int64{}
	for _, j := range jobs {
		var v struct {
			Stage    contract.Stage `json:"stage"`
			Position *int64         `json:"position"`
		}
		if code, err := getJSON(base, portalToken, "/v1/submissions/"+j.id, &v); err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", j.id, code, err)
		}
		if v.Stage != contract.StageQueued || v.Position == nil {
			t.Fatalf("%s: stage %s, position %v; want queued with a position", j.id, v.Stage, v.Position)
		}
		positions[j.id] = *v.Position
	}

	// Stopped before the deferred restore: a worker left polling would
	// take later tests' execute tasks (and their retries) from the one
	// they watch.
	oneSlot, err := stk.startWorker(ctx, "worker-execute-one-slot", "execute", "GRADEFLOW_EXECUTE_SLOTS=1")
	if err != nil {
		t.Fatal(err)
	}
	defer oneSlot.Terminate(30 * time.Second)
	for _, j := range jobs {
		var res contract.Result
		if err := j.run.Get(ctx, &res); err != nil {
			t.Fatalf("grade %s: %v", j.id, err)
		}
		if res.Outcome != contract.OutcomePassed {
			t.Fatalf("%s: outcome %s, want passed", j.id, res.Outcome)
		}
	}

	// The order the jobs started in.
	type start struct {
		id, who string
		at      time.Time
	}
	var starts []start
	for _, j := range jobs {
		sub, err := stk.store.Submission(ctx, j.id)
		if err != nil {
			t.Fatal(err)
		}
		if sub.Times.ExecuteStarted == nil {
			t.Fatalf("%s has no execute start time", j.id)
		}
		starts = append(starts, start{id: j.id, who: j.who, at: *sub.Times.ExecuteStarted})
		t.Logf("%s: queued %s, position %d, started %s", j.id, sub.Times.Queued.Format("15:04:05.000"), positions[j.id], sub.Times.ExecuteStarted.Format("15:04:05.000"))
	}
	sort.SliceStable(starts, func(a, b int) bool { return starts[a].at.Before(starts[b].at) })
	order := make([]string, len(starts))
	for i, s := range starts {
		order[i] = s.who
	}
	startOrder := strings.Join(order, " ")
	t.Logf("start order: %s", startOrder)

	// Each reported position is the number of jobs that started before it.
	for i, st := range starts {
		if positions[st.id] != int64(i) {
			t.Errorf("%s (%s) started %d-th but was reported at position %d", st.id, st.who, i, positions[st.id])
		}
	}
	if os.Getenv("GRADEFLOW_FAIRNESS") == "off" {
		// FIFO: they start in submission order (priority still first).
		if want := "A A A A A A B C D R"; startOrder != want {
			t.Errorf("start order %q without fairness, want %q", startOrder, want)
		}
		return
	}

	// Fair: B, C and D are among the first four to start (A gets at most
	// one turn before them), so A's 2nd to 6th wait behind them.
	first := strings.Join(order[:4], "")
	for _, who := range []string{"B", "C", "D"} {
		if !strings.Contains(first, who) {
			t.Errorf("start order %q: %s did not start before A's later submissions", startOrder, who)
		}
	}
	// Priority: the regrade lane goes last.
	if order[len(order)-1] != "R" {
		t.Errorf("start order %q: the regrade did not start last", startOrder)
	}
}
