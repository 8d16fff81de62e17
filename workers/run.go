package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/docker/sandbox"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/workflows"
)

// run serves the configured task queues until ctx is canceled, then drains:
// the workers stop polling at once and give running tasks StopTimeout to
// finish; whatever is still running then is canceled (its container is
// killed) and Temporal hands it to another worker.
func run(ctx context.Context, cfg Config, log *zap.Logger) error {
	host, _ := os.Hostname()
	identity := fmt.Sprintf("%d@%s", os.Getpid(), host)
	log = log.With(zap.String("identity", identity), zap.Strings("queues", cfg.Queues))

	st, err := store.Open(cfg.MongoURI, cfg.MongoDB)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.Background()) }()
	// Best effort: a database that is down now is retried by the activities.
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := st.EnsureIndexes(ictx); err != nil {
		log.Warn("cannot create indexes yet", zap.Error(err))
	}
	cancel()

	tc, err := workflows.Dial(ctx, workflows.ClientConfig{
		HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Identity: identity,
	}, log)
	if err != nil {
		return err
	}
	defer tc.Close()

	nsID, err := namespaceID(ctx, tc, cfg.TemporalNamespace)
	if err != nil {
		return err
	}
	acts := &activities.Activities{
		NamespaceID: nsID,
		Store:       st,
		Config:      cfg.Activities,
		HTTP:        activities.NewWebhookClient(cfg.WebhookSecret, 10*time.Second),
		Notify: func(ctx context.Context, workflowID string, stage store.Stage) error {
			return tc.SignalWorkflow(ctx, workflowID, "", workflows.SignalStage, stage)
		},
	}
	needsDocker := slices.Contains(cfg.Queues, "sanity") || slices.Contains(cfg.Queues, "execute")
	var dk *sandbox.Runner
	if needsDocker {
		if dk, err = sandbox.New(); err != nil {
			return err
		}
		defer func() { _ = dk.Close() }()
		if err := dk.Ping(ctx); err != nil {
			return fmt.Errorf("%w (is the Docker engine running? make docker)", err)
		}
		ok, err := dk.ImageExists(ctx, cfg.Activities.Image)
		if err != nil {
			return err
		}
		switch {
		case !ok && cfg.PullImage:
			log.Info("pulling runtime image", zap.String("image", cfg.Activities.Image))
			if err := dk.PullImage(ctx, cfg.Activities.Image); err != nil {
				return err
			}
		case !ok:
			return fmt.Errorf("runtime image %s is missing: build it with 'make images'", cfg.Activities.Image)
		}
		if err := os.MkdirAll(cfg.Activities.WorkDir, 0o755); err != nil {
			return fmt.Errorf("workdir: %w", err)
		}
		acts.Docker = dk
	}

	var ws []worker.Worker
	for _, q := range cfg.Queues {
		w := newWorker(tc, q, cfg, identity, acts)
		if err := w.Start(); err != nil {
			for _, started := range ws {
				started.Stop()
			}
			return fmt.Errorf("start %s worker: %w", q, err)
		}
		ws = append(ws, w)
	}
	log.Info("workers started", zap.Int("executeSlots", cfg.ExecuteSlots))

	beatDone := make(chan struct{})
	if slices.Contains(cfg.Queues, "execute") {
		go func() {
			defer close(beatDone)
			advertise(ctx, st, store.WorkerBeat{Identity: identity, Queue: "execute", Slots: cfg.ExecuteSlots}, cfg.BeatEvery, log)
		}()
	} else {
		close(beatDone)
	}

	janitorDone := make(chan struct{})
	if needsDocker {
		j := &janitor{docker: dk, temporal: tc, log: log, grace: 10 * time.Second, namespaceID: nsID}
		go func() {
			defer close(janitorDone)
			j.loop(ctx, cfg.JanitorEvery)
		}()
	} else {
		close(janitorDone)
	}

	<-ctx.Done()
	log.Info("draining", zap.Duration("bound", cfg.StopTimeout))
	<-beatDone // it withdraws this worker's slots from the queue's estimate
	for _, w := range ws {
		w.Stop() // each waits up to WorkerStopTimeout for its running tasks
	}
	<-janitorDone
	log.Info("stopped")
	return nil
}

// newWorker builds the worker of one task queue with the steps that run there.
func newWorker(tc client.Client, queue string, cfg Config, identity string, acts *activities.Activities) worker.Worker {
	opts := worker.Options{
		Identity:          identity,
		WorkerStopTimeout: cfg.StopTimeout,
	}
	switch queue {
	case "sanity":
		opts.MaxConcurrentActivityExecutionSize = cfg.SanitySlots
	case "execute":
		opts.MaxConcurrentActivityExecutionSize = cfg.ExecuteSlots
	case "grade":
		opts.MaxConcurrentActivityExecutionSize = cfg.GradeSlots
	}
	w := worker.New(tc, workflows.TaskQueues[queue], opts)
	reg := func(fn any, name string) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	switch queue {
	case "sanity":
		reg(acts.Sanity, "Sanity")
	case "execute":
		reg(acts.Execute, "Execute")
	case "grade":
		w.RegisterWorkflowWithOptions(workflows.Submission, workflow.RegisterOptions{Name: workflows.WorkflowName})
		reg(acts.Compare, "Compare")
		reg(acts.Record, "Record")
		reg(acts.Webhook, "Webhook")
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
