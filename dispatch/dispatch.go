// Package dispatch models the order in which the Temporal server hands
// the execute queue's tasks to free slots: by priority (live before
// regrade), then, with fair dispatch, by the fair matcher's pass per
// fairness key, then by arrival. The API counts a submission's position
// and ETA with it; an execute host's prefetcher picks the submissions it
// fetches ahead with it.
package dispatch

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// Mode is how the Temporal server hands the execute queue's tasks to free
// slots: GRADEFLOW_FAIRNESS, which deploy/dev/temporal.sh, the API and the
// workers read, says which.
type Mode int

const (
	// Fair: by priority, then round robin between fairness keys (the fair
	// matcher, GRADEFLOW_FAIRNESS=on).
	Fair Mode = iota
	// FIFO: by priority, then first come, first served
	// (GRADEFLOW_FAIRNESS=off: the priority matcher without fairness).
	FIFO
)

// String names the mode as logs and test names show it.
func (m Mode) String() string {
	if m == FIFO {
		return "fifo"
	}
	return "fair"
}

// ParseFairness reads a GRADEFLOW_FAIRNESS value: "on" (or empty) is Fair,
// "off" is FIFO; ok is false for anything else.
func ParseFairness(v string) (m Mode, ok bool) {
	switch v {
	case "", "on":
		return Fair, true
	case "off":
		return FIFO, true
	}
	return Fair, false
}

// Phase is where a task is on its way to the execute queue.
type Phase int

// Arrival phases of a task in the model: in the execute queue now, still
// before it (submitted or in its sanity check: it queues later, in
// submission order), or a submission not made yet.
const (
	PhaseQueued Phase = iota
	PhasePreQueue
	PhaseNew
)

// Task is one execute task as the dispatch model sees it.
type Task struct {
	ID       string
	Priority int       // Temporal priority key: 1 goes first
	Key      string    // fairness key
	Phase    Phase     // PhaseQueued, PhasePreQueue or PhaseNew
	At       time.Time // when it queued (PhaseQueued) or was submitted
	Pass     int64     // its pass on the server, as a PassBook follows it
}

// TaskOf is the execute task of a waiting submission: its priority and
// fairness key are those contract.PriorityOf gives its workflow, which
// its activities inherit.
func TaskOf(w store.Waiting) Task {
	p := contract.PriorityOf(contract.Input{SubmissionID: w.ID, Assignment: w.Assignment, Student: w.Student, Lane: w.Lane})
	t := Task{ID: w.ID, Priority: p.PriorityKey, Key: p.FairnessKey, Phase: PhasePreQueue, At: w.Submitted}
	if w.Stage == contract.StageQueued {
		t.Phase, t.At = PhaseQueued, w.Queued
	}
	return t
}

// arrival orders tasks as they reach the execute queue: those queued, by
// queue time; then those before the queue, by submission time; then new
// ones. The ID breaks ties, as the server's task IDs do.
func arrival(a, b Task) int {
	return cmp.Or(cmp.Compare(a.Phase, b.Phase), a.At.Compare(b.At), cmp.Compare(a.ID, b.ID))
}

// PassBook follows the fair matcher's pass counter (server 1.29,
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
type PassBook struct {
	mu     sync.Mutex
	at     time.Time           // of the latest snapshot observed
	base   map[int]int64       // by priority: the pass dispatched up to
	last   map[string]lastPass // by fairness key: its latest task's pass
	queued map[string]Task     // by ID: the queued tasks seen, with their passes
}

// lastPass is the pass of a fairness key's latest task, in its priority.
type lastPass struct {
	pass     int64
	priority int
}

// NewPassBook returns a book that has seen no dispatches yet.
func NewPassBook() *PassBook {
	return &PassBook{base: map[int]int64{}, last: map[string]lastPass{}, queued: map[string]Task{}}
}

// Assign returns tasks, in arrival order, each with its pass. With
// observe, tasks is the queue as a snapshot taken at at saw it: every
// queued task the book knew and tasks lacks was dispatched, and the new
// queued ones take their passes for good. A snapshot older than one
// observed already is not (two measurements can end out of order), nor is
// a request's own read of the queue. Tasks the book does not keep (before
// the queue, not made yet, or not observed) get the pass they would get
// if they queued next.
func (b *PassBook) Assign(tasks []Task, at time.Time, observe bool) []Task {
	b.mu.Lock()
	defer b.mu.Unlock()
	observe = observe && !at.Before(b.at)
	if observe {
		b.at = at
		now := make(map[string]bool, len(tasks))
		for _, t := range tasks {
			if t.Phase == PhaseQueued {
				now[t.ID] = true
			}
		}
		for id, t := range b.queued {
			if !now[id] {
				b.base[t.Priority] = max(b.base[t.Priority], t.Pass)
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
		if known, ok := b.queued[t.ID]; ok && t.Phase == PhaseQueued {
			out[i].Pass = known.Pass
			continue
		}
		last, ok := tentative[t.Key]
		if !ok {
			last = b.last[t.Key].pass
		}
		t.Pass = max(b.base[t.Priority], last+1)
		out[i] = t
		if observe && t.Phase == PhaseQueued {
			b.last[t.Key] = lastPass{pass: t.Pass, priority: t.Priority}
			b.queued[t.ID] = t
		} else {
			tentative[t.Key] = t.Pass
		}
	}
	return out
}

// Order returns tasks in the order the server dispatches them:
// by priority, then pass (fair; the passes a PassBook assigned), then
// arrival.
func Order(mode Mode, tasks []Task) []Task {
	out := slices.Clone(tasks)
	slices.SortFunc(out, func(a, b Task) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		if mode == Fair {
			if c := cmp.Compare(a.Pass, b.Pass); c != 0 {
				return c
			}
		}
		return arrival(a, b)
	})
	return out
}

// Ahead counts the tasks dispatched before the one with id, in all and
// those of them that are queued now; ok is false when id is not in tasks.
func Ahead(mode Mode, tasks []Task, id string) (all, queued int64, ok bool) {
	for _, t := range Order(mode, tasks) {
		if t.ID == id {
			return all, queued, true
		}
		all++
		if t.Phase == PhaseQueued {
			queued++
		}
	}
	return 0, 0, false
}

// Next returns the first n of tasks in the order the server dispatches
// them, as a reader that sees one snapshot of the queue and follows no
// dispatches forecasts it: under fair dispatch a fresh book gives the
// passes, by rank among each fairness key's tasks.
func Next(mode Mode, tasks []Task, n int) []Task {
	if mode == Fair {
		tasks = NewPassBook().Assign(tasks, time.Time{}, false)
	}
	out := Order(mode, tasks)
	return out[:min(n, len(out))]
}
