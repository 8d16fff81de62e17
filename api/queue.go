package main

import (
	"context"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/dispatch"
	"github.com/gradeflow/gradeflow/store"
)

// queueStats is the state of the execution queue, as GET /v1/queue
// answers it. Unknown measurements are null.
type queueStats struct {
	Queued         int64 `json:"queued"`          // submissions waiting for an execution slot
	Running        int64 `json:"running"`         // submissions executing
	ExecutionSlots int   `json:"execution_slots"` // execute activities that can run at once
	// SlotsSource says where ExecutionSlots comes from: "heartbeats" (the
	// workers' own advertisements), "pollers" (one per worker Temporal
	// sees polling, when no worker advertises) or "none".
	SlotsSource         string   `json:"slots_source"`
	ExecuteWorkers      int      `json:"execute_workers"`           // workers advertising execute slots
	ExecutePollers      *int     `json:"execute_pollers,omitempty"` // workers Temporal sees polling the execute queue
	ThroughputPerMinute float64  `json:"throughput_per_minute"`     // executions ended per minute over the window
	MedianWaitSeconds   *float64 `json:"median_wait_seconds"`       // queued → execute_started, over the window
	MedianRunSeconds    *float64 `json:"median_run_seconds"`        // execute_started → execute_ended, over the window
	MedianSanitySeconds *float64 `json:"median_sanity_seconds"`     // sanity_started → queued of live submissions, over the window
	// MedianPreQueueSeconds is submitted → queued of live submissions over
	// the window: the sanity step with the waits before and after it.
	MedianPreQueueSeconds *float64 `json:"median_prequeue_seconds"`
	ETASecondsForNew      *float64 `json:"eta_seconds_for_new"` // eta of a submission made now
	// StartETASecondsForNew is when a submission made now would start running.
	StartETASecondsForNew *float64  `json:"start_eta_seconds_for_new"`
	WindowSeconds         float64   `json:"window_seconds"`
	MeasuredAt            time.Time `json:"measured_at"`

	defaultRun float64 // seconds of run time assumed before any is measured
	// runningStarted holds when each running job started, when measured:
	// with it the estimate follows each slot instead of averaging them.
	runningStarted []time.Time
	// waiting holds the submissions queued and those still before the
	// queue (stages submitted and sanity), for the dispatch model.
	waiting []store.Waiting
	// mode is how the server dispatches: fairly between students, or
	// first come, first served.
	mode dispatch.Mode
	// passes follows the server's passes (fair dispatch); the measurement
	// observes the queue into it.
	passes *dispatch.PassBook
	// regradePreQueue is MedianPreQueueSeconds of the regrade lane.
	regradePreQueue *float64
}

// eta estimates the seconds until a submission with ahead submissions
// queued before it is graded; preQueue adds the sanity step it has still
// to pass. There is no estimate while no execution slot is online.
//
// The model: the S slots online each finish a job every r seconds, r being
// the median run time measured over the window (or the configured default
// before any is measured), so slots free up at the service rate μ = S/r.
// When the measured throughput λ (executions ended in the window, per
// second) is higher — many jobs far shorter than the median — μ = λ
// instead. Measured throughput alone is not used as μ because while the
// queue is short it measures demand, not capacity. The submission starts
// once p+1 slots have freed, less the F = max(0, S − running) slots free
// now, and then runs r seconds:
//
//	eta = max(0, p + 1 − F) / μ + r  (+ the time left before the queue)
//
// Saturated, this is ((p+1)/S + 1)·r: a slightly pessimistic M/D/S
// estimate that ignores how far the running jobs are.
func (q queueStats) eta(ahead int64, preQueue bool) (float64, bool) {
	left := 0.0
	if preQueue {
		left = q.preQueueLeft(0, contract.LaneLive)
	}
	_, done, ok := q.estimate(ahead, left)
	return done, ok
}

// preQueueLeft is how long a submission of lane made age seconds ago
// still has to go before it queues: the lane's median time from
// submission to the queue (the sanity step's own median before that is
// measured) less its age. The lanes are measured apart: a regrade-all's
// submissions all arrive at once and queue for their sanity checks behind
// each other, which a live submission, dispatched before them, does not.
func (q queueStats) preQueueLeft(age float64, lane string) float64 {
	m := q.MedianPreQueueSeconds
	if lane == contract.LaneRegrade && q.regradePreQueue != nil {
		m = q.regradePreQueue
	}
	if m == nil {
		m = q.MedianSanitySeconds
	}
	if m == nil {
		return 0
	}
	return max(0, *m-age)
}

// estimate returns both the seconds until the submission starts running
// (the same model without its own run time) and until it is graded.
//
// When the start times of the running jobs are known, the estimate plays
// the queue forward slot by slot instead: each running job frees its slot
// r seconds after it started (now if it is late), idle slots are free now,
// and each of the p jobs ahead, then this one, takes the earliest free
// slot and holds it r seconds. A submission not queued yet starts no
// earlier than preQueueLeft from now (see preQueueLeft).
func (q queueStats) estimate(ahead int64, preQueueLeft float64) (start, done float64, ok bool) {
	if q.ExecutionSlots <= 0 {
		return 0, 0, false
	}
	run := q.defaultRun
	if q.MedianRunSeconds != nil && *q.MedianRunSeconds > 0 {
		run = *q.MedianRunSeconds
	}
	if q.runningStarted != nil {
		start = q.playForward(ahead, run, time.Now())
		start = max(start, preQueueLeft)
	} else {
		slots := float64(q.ExecutionSlots)
		mu := max(slots/run, q.ThroughputPerMinute/60)
		free := max(0, slots-float64(q.Running))
		start = max(0, float64(ahead)+1-free) / mu
		start += preQueueLeft
	}
	return math.Round(start*10) / 10, math.Round((start+run)*10) / 10, true
}

// playForward returns when the job behind ahead others gets a slot.
func (q queueStats) playForward(ahead int64, run float64, now time.Time) float64 {
	free := make([]float64, 0, q.ExecutionSlots)
	for _, st := range q.runningStarted {
		free = append(free, max(0, run-now.Sub(st).Seconds()))
	}
	sort.Float64s(free)
	if len(free) > q.ExecutionSlots { // workers just left: keep the soonest
		free = free[:q.ExecutionSlots]
	}
	for len(free) < q.ExecutionSlots {
		free = append(free, 0)
	}
	var start float64
	for k := int64(0); k <= ahead; k++ {
		i := 0
		for j := range free {
			if free[j] < free[i] {
				i = j
			}
		}
		start = free[i]
		free[i] += run
	}
	return start
}

// queueCache reuses one measurement of the queue for ttl, so that many
// clients polling their submissions cost one measurement every ttl. Once
// it has a measurement it never makes a reader wait: an expired one is
// served while a single background refresh replaces it. A measurement
// older than maxStale (refreshes failing) is dropped, and readers measure
// themselves, getting the error if it persists. A zero ttl disables it.
//
// Background refreshes run on base, the server's lifetime: they end when
// it does, and wait returns once none is left, so that none outlives the
// store it reads.
type queueCache struct {
	ttl     time.Duration
	measure func(context.Context) (queueStats, error)
	base    context.Context
	wg      sync.WaitGroup

	mu         sync.Mutex
	at         time.Time
	stats      queueStats
	have       bool
	refreshing bool
}

// refreshTimeout bounds a background refresh.
const refreshTimeout = 10 * time.Second

func (c *queueCache) get(ctx context.Context) (queueStats, error) {
	if c.ttl <= 0 {
		return c.measure(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	age := time.Since(c.at)
	maxStale := 2*c.ttl + refreshTimeout
	if c.have && age < maxStale {
		if age >= c.ttl && !c.refreshing && c.base.Err() == nil {
			c.refreshing = true
			c.wg.Go(c.refresh)
		}
		return c.stats, nil
	}
	// Nothing usable: measure while holding the lock, so that a crowd of
	// first readers costs one measurement.
	st, err := c.measure(ctx)
	if err != nil {
		return queueStats{}, err
	}
	c.stats, c.at, c.have = st, time.Now(), true
	return st, nil
}

// wait returns once no background refresh runs; call it after base ends.
func (c *queueCache) wait() { c.wg.Wait() }

// refresh replaces the measurement in the background.
func (c *queueCache) refresh() {
	ctx, cancel := context.WithTimeout(c.base, refreshTimeout)
	defer cancel()
	st, err := c.measure(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshing = false
	if err == nil {
		c.stats, c.at = st, time.Now()
	}
}

// measureQueue measures the queue now.
func (s *server) measureQueue(ctx context.Context) (queueStats, error) {
	now := s.now()
	q := queueStats{
		WindowSeconds: s.cfg.QueueWindow.Seconds(),
		MeasuredAt:    now.UTC().Truncate(time.Millisecond),
		defaultRun:    s.cfg.DefaultRun.Seconds(),
		mode:          s.cfg.dispatch(),
		passes:        s.passes,
	}
	var err error
	if q.waiting, err = s.store.WaitingSubmissions(ctx, contract.StageQueued, contract.StageSubmitted, contract.StageSanity); err != nil {
		return queueStats{}, err
	}
	for _, w := range q.waiting {
		if w.Stage == contract.StageQueued {
			q.Queued++
		}
	}
	if q.mode == dispatch.Fair && q.passes != nil {
		q.passes.Assign(q.tasks(), now, true)
	}
	if q.runningStarted, err = s.store.RunningStarts(ctx); err != nil {
		return queueStats{}, err
	}
	q.Running = int64(len(q.runningStarted))
	if q.ExecutionSlots, q.ExecuteWorkers, err = s.store.ExecutionSlots(ctx, s.cfg.WorkerFresh); err != nil {
		return queueStats{}, err
	}
	q.SlotsSource = "heartbeats"
	if pollers, ok := s.executePollers(ctx); ok {
		q.ExecutePollers = &pollers
		if q.ExecutionSlots == 0 && pollers > 0 {
			q.ExecutionSlots, q.SlotsSource = pollers, "pollers"
		}
	}
	if q.ExecutionSlots == 0 {
		q.SlotsSource = "none"
	}
	recent, err := s.store.RecentExecutions(ctx, now.Add(-s.cfg.QueueWindow))
	if err != nil {
		return queueStats{}, err
	}
	q.ThroughputPerMinute = math.Round(float64(len(recent.Run))/s.cfg.QueueWindow.Minutes()*100) / 100
	// Medians of the latest samples follow a change of load (a busy
	// machine runs every job slower) within a few jobs.
	q.MedianRunSeconds = median(latest(recent.Run))
	q.MedianWaitSeconds = median(latest(recent.Wait))
	q.MedianSanitySeconds = median(latest(recent.Sanity))
	q.MedianPreQueueSeconds = median(latest(recent.PreQueue))
	q.regradePreQueue = median(latest(recent.RegradePreQueue))
	if start, done, ok := q.estimate(q.aheadOfNew(), q.preQueueLeft(0, contract.LaneLive)); ok {
		q.StartETASecondsForNew, q.ETASecondsForNew = &start, &done
	}
	return q, nil
}

// executePollers counts the workers Temporal sees polling the execute
// queue. It is advisory: on error the count is left out.
func (s *server) executePollers(ctx context.Context) (int, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := s.temporal.DescribeTaskQueue(ctx, contract.TaskQueueExecute, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		s.log.Debug("describe execute task queue", zap.Error(err))
		return 0, false
	}
	return len(resp.GetPollers()), true
}

func median(xs []float64) *float64 {
	m, ok := store.Median(xs)
	if !ok {
		return nil
	}
	m = math.Round(m*100) / 100
	return &m
}

// getQueue answers the state of the execution queue.
func (s *server) getQueue(w http.ResponseWriter, r *http.Request) {
	q, err := s.queue.get(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// tasks is the dispatch model's view of the waiting submissions.
func (q queueStats) tasks() []dispatch.Task {
	ts := make([]dispatch.Task, 0, len(q.waiting)+1)
	for _, w := range q.waiting {
		ts = append(ts, dispatch.TaskOf(w))
	}
	return ts
}

// newTaskID names the model's task of a submission not made yet.
const newTaskID = "\x00new"

// aheadOfNew counts the tasks that would be dispatched before a live
// submission made now by a student with nothing waiting.
func (q queueStats) aheadOfNew() int64 {
	ts := append(q.tasks(), dispatch.Task{ID: newTaskID, Priority: contract.PriorityLive, Key: newTaskID, Phase: dispatch.PhaseNew})
	all, _, _ := dispatch.Ahead(q.mode, q.assign(ts), newTaskID)
	return all
}

// assign gives tasks their passes under fair dispatch, from what the
// passes book has observed (a fresh book when there is none).
func (q queueStats) assign(ts []dispatch.Task) []dispatch.Task {
	if q.mode != dispatch.Fair {
		return ts
	}
	book := q.passes
	if book == nil {
		book = dispatch.NewPassBook()
	}
	return book.Assign(ts, q.MeasuredAt, false)
}

// medianOf is how many of the latest samples the medians use.
const medianOf = 15

func latest(xs []float64) []float64 {
	if len(xs) > medianOf {
		return xs[len(xs)-medianOf:]
	}
	return xs
}
