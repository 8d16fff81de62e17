//go:build stack

package test

import (
	"context"
	"fmt"
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
// submission. Once all 10 execute tasks wait in the task queue's backlog,
// one execute worker with ONE slot starts, and the order in which the jobs
// started (times.execute_started, one slot so one at a time) is checked:
// B, C and D start before A's later ones, and the regrade starts last.
func TestFairDispatchOrder(t *testing.T) {
	executeMu.Lock()
	defer executeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// No execute worker while the burst queues up.
	executeWorker.Terminate(30 * time.Second)
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer rcancel()
		w, err := stk.startWorker(rctx, "worker-execute-after-fairness", "execute")
		if err != nil {
			t.Errorf("restore the execute worker: %v", err)
			return
		}
		executeWorker = w
	}()

	files := readFiles(t, filepath.Join(stk.root, exampleDir, "submissions/python-correct"))
	run := "fair-" + randHex(3)
	type job struct {
		id, who string
		run     client.WorkflowRun
	}
	var jobs []job
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
		}
	}
	live("A", 6)
	live("B", 1)
	live("C", 1)
	live("D", 1)
	// The regrade lane: started as a regrade is, with Lane set.
	rid := run + "-R1"
	stageFiles(t, ctx, rid, files)
	jobs = append(jobs, job{id: rid, who: "R", run: startWorkflow(t, ctx, contract.Input{
		SubmissionID: rid, Assignment: "wordcount", Student: "paths", Lane: contract.LaneRegrade,
	})})

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
		who string
		at  time.Time
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
		starts = append(starts, start{who: j.who, at: *sub.Times.ExecuteStarted})
	}
	sort.SliceStable(starts, func(a, b int) bool { return starts[a].at.Before(starts[b].at) })
	order := make([]string, len(starts))
	for i, s := range starts {
		order[i] = s.who
	}
	got := strings.Join(order, " ")
	t.Logf("start order: %s", got)

	// Fair: B, C and D are among the first four to start (A gets at most
	// one turn before them), so A's 2nd to 6th wait behind them.
	first := strings.Join(order[:4], "")
	for _, who := range []string{"B", "C", "D"} {
		if !strings.Contains(first, who) {
			t.Errorf("start order %q: %s did not start before A's later submissions", got, who)
		}
	}
	// Priority: the regrade lane goes last.
	if order[len(order)-1] != "R" {
		t.Errorf("start order %q: the regrade did not start last", got)
	}
}
