package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/dispatch"
)

// slowStop is a worker whose Stop waits, as a real one waits for its
// running tasks, until every worker of the process is stopping.
type slowStop struct {
	all     *sync.WaitGroup // every worker has entered Stop
	stopped bool
}

func (s *slowStop) Stop() {
	s.all.Done()
	s.all.Wait() // a sequential drain would never get past the first worker
	s.stopped = true
}

// TestStopAllDrainsEveryQueueAtOnce: a process serving all three queues
// stops their workers together, so the drain takes one stop timeout, not
// three, and no queue keeps taking tasks while another drains. Each fake
// worker's Stop blocks until all three are stopping: a drain that stopped
// them one after another would hang here.
func TestStopAllDrainsEveryQueueAtOnce(t *testing.T) {
	var all sync.WaitGroup
	ws := make([]*slowStop, len(contract.TaskQueues))
	all.Add(len(ws))
	for i := range ws {
		ws[i] = &slowStop{all: &all}
	}
	done := make(chan struct{})
	go func() {
		stopAll(ws)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("stopAll stops its workers one after another")
	}
	for i, w := range ws {
		if !w.stopped {
			t.Errorf("worker %d not stopped when stopAll returned", i)
		}
	}
}

// TestEveryActivityRegistered: every activity the contract names has an
// implementation, on a queue the contract names, so that renaming a method
// cannot silently break dispatch.
func TestEveryActivityRegistered(t *testing.T) {
	impls := implementations(&activities.Activities{})
	var queues []string
	for _, q := range contract.TaskQueues {
		queues = append(queues, q)
	}
	for name, queue := range contract.ActivityQueues {
		if impls[name] == nil {
			t.Errorf("activity %s has no implementation", name)
		}
		if !slices.Contains(queues, queue) {
			t.Errorf("activity %s runs on unknown queue %s", name, queue)
		}
	}
	if len(impls) != len(contract.ActivityQueues) {
		t.Errorf("%d implementations for %d activities", len(impls), len(contract.ActivityQueues))
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(Config) bool
		wantErr string // part of the error naming the setting
	}{
		{name: "defaults", check: func(c Config) bool {
			return c.Temporal.Address == "127.0.0.1:7233" && c.Mongo.DB == "gradeflow" && slices.Equal(c.Queues, []string{"sanity", "execute", "grade"}) &&
				c.ExecuteSlots == 2 && c.GradeSlots == 32 && c.StopTimeout == 20*time.Second && !c.PullImage &&
				c.Activities.QuarantineAfter == 3 && c.SanityWarm && c.Activities.MaxInput == 4<<30
		}},
		{name: "max input", env: map[string]string{"GRADEFLOW_MAX_INPUT": "8589934592"},
			check: func(c Config) bool { return c.Activities.MaxInput == 8<<30 }},
		{name: "zero max input", env: map[string]string{"GRADEFLOW_MAX_INPUT": "0"}, wantErr: "GRADEFLOW_MAX_INPUT"},
		{name: "quarantine off", env: map[string]string{"GRADEFLOW_QUARANTINE_AFTER": "0"},
			check: func(c Config) bool { return c.Activities.QuarantineAfter == 0 }},
		{name: "quarantine beyond the retries", env: map[string]string{"GRADEFLOW_QUARANTINE_AFTER": "8"}, wantErr: "GRADEFLOW_QUARANTINE_AFTER"},
		{name: "warm checkers off", env: map[string]string{"GRADEFLOW_SANITY_WARM": "off"}, check: func(c Config) bool { return !c.SanityWarm }},
		{name: "warm checkers: on or off only", env: map[string]string{"GRADEFLOW_SANITY_WARM": "maybe"}, wantErr: "GRADEFLOW_SANITY_WARM"},
		{name: "env", env: map[string]string{
			"GRADEFLOW_QUEUES": "execute", "GRADEFLOW_EXECUTE_SLOTS": "4", "GRADEFLOW_STOP_TIMEOUT": "3s",
			"GRADEFLOW_IMAGE_PULL": "true", "GRADEFLOW_WEBHOOK_SECRET": "s", "TEMPORAL_NAMESPACE": "ns",
		}, check: func(c Config) bool {
			return slices.Equal(c.Queues, []string{"execute"}) && c.ExecuteSlots == 4 && c.StopTimeout == 3*time.Second &&
				c.PullImage && c.WebhookSecret == "s" && c.Temporal.Namespace == "ns"
		}},
		{name: "flags win", args: []string{"-execute-slots", "6"}, env: map[string]string{"GRADEFLOW_EXECUTE_SLOTS": "4"},
			check: func(c Config) bool { return c.ExecuteSlots == 6 }},
		{name: "bad number is an error, not the default", env: map[string]string{"GRADEFLOW_EXECUTE_SLOTS": "four"}, wantErr: "GRADEFLOW_EXECUTE_SLOTS"},
		{name: "bad duration", env: map[string]string{"GRADEFLOW_STOP_TIMEOUT": "soon"}, wantErr: "GRADEFLOW_STOP_TIMEOUT"},
		{name: "bad boolean", env: map[string]string{"GRADEFLOW_IMAGE_PULL": "yes please"}, wantErr: "GRADEFLOW_IMAGE_PULL"},
		{name: "zero slots", env: map[string]string{"GRADEFLOW_GRADE_SLOTS": "0"}, wantErr: "GRADEFLOW_GRADE_SLOTS"},
		{name: "unknown queue", env: map[string]string{"GRADEFLOW_QUEUES": "sanity,cook"}, wantErr: "GRADEFLOW_QUEUES"},
		{name: "no queue", env: map[string]string{"GRADEFLOW_QUEUES": " , "}, wantErr: "GRADEFLOW_QUEUES"},
		{name: "prefetch off by default", check: func(c Config) bool {
			return c.Prefetch.Count == 0 && c.Prefetch.MaxBytes == 256<<20 && c.Prefetch.Every == time.Second
		}},
		{name: "prefetch", env: map[string]string{"GRADEFLOW_PREFETCH": "8", "GRADEFLOW_PREFETCH_BYTES": "1048576", "GRADEFLOW_PREFETCH_EVERY": "500ms"},
			check: func(c Config) bool {
				return c.Prefetch.Count == 8 && c.Prefetch.MaxBytes == 1<<20 && c.Prefetch.Every == 500*time.Millisecond
			}},
		{name: "prefetch follows fair dispatch by default", check: func(c Config) bool { return c.Prefetch.Dispatch == dispatch.Fair }},
		{name: "prefetch follows FIFO dispatch", env: map[string]string{"GRADEFLOW_FAIRNESS": "off"}, check: func(c Config) bool { return c.Prefetch.Dispatch == dispatch.FIFO }},
		{name: "bad fairness", env: map[string]string{"GRADEFLOW_FAIRNESS": "maybe"}, wantErr: "GRADEFLOW_FAIRNESS"},
		{name: "negative prefetch", env: map[string]string{"GRADEFLOW_PREFETCH": "-1"}, wantErr: "GRADEFLOW_PREFETCH"},
		{name: "prefetch too deep", env: map[string]string{"GRADEFLOW_PREFETCH": "100000"}, wantErr: "GRADEFLOW_PREFETCH"},
		{name: "zero prefetch bytes", env: map[string]string{"GRADEFLOW_PREFETCH_BYTES": "0"}, wantErr: "GRADEFLOW_PREFETCH_BYTES"},
		{name: "bad prefetch interval", env: map[string]string{"GRADEFLOW_PREFETCH_EVERY": "0s"}, wantErr: "GRADEFLOW_PREFETCH_EVERY"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := loadConfig(tt.args, lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

// fakeDescriber answers DescribeWorkflowExecution with one pending
// activity, or fails.
type fakeDescriber struct {
	pending *workflowpb.PendingActivityInfo
	err     error
}

func (f fakeDescriber) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	resp := &workflowservice.DescribeWorkflowExecutionResponse{}
	if f.pending != nil {
		resp.PendingActivities = []*workflowpb.PendingActivityInfo{f.pending}
	}
	return resp, nil
}

// TestPreviousTimedOut reads how an activity's last failed attempt ended
// from the pending activity's last failure.
func TestPreviousTimedOut(t *testing.T) {
	pending := func(id string, f *failurepb.Failure) *workflowpb.PendingActivityInfo {
		return &workflowpb.PendingActivityInfo{ActivityId: id, Attempt: 2, LastFailure: f}
	}
	heartbeat := &failurepb.Failure{Message: "activity Heartbeat timeout", FailureInfo: &failurepb.Failure_TimeoutFailureInfo{
		TimeoutFailureInfo: &failurepb.TimeoutFailureInfo{TimeoutType: enumspb.TIMEOUT_TYPE_HEARTBEAT}}}
	reported := &failurepb.Failure{Message: "find submission: server selection error", FailureInfo: &failurepb.Failure_ApplicationFailureInfo{
		ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: "ServerError"}}}
	tests := []struct {
		name    string
		d       fakeDescriber
		want    bool
		wantErr bool
	}{
		{name: "heartbeat timeout", d: fakeDescriber{pending: pending("11", heartbeat)}, want: true},
		{name: "a failure the attempt reported", d: fakeDescriber{pending: pending("11", reported)}},
		{name: "no failure recorded", d: fakeDescriber{pending: pending("11", nil)}, wantErr: true},
		{name: "another activity pending", d: fakeDescriber{pending: pending("12", heartbeat)}, wantErr: true},
		{name: "Temporal unreachable", d: fakeDescriber{err: errors.New("unavailable")}, wantErr: true},
	}
	for _, tc := range tests {
		got, err := previousTimedOut(context.Background(), tc.d, "submission-s1", "11")
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
