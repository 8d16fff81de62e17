package contract

import "go.temporal.io/sdk/temporal"

// Lanes of work. Live submissions are dispatched before regrades; within a
// lane, Temporal's task-queue fairness shares the execution slots between
// fairness keys (a student, for live work; an assignment's regrade, for
// regrades) instead of first come, first served. The activities of a
// workflow inherit its priority.
const (
	LaneLive    = "live"
	LaneRegrade = "regrade"
)

// Priority keys (1 is the highest; Temporal's default is 3).
const (
	PriorityLive    = 2
	PriorityRegrade = 4
)

// PriorityOf is the Temporal priority of a submission's workflow.
func PriorityOf(in Input) temporal.Priority {
	if in.Lane == LaneRegrade {
		return temporal.Priority{PriorityKey: PriorityRegrade, FairnessKey: "regrade:" + in.Assignment}
	}
	return temporal.Priority{PriorityKey: PriorityLive, FairnessKey: "student:" + in.Student}
}
