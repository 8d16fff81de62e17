package main

import (
	"cmp"
	"slices"
	"sync"
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
	pass     int64     // its pass on the server, as a passBook follows it
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

// passBook follows the fair matcher's pass counter (server 1.29,
// service/matching: the fair task writer's pickPasses and its map
// counter). When the server writes a task to the backlog it gives it
// pass = max(base, last pass of its fairness key + 1), base being the
// pass its priority's backlog has dispatched up to, and it reads the
// backlog in (priority, pass, task ID) order. So a student's waiting
// tasks hold consecutive passes and the queue deals one task per student
// per pass; a student who has had a turn in the current pass has the
// next one a pass later; a student with nothing waiting joins the
// current pass, behind those waiting in it.
//
// The book replays that from the API's snapshots of the queue: a task
// queued since the last one gets its pass by the same rule, in queue
// order; a task gone from the queue was dispatched, which moves base up
// to its pass. Tasks still before the queue (and a submission not made
// yet) get the pass they would get, without being kept. A fresh book (the
// API just started) has seen no dispatches, so it assigns passes by rank
// among each student's waiting tasks; it is exact for a burst that waits
// for a slot (test/fairness_test.go).
//
// Where it is not exact: between two snapshots it applies the
// dispatches before the arrivals; a task matched to an idle slot at once
// takes no pass on the server, but one the book saw queued does; and
// tasks that arrive later with a lower pass still go ahead, which no
// model of the waiting tasks can know.
type passBook struct {
	mu     sync.Mutex
	at     time.Time           // of the latest snapshot observed
	base   map[int]int64       // by priority: the pass dispatched up to
	last   map[string]lastPass // by fairness key: its latest task's pass
	queued map[string]task     // by ID: the queued tasks seen, with their passes
}

// lastPass is the pass of a fairness key's latest task, in its priority.
type lastPass struct {
	pass     int64
	priority int
}

func newPassBook() *passBook {
	return &passBook{base: map[int]int64{}, last: map[string]lastPass{}, queued: map[string]task{}}
}

// assign returns tasks, in arrival order, each with its pass. With
// observe, tasks is the queue as a snapshot taken at at saw it: every
// queued task the book knew and tasks lacks was dispatched, and the new
// queued ones take their passes for good. A snapshot older than one
// observed already is not (two measurements can end out of order), nor is
// a request's own read of the queue. Tasks the book does not keep (before
// the queue, not made yet, or not observed) get the pass they would get
// if they queued next.
func (b *passBook) assign(tasks []task, at time.Time, observe bool) []task {
	b.mu.Lock()
	defer b.mu.Unlock()
	observe = observe && !at.Before(b.at)
	if observe {
		b.at = at
		now := make(map[string]bool, len(tasks))
		for _, t := range tasks {
			if t.phase == phaseQueued {
				now[t.id] = true
			}
		}
		for id, t := range b.queued {
			if !now[id] {
				b.base[t.priority] = max(b.base[t.priority], t.pass)
				delete(b.queued, id)
			}
		}
		for k, l := range b.last { // behind base: as good as unseen
			if l.pass < b.base[l.priority] {
				delete(b.last, k)
			}
		}
	}
	out := slices.Clone(tasks)
	slices.SortFunc(out, arrival)
	tentative := map[string]int64{} // latest passes of the tasks not kept
	for i, t := range out {
		if known, ok := b.queued[t.id]; ok && t.phase == phaseQueued {
			out[i].pass = known.pass
			continue
		}
		last, ok := tentative[t.key]
		if !ok {
			last = b.last[t.key].pass
		}
		t.pass = max(b.base[t.priority], last+1)
		out[i] = t
		if observe && t.phase == phaseQueued {
			b.last[t.key] = lastPass{pass: t.pass, priority: t.priority}
			b.queued[t.id] = t
		} else {
			tentative[t.key] = t.pass
		}
	}
	return out
}

// dispatchOrder returns tasks in the order the server dispatches them:
// by priority, then pass (fair; the passes a passBook assigned), then
// arrival.
func dispatchOrder(mode dispatchMode, tasks []task) []task {
	out := slices.Clone(tasks)
	slices.SortFunc(out, func(a, b task) int {
		if c := cmp.Compare(a.priority, b.priority); c != 0 {
			return c
		}
		if mode == dispatchFair {
			if c := cmp.Compare(a.pass, b.pass); c != 0 {
				return c
			}
		}
		return arrival(a, b)
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
