package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/activities/checkers"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/intake"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/temporalclient"
	"github.com/gradeflow/gradeflow/webhook"
	"github.com/gradeflow/gradeflow/workflows"
)

// run serves the configured task queues until ctx is canceled, then drains:
// every queue's worker stops polling at once and gives its running tasks
// the same StopTimeout to finish; whatever is still running then is
// canceled (its container is killed) and Temporal hands it to another
// worker.
func run(ctx context.Context, cfg Config, log *zap.Logger) error {
	host, _ := os.Hostname()
	identity := fmt.Sprintf("%d@%s", os.Getpid(), host)
	log = log.With(zap.String("identity", identity), zap.Strings("queues", cfg.Queues))

	st, err := store.Open(cfg.Mongo.URI, cfg.Mongo.DB)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.WithoutCancel(ctx)) }()
	// Best effort: a database that is down now is retried by the activities.
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := st.EnsureIndexes(ictx); err != nil {
		log.Warn("cannot create indexes yet", zap.Error(err))
	}
	cancel()

	tc, err := temporalclient.Dial(ctx, temporalclient.Config{
		HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace, Identity: identity,
	}, log)
	if err != nil {
		return err
	}
	defer tc.Close()

	nsID, err := namespaceID(ctx, tc, cfg.Temporal.Namespace)
	if err != nil {
		return err
	}
	acts := &activities.Activities{
		Files:       st,
		Submissions: st,
		NamespaceID: nsID,
		Worker:      identity,
		Host:        host,
		Config:      cfg.Activities,
		HTTP:        webhook.NewClient(cfg.WebhookSecret, 10*time.Second, cfg.WebhookAllowPrivate),
		Notify: func(ctx context.Context, workflowID string, stage contract.Stage) error {
			return tc.SignalWorkflow(ctx, workflowID, "", contract.SignalStage, stage)
		},
		NotifyRun: func(ctx context.Context, workflowID string, r contract.Run) error {
			return tc.SignalWorkflow(ctx, workflowID, "", contract.SignalRun, r)
		},
		// The regrade-all step starts regrades as the API would submit
		// them: through the intake, with the same IDs and rollback.
		Regrades: intake.New(st, tc, intake.Options{
			MaxSubmission: cfg.Activities.MaxSubmission, AllowPrivateWebhooks: cfg.WebhookAllowPrivate,
			RuntimeImages: cfg.Activities.RuntimeImages, Log: log.With(zap.String("component", "intake")),
		}),
		PreviousTimedOut: func(ctx context.Context, workflowID, activityID string) (bool, error) {
			return previousTimedOut(ctx, tc, workflowID, activityID)
		},
	}
	needsDocker := slices.Contains(cfg.Queues, contract.QueueSanity) || slices.Contains(cfg.Queues, contract.QueueExecute)
	var dk *sandbox.Runner
	if needsDocker {
		if dk, err = openSandbox(ctx, cfg, log); err != nil {
			return err
		}
		defer func() { _ = dk.Close() }()
		acts.Sandbox = dk
	}

	// The warm checkers outlive the drain: a sanity check still running
	// when polling stops keeps its checker until it returns.
	checkCtx, stopCheckers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCheckers()
	var pool *checkers.Pool
	if cfg.SanityWarm && slices.Contains(cfg.Queues, contract.QueueSanity) {
		pool = checkerPool(cfg, acts, dk, identity, log)
		acts.Checkers = pool
	}

	var ws []worker.Worker
	for _, q := range cfg.Queues {
		w := newWorker(tc, q, cfg, identity, acts)
		if err := w.Start(); err != nil {
			stopAll(ws)
			return fmt.Errorf("start %s worker: %w", q, err)
		}
		ws = append(ws, w)
	}
	log.Info("workers started", zap.Int("execute_slots", cfg.ExecuteSlots))

	// Every goroutine below ends with ctx, and run waits for each.
	var wg sync.WaitGroup
	var checkersDone sync.WaitGroup
	if pool != nil {
		checkersDone.Go(func() { pool.Run(checkCtx) })
	}
	if slices.Contains(cfg.Queues, contract.QueueExecute) {
		beat := store.WorkerBeat{Identity: identity, Queue: contract.QueueExecute, Slots: cfg.ExecuteSlots}
		wg.Go(func() { advertise(ctx, st, beat, cfg.BeatEvery, log) })
	}
	if slices.Contains(cfg.Queues, contract.QueueExecute) && cfg.Prefetch.Count > 0 {
		p := &activities.Prefetcher{Activities: acts, Queue: st, Config: cfg.Prefetch, Log: log}
		log.Info("prefetching", zap.Int("prefetch", cfg.Prefetch.Count), zap.Int64("prefetch_bytes", cfg.Prefetch.MaxBytes), zap.Stringer("dispatch", cfg.Prefetch.Dispatch))
		wg.Go(func() { p.Run(ctx) })
	}
	if needsDocker {
		j := &janitor{docker: dk, temporal: tc, log: log, grace: 10 * time.Second, namespaceID: nsID, identity: identity,
			spoolDir: filepath.Join(cfg.Activities.WorkDir, "checkers")}
		wg.Go(func() { j.loop(ctx, cfg.JanitorEvery) })
	}

	<-ctx.Done()
	log.Info("draining", zap.Duration("bound", cfg.StopTimeout))
	stopAll(ws)
	stopCheckers()
	checkersDone.Wait()
	wg.Wait()
	log.Info("stopped")
	return nil
}

// checkerPool is the pool of warm sanity checkers of this worker: one per
// sanity slot, named after the worker, each with a spool directory under
// the work directory.
func checkerPool(cfg Config, acts *activities.Activities, dk *sandbox.Runner, identity string, log *zap.Logger) *checkers.Pool {
	prefix := "gradeflow-checker-" + containerSafe(identity)
	return checkers.New(checkers.Config{
		Size:     cfg.SanitySlots,
		SpoolDir: filepath.Join(cfg.Activities.WorkDir, "checkers"),
		Prefix:   prefix,
		Timeout:  checkTimeout,
		Wait:     2 * time.Second,
		Log:      log.With(zap.String("component", "checkers")),
		Start: func(ctx context.Context, name, spool string) (checkers.Conn, error) {
			s, _, err := dk.StartServer(ctx, activities.CheckerSpec(acts.Config, acts.NamespaceID, name, spool, identity), checkerReady)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	})
}

// checkTimeout bounds one warm check; past it the checker is replaced and
// the check runs in a container of its own (with the full sanity timeout).
// checkerReady bounds a checker's start, its JVM's warm-up included.
const (
	checkTimeout = 20 * time.Second
	checkerReady = 2 * time.Minute
)

// containerSafe makes s usable in a container name.
func containerSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '-'
		}
	}
	return string(b)
}

// openSandbox connects to the Docker engine and makes sure it has the
// runtime image (pulling it when configured to) and the work directory.
func openSandbox(ctx context.Context, cfg Config, log *zap.Logger) (*sandbox.Runner, error) {
	dk, err := sandbox.New()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*sandbox.Runner, error) {
		_ = dk.Close()
		return nil, err
	}
	if err := dk.Ping(ctx); err != nil {
		return fail(fmt.Errorf("%w (is the Docker engine running? make docker)", err))
	}
	ok, err := dk.ImageExists(ctx, cfg.Activities.Image)
	if err != nil {
		return fail(err)
	}
	switch {
	case !ok && cfg.PullImage:
		log.Info("pulling runtime image", zap.String("image", cfg.Activities.Image))
		if err := dk.PullImage(ctx, cfg.Activities.Image); err != nil {
			return fail(err)
		}
	case !ok:
		return fail(fmt.Errorf("runtime image %s is missing: build it with 'make images'", cfg.Activities.Image))
	}
	if err := os.MkdirAll(cfg.Activities.WorkDir, 0o755); err != nil {
		return fail(fmt.Errorf("workdir: %w", err))
	}
	return dk, nil
}

// stopper is a worker, as far as draining goes.
type stopper interface{ Stop() }

// stopAll stops every worker at once and returns when all have stopped.
// Each stops polling right away and waits up to the stop timeout for its
// running tasks, so a process serving several queues drains in one stop
// timeout, not one per queue, and no queue takes new tasks meanwhile.
func stopAll[W stopper](ws []W) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(w.Stop)
	}
	wg.Wait()
}

// implementations maps every activity of the contract to its method.
func implementations(acts *activities.Activities) map[string]any {
	return map[string]any{
		contract.ActivitySanity:  acts.Sanity,
		contract.ActivityExecute: acts.Execute,
		contract.ActivityCompare: acts.Compare,
		contract.ActivityRecord:  acts.Record,
		contract.ActivityWebhook: acts.Webhook,

		contract.ActivityStartRegrades: acts.StartRegrades,
	}
}

// newWorker builds the worker of one task queue with the steps that run
// there (contract.ActivityQueues) and, on the grade queue, the workflows.
func newWorker(tc client.Client, queue string, cfg Config, identity string, acts *activities.Activities) worker.Worker {
	slots := map[string]int{
		contract.QueueSanity:  cfg.SanitySlots,
		contract.QueueExecute: cfg.ExecuteSlots,
		contract.QueueGrade:   cfg.GradeSlots,
	}
	taskQueue := contract.TaskQueues[queue]
	w := worker.New(tc, taskQueue, worker.Options{
		Identity:                           identity,
		WorkerStopTimeout:                  cfg.StopTimeout,
		MaxConcurrentActivityExecutionSize: slots[queue],
	})
	for name, fn := range implementations(acts) {
		if contract.ActivityQueues[name] == taskQueue {
			w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
		}
	}
	if taskQueue == contract.TaskQueueGrade {
		w.RegisterWorkflowWithOptions(workflows.Submission, workflow.RegisterOptions{Name: contract.WorkflowName})
		w.RegisterWorkflowWithOptions(workflows.RegradeAll, workflow.RegisterOptions{Name: contract.RegradeAllName})
	}
	return w
}

// advertise keeps this worker's execution slots in the store, where the API
// counts the slots online for queue estimates, until ctx ends; then it
// withdraws them.
func advertise(ctx context.Context, st *store.Store, beat store.WorkerBeat, every time.Duration, log *zap.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		bctx, cancel := context.WithTimeout(ctx, every)
		if err := st.HeartbeatWorker(bctx, beat, time.Now()); err != nil && ctx.Err() == nil {
			log.Warn("advertise slots", zap.Error(err))
		}
		cancel()
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := st.RemoveWorker(rctx, beat.Identity, beat.Queue); err != nil {
				log.Warn("withdraw slots", zap.Error(err))
			}
			return
		case <-t.C:
		}
	}
}

// describer is the part of the Temporal client previousTimedOut uses.
type describer interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// previousTimedOut reports whether the last failed attempt of the pending
// activity activityID of workflowID timed out (a heartbeat or start-to-close
// timeout: its worker died or hung), by Temporal's record of it.
func previousTimedOut(ctx context.Context, tc describer, workflowID, activityID string) (bool, error) {
	desc, err := tc.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return false, fmt.Errorf("describe workflow %s: %w", workflowID, err)
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityId() != activityID {
			continue
		}
		f := pa.GetLastFailure()
		if f == nil {
			return false, fmt.Errorf("activity %s of %s: no failure recorded", activityID, workflowID)
		}
		return f.GetTimeoutFailureInfo() != nil, nil
	}
	return false, fmt.Errorf("activity %s of %s is not pending", activityID, workflowID)
}

// namespaceID looks up the ID of the namespace the worker serves; it tells
// this stack's containers from those of other stacks on the same engine.
func namespaceID(ctx context.Context, tc client.Client, namespace string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err != nil {
		return "", fmt.Errorf("describe namespace %s: %w", namespace, err)
	}
	return resp.GetNamespaceInfo().GetId(), nil
}
