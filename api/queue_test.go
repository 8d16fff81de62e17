package main

import (
	"context"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// TestQueue seeds a known queue and checks the measurements and the ETA
// model against numbers worked out by hand.
func TestQueue(t *testing.T) {
	e := newEnv(t, nil, nil)
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

	var docs []any
	add := func(id string, stage contract.Stage, times store.Times) {
		docs = append(docs, store.Submission{ID: id, Assignment: "wc", Student: "s", Stage: stage, Status: contract.StatusPending, Times: times})
	}
	// Queued: three, oldest first; running: two.
	add("q1", contract.StageQueued, store.Times{Submitted: at(-2 * time.Minute), Queued: at(-50 * time.Second)})
	add("q2", contract.StageQueued, store.Times{Submitted: at(-2 * time.Minute), Queued: at(-40 * time.Second)})
	add("q3", contract.StageQueued, store.Times{Submitted: at(-2 * time.Minute), Queued: at(-30 * time.Second)})
	add("r1", contract.StageRunning, store.Times{Submitted: at(-3 * time.Minute), Queued: at(-2 * time.Minute), ExecuteStarted: at(-time.Minute)})
	add("r2", contract.StageRunning, store.Times{Submitted: at(-3 * time.Minute), Queued: at(-2 * time.Minute), ExecuteStarted: at(-time.Minute)})
	add("s1", contract.StageSubmitted, store.Times{Submitted: at(-time.Second)})
	// Five executions in the window: runs 10..50 s (median 30), waits
	// 5,5,10,10,20 s (median 10), sanity 2 s each.
	waits := []time.Duration{5, 5, 10, 10, 20}
	for i, run := range []time.Duration{10, 20, 30, 40, 50} {
		end := -time.Duration(i+1) * time.Minute
		start := end - run*time.Second
		queued := start - waits[i]*time.Second
		add("d"+string(rune('1'+i)), contract.StageDone, store.Times{
			SanityStarted: at(queued - 2*time.Second), Queued: at(queued), ExecuteStarted: at(start), ExecuteEnded: at(end),
		})
	}
	// One outside the window.
	add("old", contract.StageDone, store.Times{Queued: at(-32 * time.Minute), ExecuteStarted: at(-31 * time.Minute), ExecuteEnded: at(-30 * time.Minute)})
	if _, err := e.store.DB().Collection(store.SubmissionsCollection).InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	// By hand, playing the queue forward: S=4 slots, r=30 s; r1 and r2
	// started 60 s ago, past the median run, so their slots free now: all
	// four are free. A new submission has the 3 queued and s1 (still in
	// its sanity check) ahead, who take the four slots: it starts when the
	// first frees, at 30 s, and is graded at 60 s. s1 itself has 3 ahead.
	r := e.get(portalToken, "/v1/queue")
	if r.status != http.StatusOK {
		t.Fatalf("queue: %d %s", r.status, r.body)
	}
	q := r.json(t)
	want := map[string]any{
		"queued": 3.0, "running": 2.0, "execution_slots": 4.0, "execute_workers": 2.0, "slots_source": "heartbeats",
		"throughput_per_minute": 0.5, "median_wait_seconds": 10.0, "median_run_seconds": 30.0, "median_sanity_seconds": 2.0,
		"eta_seconds_for_new": 60.0, "start_eta_seconds_for_new": 30.0, "window_seconds": 600.0, "execute_pollers": 0.0,
	}
	for k, v := range want {
		if q[k] != v {
			t.Errorf("%s = %v, want %v", k, q[k], v)
		}
	}

	// Positions: q1, q2 and q3 each find a free slot: graded in 30 s.
	// s1 has not reached the queue: all 3 ahead, then its sanity: 32 s.
	for _, tt := range []struct {
		id  string
		pos float64
		eta float64
	}{{"q1", 0, 30}, {"q2", 1, 30}, {"q3", 2, 30}, {"s1", 3, 32}} {
		m := e.get(portalToken, "/v1/submissions/"+tt.id).json(t)
		if m["position"] != tt.pos || m["eta_seconds"] != tt.eta {
			t.Errorf("%s: position %v eta %v, want %v and %v", tt.id, m["position"], m["eta_seconds"], tt.pos, tt.eta)
		}
	}
	if m := e.get(portalToken, "/v1/submissions/r1").json(t); m["position"] != nil || m["eta_seconds"] != nil {
		t.Errorf("running submission has a position: %v", m)
	}
}

func TestETAModel(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	tests := []struct {
		name     string
		q        queueStats
		ahead    int64
		preQueue bool
		want     float64
		ok       bool
	}{
		{"no slots", queueStats{defaultRun: 60}, 0, false, 0, false},
		{"idle slot, default run", queueStats{ExecutionSlots: 1, defaultRun: 60}, 0, false, 60, true},
		{"busy single slot", queueStats{ExecutionSlots: 1, Running: 1, MedianRunSeconds: f(10), defaultRun: 60}, 0, false, 20, true},
		{"saturated: ((p+1)/S + 1)·r", queueStats{ExecutionSlots: 4, Running: 4, MedianRunSeconds: f(20), defaultRun: 60}, 7, false, 60, true},
		{"throughput beats S/r", queueStats{ExecutionSlots: 2, Running: 2, MedianRunSeconds: f(60), ThroughputPerMinute: 6, defaultRun: 60}, 9, false, 160, true},
		{"before the queue adds sanity", queueStats{ExecutionSlots: 1, MedianRunSeconds: f(10), MedianSanitySeconds: f(3), defaultRun: 60}, 0, true, 13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.q.eta(tt.ahead, tt.preQueue)
			if ok != tt.ok || math.Abs(got-tt.want) > 0.05 {
				t.Errorf("eta = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestQueueCache(t *testing.T) {
	calls := 0
	c := &queueCache{ttl: time.Hour, measure: func(context.Context) (queueStats, error) {
		calls++
		return queueStats{Queued: int64(calls)}, nil
	}}
	for range 3 {
		if q, err := c.get(context.Background()); err != nil || q.Queued != 1 {
			t.Fatalf("get = %v, %v", q, err)
		}
	}
	if calls != 1 {
		t.Errorf("%d measurements, want 1", calls)
	}
}

func TestQueueCacheServesStaleWhileRefreshing(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	release := make(chan struct{})
	c := &queueCache{ttl: 20 * time.Millisecond, measure: func(context.Context) (queueStats, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 {
			<-release // the background refresh is slow
		}
		return queueStats{Queued: int64(n)}, nil
	}}
	ctx := context.Background()
	if q, _ := c.get(ctx); q.Queued != 1 {
		t.Fatalf("first = %d", q.Queued)
	}
	time.Sleep(30 * time.Millisecond)
	for range 5 { // expired: served stale at once, one refresh started
		if q, err := c.get(ctx); err != nil || q.Queued != 1 {
			t.Fatalf("stale get = %d, %v", q.Queued, err)
		}
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if q, _ := c.get(ctx); q.Queued == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("refresh never landed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("%d measurements, want 2", calls)
	}
}

func TestPlayForward(t *testing.T) {
	now := time.Now()
	ago := func(s float64) time.Time { return now.Add(-time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name    string
		slots   int
		running []time.Time
		ahead   int64
		want    float64
	}{
		{"idle slots: starts now", 2, nil, 1, 0},
		{"idle slots, a queue", 2, nil, 2, 4},
		{"idle slots, a longer queue", 2, nil, 4, 8},
		{"running jobs free their slots in turn", 2, []time.Time{ago(1), ago(3)}, 0, 1},
		{"second slot", 2, []time.Time{ago(1), ago(3)}, 1, 3},
		{"first slot again", 2, []time.Time{ago(1), ago(3)}, 2, 5},
		{"late job frees now", 1, []time.Time{ago(10)}, 0, 0},
		{"more running than slots", 1, []time.Time{ago(1), ago(2)}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := queueStats{ExecutionSlots: tt.slots, runningStarted: tt.running}
			if got := q.playForward(tt.ahead, 4, now); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("playForward(%d) = %g, want %g", tt.ahead, got, tt.want)
			}
		})
	}
}
