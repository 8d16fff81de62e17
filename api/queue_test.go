//go:build stack

package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// TestQueue seeds a known queue and checks the measurements and the ETA
// model against numbers worked out by hand, with the server's dispatch
// fair between students and without (GRADEFLOW_FAIRNESS=off).
func TestQueue(t *testing.T) {
	for _, fairness := range []string{"on", "off"} {
		t.Run("fairness "+fairness, func(t *testing.T) { testQueue(t, fairness) })
	}
}

func testQueue(t *testing.T, fairness string) {
	cfg := testConfig()
	cfg.Fairness = fairness
	e := newEnv(t, &cfg, nil)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }

	// Workers: 3 + 1 fresh slots; a stale worker's 5 do not count.
	for _, b := range []struct {
		id    string
		slots int
		seen  time.Duration
	}{{"w1", 3, -time.Second}, {"w2", 1, -10 * time.Second}, {"w3", 5, -5 * time.Minute}} {
		if err := e.store.HeartbeatWorker(ctx, store.WorkerBeat{Identity: b.id, Queue: "execute", Slots: b.slots}, now.Add(b.seen)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.HeartbeatWorker(ctx, store.WorkerBeat{Identity: "w1", Queue: "sanity", Slots: 8}, now); err != nil {
		t.Fatal(err)
	}

	// Documents are inserted as they stood before execution; executions
	// then go through the store's own stage marks, which keep the
	// executions collection the statistics are measured from.
	var docs []any
	type run struct {
		id         string
		start, end *time.Time // end nil: still running
	}
	var runs []run
	student := func(id string) string {
		if id == "q3" {
			return "t"
		}
		return "s"
	}
	lane := func(id string) string {
		if strings.HasPrefix(id, "rg") {
			return contract.LaneRegrade
		}
		return ""
	}
	add := func(id string, stage contract.Stage, times store.Times) {
		if times.ExecuteStarted != nil {
			runs = append(runs, run{id: id, start: times.ExecuteStarted, end: times.ExecuteEnded})
			stage, times.ExecuteStarted, times.ExecuteEnded = contract.StageQueued, nil, nil
		}
		docs = append(docs, store.Submission{ID: id, Assignment: "wc", Student: student(id), Stage: stage, Status: contract.StatusPending, Times: times, Lane: lane(id)})
	}
	// Queued: three, oldest first, the third another student's; running: two.
	add("q1", contract.StageQueued, store.Times{Submitted: at(-2 * time.Minute), Queued: at(-50 * time.Second)})
	add("q2", contract.StageQueued, store.Times{Submitted: at(-2 * time.Minute), Queued: at(-40 * time.Second)})
	add("q3", contract.StageQueued, store.Times{Submitted: at(-2 * time.Minute), Queued: at(-30 * time.Second)})
	add("r1", contract.StageRunning, store.Times{Submitted: at(-3 * time.Minute), Queued: at(-2 * time.Minute), ExecuteStarted: at(-time.Minute)})
	add("r2", contract.StageRunning, store.Times{Submitted: at(-3 * time.Minute), Queued: at(-2 * time.Minute), ExecuteStarted: at(-time.Minute)})
	add("s1", contract.StageSubmitted, store.Times{Submitted: at(-time.Second)})
	// Five executions in the window: runs 10..50 s (median 30), waits
	// 5,5,10,10,20 s (median 10), sanity 2 s each, 3 s from submission
	// to the queue (r1 and r2 took 60 s: the median is 3 s).
	waits := []time.Duration{5, 5, 10, 10, 20}
	for i, run := range []time.Duration{10, 20, 30, 40, 50} {
		end := -time.Duration(i+1) * time.Minute
		start := end - run*time.Second
		queued := start - waits[i]*time.Second
		add("d"+string(rune('1'+i)), contract.StageDone, store.Times{
			Submitted: at(queued - 3*time.Second), SanityStarted: at(queued - 2*time.Second), Queued: at(queued), ExecuteStarted: at(start), ExecuteEnded: at(end),
		})
	}
	// Two regrades (a regrade-all's burst): 40 s from submission to the
	// queue, 35 s of it in their sanity step's queue. They run 30 s after
	// a 10 s wait, so the run and wait medians stay, but they measure
	// nothing of a live submission's way to the queue: the live medians
	// stay 2 s and 3 s.
	for i := range 2 {
		end := -time.Duration(6+i) * time.Minute
		start := end - 30*time.Second
		queued := start - 10*time.Second
		add(fmt.Sprintf("rg%d", i), contract.StageDone, store.Times{
			Submitted: at(queued - 40*time.Second), SanityStarted: at(queued - 35*time.Second), Queued: at(queued), ExecuteStarted: at(start), ExecuteEnded: at(end),
		})
	}
	// One outside the window.
	add("old", contract.StageDone, store.Times{Queued: at(-32 * time.Minute), ExecuteStarted: at(-31 * time.Minute), ExecuteEnded: at(-30 * time.Minute)})
	if _, err := e.store.DB().Collection(store.SubmissionsCollection).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if err := e.store.MarkStage(ctx, r.id, store.Mark{Stage: contract.StageRunning, Activity: "execute", Attempt: 1, At: *r.start}); err != nil {
			t.Fatal(err)
		}
		if r.end == nil {
			continue
		}
		if err := e.store.MarkExecuteEnded(ctx, r.id, *r.end); err != nil {
			t.Fatal(err)
		}
		if err := e.store.Record(ctx, r.id, store.Submission{}, contract.Grade{Status: contract.StatusGraded, Outcome: contract.OutcomePassed}, *r.end); err != nil {
			t.Fatal(err)
		}
	}

	// By hand, playing the queue forward: S=4 slots, r=30 s; r1 and r2
	// started 60 s ago, past the median run, so their slots free now: all
	// four are free. FIFO: a new submission has the 3 queued and s1 (still
	// in its sanity check) ahead, who take the four slots: it starts when
	// the first frees, at 30 s, and is graded at 60 s. Fair: a new
	// student's submission goes after the first of s's and t's only (q1,
	// q3), and would take the third free slot at once, but is 3 s from the
	// queue (the median): it starts at 3 s and is graded at 33 s.
	r := e.get(portalToken, "/v1/queue")
	if r.status != http.StatusOK {
		t.Fatalf("queue: %d %s", r.status, r.body)
	}
	q := r.json(t)
	want := map[string]any{
		"queued": 3.0, "running": 2.0, "execution_slots": 4.0, "execute_workers": 2.0, "slots_source": "heartbeats",
		"throughput_per_minute": 0.7, "median_wait_seconds": 10.0, "median_run_seconds": 30.0, "median_sanity_seconds": 2.0, "median_prequeue_seconds": 3.0,
		"eta_seconds_for_new": 60.0, "start_eta_seconds_for_new": 30.0, "window_seconds": 600.0, "execute_pollers": 0.0,
	}
	if fairness == "on" {
		want["eta_seconds_for_new"], want["start_eta_seconds_for_new"] = 33.0, 3.0
	}
	for k, v := range want {
		if q[k] != v {
			t.Errorf("%s = %v, want %v", k, q[k], v)
		}
	}

	// Positions: q1, q2 and q3 each find a free slot: graded in 30 s.
	// s1 has not reached the queue: all 3 ahead; submitted 1 s ago, it
	// queues in 2 s (the median 3 s less its age): 32 s.
	// Fair, t's q3 goes before s's second, q2.
	positions := map[string]float64{"q1": 0, "q2": 1, "q3": 2, "s1": 3}
	if fairness == "on" {
		positions["q2"], positions["q3"] = 2, 1
	}
	for _, tt := range []struct {
		id  string
		pos float64
		eta float64
	}{{"q1", positions["q1"], 30}, {"q2", positions["q2"], 30}, {"q3", positions["q3"], 30}, {"s1", positions["s1"], 32}} {
		m := e.get(portalToken, "/v1/submissions/"+tt.id).json(t)
		// s1's age grows as the test runs: a second's tolerance.
		eta, _ := m["eta_seconds"].(float64)
		if m["position"] != tt.pos || math.Abs(eta-tt.eta) > 1 {
			t.Errorf("%s: position %v eta %v, want %v and %v", tt.id, m["position"], m["eta_seconds"], tt.pos, tt.eta)
		}
	}
	if m := e.get(portalToken, "/v1/submissions/r1").json(t); m["position"] != nil || m["eta_seconds"] != nil {
		t.Errorf("running submission has a position: %v", m)
	}
}
