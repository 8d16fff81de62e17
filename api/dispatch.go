package main

import (
	"cmp"
	"slices"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// dispatchMode is how the Temporal server hands the execute queue's tasks
// to free slots: GRADEFLOW_FAIRNESS, which deploy/dev/temporal.sh and the
// API both read, says which.
type dispatchMode int

const (
	// dispatchFair: by priority, then round robin between fairness keys
	// (the fair matcher, GRADEFLOW_FAIRNESS=on).
	dispatchFair dispatchMode = iota
	// dispatchFIFO: by priority, then first come, first served
	// (GRADEFLOW_FAIRNESS=off: the priority matcher without fairness).
	dispatchFIFO
)

func (m dispatchMode) String() string {
	if m == dispatchFIFO {
		return "fifo"
	}
	return "fair"
}

// Arrival phases of a task in the model: in the execute queue now, still
// before it (submitted or in its sanity check: it queues later, in
// submission order), or a submission not made yet.
const (
	phaseQueued = iota
	phasePreQueue
	phaseNew
)

// task is one execute task as the dispatch model sees it.
type task struct {
	id       string
	priority int       // Temporal priority key: 1 goes first
	key      string    // fairness key
	phase    int       // phaseQueued, phasePreQueue or phaseNew
	at       time.Time // when it queued (phaseQueued) or was submitted
}

// taskOf is the execute task of a waiting submission: its priority and
// fairness key are those contract.PriorityOf gives its workflow, which
// its activities inherit.
func taskOf(w store.Waiting) task {
	p := contract.PriorityOf(contract.Input{SubmissionID: w.ID, Assignment: w.Assignment, Student: w.Student, Lane: w.Lane})
	t := task{id: w.ID, priority: p.PriorityKey, key: p.FairnessKey, phase: phasePreQueue, at: w.Submitted}
	if w.Stage == contract.StageQueued {
		t.phase, t.at = phaseQueued, w.Queued
	}
	return t
}

// arrival orders tasks as they reach the execute queue: those queued, by
// queue time; then those before the queue, by submission time; then new
// ones. The ID breaks ties, as the server's task IDs do.
func arrival(a, b task) int {
	return cmp.Or(cmp.Compare(a.phase, b.phase), a.at.Compare(b.at), cmp.Compare(a.id, b.id))
}

// dispatchOrder returns tasks in the order the server dispatches them.
//
// The model of the fair matcher (server 1.29, service/matching: the fair
// task writer's pickPasses and its counter): each task gets a pass when it
// is written, pass = max(base, last pass of its fairness key + 1), base
// being the pass the queue has dispatched up to, and the backlog is read
// in (priority, pass, task ID) order. So a key's waiting tasks hold
// consecutive passes from the current one, and the queue deals one task
// per key per pass: the k-th waiting task of a student goes after every
// task of a higher priority, after the first k-1 waiting tasks of every
// key, and after the k-th tasks that arrived before it. That is the order
// here: (priority, rank within its key, arrival). Without fairness it is
// (priority, arrival).
//
// Where the model is not exact: tasks already dispatched in the current
// pass are not known to it, so a key that has had its turn in this pass
// has its next task one pass later on the server than its rank says; and
// tasks that arrive later with a lower rank will still go ahead, which no
// model of the waiting tasks can know. A burst that waits for a slot
// (test/fairness_test.go) is exact.
func dispatchOrder(mode dispatchMode, tasks []task) []task {
	out := slices.Clone(tasks)
	slices.SortFunc(out, arrival)
	rank := make(map[string]int, len(out))
	ranks := make(map[string]int, len(out)) // by task ID
	for _, t := range out {
		rank[t.key]++
		ranks[t.id] = rank[t.key]
	}
	slices.SortStableFunc(out, func(a, b task) int {
		if c := cmp.Compare(a.priority, b.priority); c != 0 {
			return c
		}
		if mode == dispatchFair {
			return cmp.Compare(ranks[a.id], ranks[b.id])
		}
		return 0
	})
	return out
}

// ahead counts the tasks dispatched before the one with id, in all and
// those of them that are queued now; ok is false when id is not in tasks.
func ahead(mode dispatchMode, tasks []task, id string) (all, queued int64, ok bool) {
	for _, t := range dispatchOrder(mode, tasks) {
		if t.id == id {
			return all, queued, true
		}
		all++
		if t.phase == phaseQueued {
			queued++
		}
	}
	return 0, 0, false
}
