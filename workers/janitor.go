package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/docker/sandbox"
)

// janitor removes grading containers that no live activity attempt owns:
// those left by a worker that crashed, was killed, or lost its engine
// connection. Temporal is the judge of liveness, so workers sharing an
// engine never remove each other's running containers.
type janitor struct {
	docker   *sandbox.Runner
	temporal client.Client
	log      *zap.Logger
	grace    time.Duration // younger containers are never judged
	// namespaceID is the Temporal namespace this worker serves. Containers
	// labelled with another namespace belong to another stack sharing the
	// engine, whose Temporal would know them; this one must not judge them.
	namespaceID string
	// identity is this worker's: its own warm checkers are live.
	identity string
	// spoolDir holds the warm checkers' spool directories on this host; a
	// removed checker's goes with it.
	spoolDir string
	// pollers caches, per sweep, the identities polling the sanity queue.
	pollers map[string]bool
}

// loop sweeps at start and then every interval until ctx ends.
func (j *janitor) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := j.sweep(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("orphan sweep", zap.Error(err))
		} else if n > 0 {
			j.log.Info("removed orphaned containers", zap.Int("count", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep removes every orphan it finds and reports how many.
func (j *janitor) sweep(ctx context.Context) (int, error) {
	list, err := j.docker.ListManaged(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	j.pollers = nil
	for _, c := range list {
		if time.Since(c.Created) < j.grace || !c.OfNamespace(j.namespaceID) {
			continue
		}
		live, err := j.live(ctx, c.Labels)
		if err != nil {
			j.log.Debug("cannot judge container", zap.String("container", c.Name), zap.Error(err))
			continue
		}
		if live {
			continue
		}
		if err := j.docker.Remove(ctx, c.ID); err != nil {
			return removed, err
		}
		if c.Labels[sandbox.LabelKind] == sandbox.KindChecker && j.spoolDir != "" && c.Name != "" && !strings.ContainsAny(c.Name, "/\\") {
			_ = os.RemoveAll(filepath.Join(j.spoolDir, c.Name))
		}
		j.log.Info("removed orphaned container", zap.String("container", c.Name))
		removed++
	}
	return removed, nil
}

// live reports whether the activity attempt that created a container is
// still the one running.
func (j *janitor) live(ctx context.Context, labels map[string]string) (bool, error) {
	if labels[sandbox.LabelKind] == sandbox.KindChecker {
		return j.ownerLive(ctx, labels[sandbox.LabelOwner])
	}
	wf, act := labels[sandbox.LabelWorkflow], labels[sandbox.LabelActivity]
	attempt, err := strconv.Atoi(labels[sandbox.LabelAttempt])
	if wf == "" || act == "" || err != nil {
		return false, nil // not ours to keep
	}
	desc, err := j.temporal.DescribeWorkflowExecution(ctx, wf, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, nil
	}
	for _, pa := range desc.GetPendingActivities() {
		if pa.GetActivityId() == act {
			return int(pa.GetAttempt()) == attempt && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED, nil
		}
	}
	return false, nil
}

// pollerWindow is how recently a worker must have polled the sanity queue
// for its warm checkers to count as live. An idle worker's long poll lasts
// about a minute, so a dead worker's checkers go within about two minutes
// and a sweep.
const pollerWindow = 2 * time.Minute

// ownerLive reports whether the worker that keeps a warm checker is alive:
// this worker itself, or one that Temporal lists as a recent poller of the
// sanity task queue.
func (j *janitor) ownerLive(ctx context.Context, owner string) (bool, error) {
	if owner == "" {
		return false, nil
	}
	if owner == j.identity {
		return true, nil
	}
	if j.pollers == nil {
		resp, err := j.temporal.DescribeTaskQueue(ctx, contract.TaskQueueSanity, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err != nil {
			return false, err
		}
		j.pollers = map[string]bool{}
		for _, p := range resp.GetPollers() {
			if time.Since(p.GetLastAccessTime().AsTime()) < pollerWindow {
				j.pollers[p.GetIdentity()] = true
			}
		}
	}
	return j.pollers[owner], nil
}
