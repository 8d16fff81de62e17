package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/dispatch"
	"github.com/gradeflow/gradeflow/store"
)

// TestAheadOfNew: a submission made now by a student with nothing
// waiting goes after the first task of every waiting student (fair), or
// after every live one (FIFO); regrades never count.
func TestAheadOfNew(t *testing.T) {
	var waiting []store.Waiting
	at := time.Now()
	add := func(student, lane string, n int) {
		for i := range n {
			waiting = append(waiting, store.Waiting{ID: fmt.Sprintf("%s%d", student, i), Student: student, Assignment: "wc",
				Lane: lane, Stage: contract.StageQueued, Queued: at})
			at = at.Add(time.Second)
		}
	}
	add("heavy", "", 20)
	add("b", "", 1)
	add("c", "", 2)
	add("r", contract.LaneRegrade, 50)
	for _, tt := range []struct {
		mode dispatch.Mode
		want int64
	}{{dispatch.Fair, 3}, {dispatch.FIFO, 23}} {
		q := queueStats{waiting: waiting, mode: tt.mode}
		if got := q.aheadOfNew(); got != tt.want {
			t.Errorf("%s: %d ahead of a new submission, want %d", tt.mode, got, tt.want)
		}
	}
}

func TestFairnessConfig(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want dispatch.Mode
		ok   bool
	}{{"", dispatch.Fair, true}, {"on", dispatch.Fair, true}, {"off", dispatch.FIFO, true}, {"no", 0, false}} {
		cfg, err := loadConfig(nil, func(k string) (string, bool) {
			if k == "GRADEFLOW_FAIRNESS" && tt.env != "" {
				return tt.env, true
			}
			return "", false
		})
		if (err == nil) != tt.ok {
			t.Errorf("GRADEFLOW_FAIRNESS=%q: error %v, want ok %v", tt.env, err, tt.ok)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "GRADEFLOW_FAIRNESS") {
				t.Errorf("error %q does not name GRADEFLOW_FAIRNESS", err)
			}
			continue
		}
		if got := cfg.dispatch(); got != tt.want {
			t.Errorf("GRADEFLOW_FAIRNESS=%q: %s, want %s", tt.env, got, tt.want)
		}
	}
}
