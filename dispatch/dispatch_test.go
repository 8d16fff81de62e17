package dispatch

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/store"
)

// TestDispatchOrder checks the dispatch model against orders worked out
// by hand from the fair matcher's passes (and, fairness off, FIFO). Each
// waiting submission is written student+n: queued in the order listed,
// "R" ones in the regrade lane, "~" ones still before the queue.
func TestDispatchOrder(t *testing.T) {
	tests := []struct {
		name    string
		mode    Mode
		waiting string // in arrival order
		want    string // dispatch order
	}{
		// test/fairness_test.go's burst: A submits 6, then B, C, D one
		// each, then a regrade. The server started them in this order.
		{"fairness test burst", Fair, "A1 A2 A3 A4 A5 A6 B1 C1 D1 R1", "A1 B1 C1 D1 A2 A3 A4 A5 A6 R1"},
		{"fairness test burst, FIFO", FIFO, "A1 A2 A3 A4 A5 A6 B1 C1 D1 R1", "A1 A2 A3 A4 A5 A6 B1 C1 D1 R1"},
		{"one student is FIFO", Fair, "A1 A2 A3", "A1 A2 A3"},
		{"round robin by rank, ties by arrival", Fair, "A1 A2 B1 A3 B2 C1", "A1 B1 C1 A2 B2 A3"},
		{"live before regrade, regrades fair by assignment", Fair, "R1 R2 Q1 A1 A2", "A1 A2 R1 Q1 R2"},
		{"live before regrade under FIFO too", FIFO, "R1 A1 R2 A2", "A1 A2 R1 R2"},
		// Before the queue: they queue after every queued one, in
		// submission order, and take their rank among their student's.
		{"before the queue", Fair, "A1 A2 A3 ~B1 ~A4 ~C1", "A1 B1 C1 A2 A3 A4"},
		{"before the queue, FIFO", FIFO, "A1 A2 ~B1 A3", "A1 A2 A3 B1"},
	}
	base := time.Date(2026, 12, 4, 4, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tasks []Task
			for i, f := range strings.Fields(tt.waiting) {
				w := store.Waiting{ID: strings.TrimPrefix(f, "~"), Assignment: "wc", Stage: contract.StageQueued,
					Submitted: base.Add(time.Duration(i) * time.Second), Queued: base.Add(time.Duration(i) * time.Second)}
				if strings.HasPrefix(f, "~") {
					w.Stage, w.Queued = contract.StageSanity, time.Time{}
				}
				w.Student = w.ID[:1]
				switch w.Student {
				case "R":
					w.Lane, w.Student = contract.LaneRegrade, "someone"
				case "Q": // another assignment's regrade
					w.Lane, w.Student, w.Assignment = contract.LaneRegrade, "someone", "tw"
				}
				tasks = append(tasks, TaskOf(w))
			}
			if tt.mode == Fair { // a fresh book: passes by rank
				tasks = NewPassBook().Assign(tasks, base, true)
			}
			var got []string
			for _, tk := range Order(tt.mode, tasks) {
				got = append(got, tk.ID)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("%s order:\n got %s\nwant %s", tt.mode, g, tt.want)
			}
			// ahead agrees with the order, counting only the queued.
			for i, id := range got {
				all, queued, ok := Ahead(tt.mode, tasks, id)
				wantQueued := int64(0)
				for _, prev := range got[:i] {
					if !strings.Contains(tt.waiting, "~"+prev) {
						wantQueued++
					}
				}
				if !ok || all != int64(i) || queued != wantQueued {
					t.Errorf("ahead(%s) = %d, %d, %v; want %d, %d", id, all, queued, ok, i, wantQueued)
				}
			}
		})
	}
}

// TestPassBook follows the server's passes over snapshots of the queue,
// where they differ from ranks among the waiting: a student who has had
// a turn in the current pass waits for the next one.
func TestPassBook(t *testing.T) {
	at := time.Date(2026, 12, 4, 4, 0, 0, 0, time.UTC)
	queued := func(id string, sec int) Task {
		return TaskOf(store.Waiting{ID: id, Student: id[:1], Assignment: "wc", Stage: contract.StageQueued, Queued: at.Add(time.Duration(sec) * time.Second)})
	}
	steps := []struct {
		name    string
		snap    []Task
		observe bool
		want    string
	}{
		{"burst: by rank", []Task{queued("A1", 1), queued("A2", 2), queued("B1", 3), queued("C1", 4)}, true,
			"A1@1 B1@1 C1@1 A2@2"},
		// A1 and B1 were dispatched (base 1); B submits again: B's last
		// pass is 1, so B2 gets 2 and goes after A2 (ranks would put it
		// first, before A2); D, new, joins the current pass, after C1.
		{"B had its turn", []Task{queued("A2", 2), queued("C1", 4), queued("B2", 5), queued("D1", 6)}, true,
			"C1@1 D1@1 A2@2 B2@2"},
		// An older snapshot (a measurement that ended late) changes
		// nothing: A1, gone, is only priced as a new task of A's.
		{"stale snapshot ignored", []Task{queued("A1", 1)}, true, "A1@3"},
		// A request's own read: E, unseen, would join the current pass.
		{"not observed", []Task{queued("A2", 2), queued("C1", 4), queued("B2", 5), queued("D1", 6), queued("E1", 7)}, false,
			"C1@1 D1@1 E1@1 A2@2 B2@2"},
		// C1 and D1 dispatched: base stays 1, so E1, observed now, still
		// joins pass 1 and goes first; A3 follows A2.
		{"late joiner", []Task{queued("A2", 2), queued("B2", 5), queued("E1", 7), queued("A3", 8)}, true,
			"E1@1 A2@2 B2@2 A3@3"},
		// A2 and E1 dispatched: base 2; C, back, joins pass 2 after B2.
		{"next pass", []Task{queued("B2", 5), queued("A3", 8), queued("C2", 9)}, true,
			"B2@2 C2@2 A3@3"},
	}
	b := NewPassBook()
	for i, st := range steps {
		at := at
		if st.name == "stale snapshot ignored" {
			at = at.Add(-time.Hour)
		}
		snap := st.snap
		got := func() string {
			var ids []string
			for _, tk := range Order(Fair, b.Assign(snap, at.Add(time.Duration(i)*time.Minute), st.observe)) {
				ids = append(ids, fmt.Sprintf("%s@%d", tk.ID, tk.Pass))
			}
			return strings.Join(ids, " ")
		}()
		if got != st.want {
			t.Errorf("step %d (%s):\n got %s\nwant %s", i, st.name, got, st.want)
		}
	}
}

// TestNext: the first n in dispatch order from one snapshot, as a
// prefetcher forecasts them.
func TestNext(t *testing.T) {
	base := time.Date(2026, 12, 4, 4, 0, 0, 0, time.UTC)
	var tasks []Task
	for i, f := range strings.Fields("R1 R2 A1 A2 A3 A4 A5 B1 C1") {
		w := store.Waiting{ID: f, Student: f[:1], Assignment: "wc", Stage: contract.StageQueued, Queued: base.Add(time.Duration(i) * time.Second)}
		if f[0] == 'R' {
			w.Lane, w.Student = contract.LaneRegrade, "someone"
		}
		tasks = append(tasks, TaskOf(w))
	}
	for _, tt := range []struct {
		mode Mode
		n    int
		want string
	}{
		{Fair, 4, "A1 B1 C1 A2"},
		{FIFO, 4, "A1 A2 A3 A4"},
		{Fair, 20, "A1 B1 C1 A2 A3 A4 A5 R1 R2"},
		{Fair, 0, ""},
	} {
		var got []string
		for _, tk := range Next(tt.mode, tasks, tt.n) {
			got = append(got, tk.ID)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("Next(%s, %d) = %q, want %q", tt.mode, tt.n, g, tt.want)
		}
	}
}

func TestParseFairness(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		ok   bool
	}{{"", Fair, true}, {"on", Fair, true}, {"off", FIFO, true}, {"no", Fair, false}} {
		if got, ok := ParseFairness(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("ParseFairness(%q) = %s, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
