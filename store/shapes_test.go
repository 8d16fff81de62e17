//go:build stack

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/gradeflow/gradeflow/contract"
)

// A query shape: the command, its collection, the filter's fields with
// their operators, and the sort. Values do not matter.
type shape struct {
	cmd, coll, filter, sort string
}

func (s shape) String() string {
	out := s.cmd + " " + s.coll + " " + s.filter
	if s.sort != "" {
		out += " sort " + s.sort
	}
	return out
}

// served says how a shape is kept off history: by an index (its keys, as
// in Indexes, or "_id"), or by a collection that only holds work in
// flight or recent work (bounded, with the reason).
type served struct {
	index   string
	bounded string
}

// shapes is every query the store issues, with what serves it. A query the
// workload below makes that is missing here fails the test: declare its
// index in Indexes (or bound its collection) and list it.
var shapes = map[string]served{
	// submissions: by _id, or by an index whose first fields are the
	// filter's equalities.
	"find submissions {_id}":                                                   {index: "_id"},
	"update submissions {_id}":                                                 {index: "_id"},
	"update submissions {_id,stage:$ne}":                                       {index: "_id"},
	"findAndModify submissions {_id,stage:$ne}":                                {index: "_id"},
	"findAndModify submissions {_id,uploading}":                                {index: "_id"},
	"findAndModify submissions {_id,stage:$ne,status:$ne}":                     {index: "_id"},
	"update submissions {_id,stage:$in,status}":                                {index: "_id"},
	"update submissions {_id,status}":                                          {index: "_id"},
	"findAndModify submissions {_id}":                                          {index: "_id"},
	"delete submissions {_id}":                                                 {index: "_id"},
	"find submissions {student} sort times.submitted:-1,_id:-1":                {index: "student_1_times.submitted_-1__id_-1"},
	"find submissions {$or,student} sort times.submitted:-1,_id:-1":            {index: "student_1_times.submitted_-1__id_-1"},
	"find submissions {assignment,student} sort times.submitted:-1,_id:-1":     {index: "student_1_assignment_1_times.submitted_-1__id_-1"},
	"find submissions {$or,assignment,student} sort times.submitted:-1,_id:-1": {index: "student_1_assignment_1_times.submitted_-1__id_-1"},
	"find submissions {assignment} sort times.submitted:-1,_id:-1":             {index: "assignment_1_times.submitted_-1__id_-1"},
	"find submissions {status} sort times.submitted:-1,_id:-1":                 {index: "status_1_times.submitted_-1__id_-1"},
	"find submissions {$or,status} sort times.submitted:-1,_id:-1":             {index: "status_1_times.submitted_-1__id_-1"},
	"find submissions {stage}":                                                 {index: "stage_1_lane_1_times.queued_1"},
	"find submissions {stage} sort lane:1,times.queued:1":                      {index: "stage_1_lane_1_times.queued_1"},
	"find assignments {_id}":                                                   {index: "_id"},
	"find datasets {_id}":                                                      {index: "_id", bounded: "one document per dataset"},
	"update datasets {_id}":                                                    {index: "_id", bounded: "one document per dataset"},
	"find regrades {_id}":                                                      {index: "_id", bounded: "one document per regrade-all"},
	"update regrades {_id}":                                                    {index: "_id", bounded: "one document per regrade-all"},
	"delete regrades {_id}":                                                    {index: "_id", bounded: "one document per regrade-all"},
	"find files.files {filename}":                                              {index: "filename_1_uploadDate_1"},
	"update files.files {_id}":                                                 {index: "_id"},
	"update assignments {_id}":                                                 {index: "_id"},
	"find assignments {} sort _id:1":                                           {bounded: "one document per assignment of the course"},
	"update executions {_id}":                                                  {index: "_id", bounded: "executions of the last two hours"},
	"delete executions {execute_started:$lt}":                                  {index: "execute_started_1", bounded: "executions of the last two hours"},
	"find executions {$or}":                                                    {bounded: "executions of the last two hours"},
	"find ratelimits {key} sort slot:-1":                                       {index: "key_1_slot_-1", bounded: "a few reservations per student, pruned as tokens are taken"},
	"delete ratelimits {key,slot:$lt}":                                         {index: "key_1_slot_-1", bounded: "a few reservations per student, pruned as tokens are taken"},
	"update workers {_id}":                                                     {index: "_id", bounded: "one document per worker process"},
	"delete workers {_id}":                                                     {index: "_id", bounded: "one document per worker process"},
	"find workers {queue,seen_at:$gte}":                                        {index: "queue_1_seen_at_1", bounded: "one document per worker process"},
	"find files.files {_id}":                                                   {index: "_id"},
	"find files.chunks {_id}":                                                  {index: "_id"},
	"find files.files {_id} sort uploadDate:-1":                                {index: "_id"},
	"find files.chunks {files_id} sort n:1":                                    {index: "files_id_1_n_1"},
	"delete files.files {_id}":                                                 {index: "_id"},
	"delete files.chunks {files_id}":                                           {index: "files_id_1_n_1"},
	// The driver's GridFS upload first checks whether the bucket is empty
	// (to create its indexes): a find with limit 1.
	"find files.files {}": {bounded: "limit 1"},
}

// query is a recorded command's collection, filter and sort.
type query struct {
	cmd, coll    string
	filter, sort bson.Raw
}

// shape is the query's shape.
func (q query) shape() shape {
	return shape{cmd: q.cmd, coll: q.coll, filter: fields(q.filter), sort: sortOf(q.sort)}
}

// recorder keeps one query of every shape a client sends.
type recorder struct {
	mu   sync.Mutex
	seen map[string]query // by shape
}

func (r *recorder) started(_ context.Context, e *event.CommandStartedEvent) {
	q, ok := queryOf(e.CommandName, e.Command)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := q.shape().String()
	if _, dup := r.seen[k]; !dup {
		q.filter, q.sort = slices.Clone(q.filter), slices.Clone(q.sort)
		r.seen[k] = q
	}
}

// queryOf reads the query of a command; ok is false for commands that
// query nothing (inserts, index builds, handshakes). A command without a
// filter has the empty one.
func queryOf(name string, cmd bson.Raw) (query, bool) {
	q := query{cmd: name}
	q.coll, _ = cmd.Lookup(name).StringValueOK()
	switch name {
	case "find":
		q.filter, _ = cmd.Lookup("filter").DocumentOK()
		q.sort, _ = cmd.Lookup("sort").DocumentOK()
	case "update", "delete":
		key := map[string]string{"update": "updates", "delete": "deletes"}[name]
		arr, _ := cmd.Lookup(key).ArrayOK()
		vals, _ := arr.Values()
		if len(vals) == 0 {
			return query{}, false
		}
		d, _ := vals[0].DocumentOK()
		q.filter, _ = d.Lookup("q").DocumentOK()
	case "findAndModify", "count", "distinct":
		q.filter, _ = cmd.Lookup("query").DocumentOK()
	case "aggregate":
		arr, _ := cmd.Lookup("pipeline").ArrayOK()
		vals, _ := arr.Values()
		for _, v := range vals {
			st, _ := v.DocumentOK()
			if m, ok := st.Lookup("$match").DocumentOK(); ok {
				q.filter = m
				break
			}
		}
	default:
		return query{}, false
	}
	if q.filter == nil {
		q.filter, _ = bson.Marshal(bson.D{})
	}
	return q, true
}

// fields renders a filter's top-level fields, each with its operator when
// it has one: {_id,stage:$ne}.
func fields(d bson.Raw) string {
	els, _ := d.Elements()
	var out []string
	for _, e := range els {
		k := e.Key()
		if sub, ok := e.Value().DocumentOK(); ok {
			subs, _ := sub.Elements()
			if len(subs) > 0 && strings.HasPrefix(subs[0].Key(), "$") && subs[0].Key() != "$eq" {
				k += ":" + subs[0].Key()
			}
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return "{" + strings.Join(out, ",") + "}"
}

func sortOf(d bson.Raw) string {
	els, _ := d.Elements()
	var out []string
	for _, e := range els {
		out = append(out, fmt.Sprintf("%s:%d", e.Key(), e.Value().AsInt64()))
	}
	return strings.Join(out, ",")
}

// indexName is MongoDB's default name of an index with keys.
func indexName(keys bson.D) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s_%v", k.Key, k.Value))
	}
	return strings.Join(parts, "_")
}

// TestQueryShapes runs a workload that makes every query the store has,
// on a store with history (many finished submissions, their files) and a
// little work in flight, and records each command's shape. Every shape
// must be declared in shapes, served by a declared index or a bounded
// collection. On the embedded server, each query on an unbounded
// collection must then reach PostgreSQL as an index scan: explain shows
// FerretDB pushing the filter down and no sequential scan of the table,
// so it reads only the documents it matches. On a real MongoDB (with
// MONGODB_URI), explain must show no collection scan.
func TestQueryShapes(t *testing.T) {
	rec := &recorder{seen: map[string]query{}}
	opts := clientOptions(mongoURI).SetMonitor(&event.CommandMonitor{Started: rec.started})
	st, err := open(opts, "t_"+randHex(6))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		_ = st.DB().Drop(context.Background())
		_ = st.Close(context.Background())
	})
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	history := seedHistory(t, st, 3000)
	workload(t, st, history)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	names := map[string]bool{"_id": true}
	for _, ix := range Indexes {
		names[indexName(ix.Keys)] = true
	}
	var keys []string
	for k := range rec.seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sv, ok := shapes[k]
		if !ok {
			t.Errorf("query %q is not declared: serve it by an index in Indexes (or a bounded collection) and list it in shapes", k)
			continue
		}
		if sv.index != "" && !names[sv.index] {
			t.Errorf("query %q names index %s, which Indexes does not declare", k, sv.index)
		}
		t.Logf("%-75s %s", k, describe(sv))
	}

	embedded := isFerretDB(t, st)
	for _, k := range keys {
		sv, ok := shapes[k]
		if !ok || sv.bounded != "" {
			continue
		}
		q := rec.seen[k]
		if embedded {
			checkPushdown(t, st, q.shape(), q.filter, q.sort)
		} else {
			checkNoCollScan(t, st, q.shape(), q.filter, q.sort)
		}
	}
}

func describe(sv served) string {
	switch {
	case sv.bounded != "" && sv.index != "":
		return "index " + sv.index + "; bounded: " + sv.bounded
	case sv.bounded != "":
		return "bounded: " + sv.bounded
	}
	return "index " + sv.index
}

func isFerretDB(t *testing.T, st *Store) bool {
	t.Helper()
	var info bson.M
	if err := st.DB().RunCommand(context.Background(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		t.Fatal(err)
	}
	_, ok := info["ferretdbVersion"]
	return ok
}

// checkPushdown asserts that FerretDB sends the query's filter to
// PostgreSQL and that PostgreSQL answers it from an index: the rows it
// reads are the rows the equality matches, not the table.
func checkPushdown(t *testing.T, st *Store, sh shape, filter, sortDoc bson.Raw) {
	t.Helper()
	find := bson.D{{Key: "find", Value: sh.coll}, {Key: "filter", Value: filter}}
	if sortDoc != nil {
		find = append(find, bson.E{Key: "sort", Value: sortDoc})
	}
	var res struct {
		FilterPushdown bool `bson:"filterPushdown"`
		QueryPlanner   any  `bson:"queryPlanner"`
	}
	if err := st.DB().RunCommand(context.Background(), bson.D{{Key: "explain", Value: find}}).Decode(&res); err != nil {
		t.Errorf("%s: explain: %v", sh, err)
		return
	}
	plan, _ := json.Marshal(res.QueryPlanner)
	if !res.FilterPushdown {
		t.Errorf("%s: FerretDB does not push the filter down; it would decode the whole collection", sh)
		return
	}
	if strings.Contains(string(plan), `"Seq Scan"`) {
		t.Errorf("%s: PostgreSQL scans the table: %s", sh, plan)
		return
	}
	t.Logf("%-75s PostgreSQL: %s", sh, strings.Join(nodeTypes(res.QueryPlanner), " / "))
}

// nodeTypes lists the plan's node types and the indexes they use.
func nodeTypes(plan any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if nt, ok := x["Node Type"].(string); ok {
				if ix, ok := x["Index Name"].(string); ok {
					nt += " " + ix
				}
				out = append(out, nt)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		case bson.M:
			walk(map[string]any(x))
		case bson.D:
			m := map[string]any{}
			for _, e := range x {
				m[e.Key] = e.Value
			}
			walk(m)
		case bson.A:
			walk([]any(x))
		}
	}
	walk(plan)
	return out
}

// checkNoCollScan asserts that MongoDB's winning plan uses an index.
func checkNoCollScan(t *testing.T, st *Store, sh shape, filter, sortDoc bson.Raw) {
	t.Helper()
	find := bson.D{{Key: "find", Value: sh.coll}, {Key: "filter", Value: filter}}
	if sortDoc != nil {
		find = append(find, bson.E{Key: "sort", Value: sortDoc})
	}
	var res bson.M
	if err := st.DB().RunCommand(context.Background(), bson.D{{Key: "explain", Value: find}}).Decode(&res); err != nil {
		t.Errorf("%s: explain: %v", sh, err)
		return
	}
	plan, _ := json.Marshal(res["queryPlanner"])
	if strings.Contains(string(plan), `"COLLSCAN"`) {
		t.Errorf("%s: collection scan: %s", sh, plan)
	}
}

// seedHistory stores n finished submissions of 300 students, each with
// two files, and returns their IDs. The PostgreSQL statistics are then
// refreshed, so that the planner sees tables of their real size.
func seedHistory(t *testing.T, st *Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	base := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
	var docs []any
	var ids []string
	for i := range n {
		id := fmt.Sprintf("h%06d", i)
		ids = append(ids, id)
		at := base.Add(time.Duration(i) * time.Second)
		docs = append(docs, Submission{
			ID: id, Assignment: fmt.Sprintf("a%d", i%10), Student: fmt.Sprintf("s%03d", i%300),
			Files: []string{"mapper.py", "reducer.py"}, WorkflowID: contract.WorkflowID(id),
			Stage: contract.StageDone, Status: contract.StatusGraded, Outcome: contract.OutcomePassed, Score: 100, MaxScore: 100,
			Feedback: "all 40 output lines match", Times: Times{Submitted: &at, Queued: &at, ExecuteStarted: &at, ExecuteEnded: &at, Completed: &at},
			UpdatedAt: at,
		})
	}
	if _, err := st.submissions.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:n/10] {
		for _, f := range []string{"mapper.py", "reducer.py"} {
			if err := st.PutFile(ctx, SubmissionFile(id, f), []byte("print('x')\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	analyze(t)
	return ids
}

// analyze refreshes the embedded server's PostgreSQL statistics, when the
// test runs one.
func analyze(t *testing.T) {
	t.Helper()
	if mongoDir == "" {
		return
	}
	out, err := exec.Command("psql", "-X", "-q", "-h", filepath.Join(mongoDir, "pg", "run"), "-U", "postgres", "-d", "ferretdb", "-c", "ANALYZE").CombinedOutput()
	if err != nil {
		t.Fatalf("analyze: %v: %s", err, out)
	}
}

// workload calls every store method that queries, as the API, the intake
// and the activities do.
func workload(t *testing.T, st *Store, history []string) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	a := contract.Assignment{Name: "wl", InputFiles: []string{InputPrefix("wl") + "in.txt"}, ExpectedFiles: []string{ExpectedPrefix("wl") + "part-00000"}}
	must(st.PutFile(ctx, a.InputFiles[0], []byte("a b a\n")))
	must(st.PutFile(ctx, a.ExpectedFiles[0], []byte("a\t2\nb\t1\n")))
	must(st.PutAssignment(ctx, a))
	_, err := st.Assignment(ctx, "wl")
	must(err)
	_, err = st.Assignments(ctx)
	must(err)

	// A submission's life, as the intake and the activities see it.
	sub := Submission{ID: "live1", Assignment: "wl", Student: "s007", Files: []string{"mapper.py"}, WorkflowID: contract.WorkflowID("live1")}
	_, err = st.CreateSubmission(ctx, sub)
	must(err)
	must(st.PutFile(ctx, SubmissionFile("live1", "mapper.py"), []byte("print(1)\n")))
	must(st.PutFile(ctx, SubmissionFile("live1", "mapper.py"), []byte("print(2)\n"))) // a retried upload replaces
	must(st.FilesStored(ctx, "live1"))
	got, err := st.Submission(ctx, "live1")
	must(err)
	_, err = st.SubmissionFiles(ctx, got, 1<<20)
	must(err)
	must(st.FetchFiles(ctx, InputPrefix("wl"), []string{"in.txt"}, t.TempDir(), 1<<20))
	for _, stage := range []contract.Stage{contract.StageSanity, contract.StageQueued, contract.StageRunning} {
		must(st.MarkStage(ctx, "live1", Mark{Stage: stage, Activity: "execute", Attempt: 1, At: now}))
	}
	must(st.MarkExecuteEnded(ctx, "live1", now))
	_, err = st.RunningStarts(ctx)
	must(err)
	_, err = st.WaitingSubmissions(ctx, contract.StageQueued, contract.StageSubmitted, contract.StageSanity)
	must(err)
	_, err = st.QueuedNext(ctx, 8)
	must(err)
	_, err = st.RecentExecutions(ctx, now.Add(-10*time.Minute))
	must(err)
	must(st.Record(ctx, "live1", sub, contract.Grade{Status: contract.StatusGraded, Outcome: contract.OutcomePassed}, now))
	_, err = st.ReadFile(ctx, a.ExpectedFiles[0], 1<<20)
	must(err)

	// The execution tracker: a claim, a dead attempt, a quarantine and its
	// release; a claim that loses to a supersede.
	_, err = st.CreateSubmission(ctx, Submission{ID: "live3", Assignment: "wl", Student: "s008", Files: []string{"mapper.py"}})
	must(err)
	for attempt := 1; attempt <= 2; attempt++ {
		_, err = st.ClaimRun(ctx, "live3", contract.Run{ActivityID: "11", Attempt: attempt, Worker: "1@h", Host: "h", Started: now}, 1)
		must(err)
	}
	ended := now.Add(time.Second)
	must(st.CloseRun(ctx, "live3", contract.Run{ActivityID: "11", Attempt: 1, Ended: &ended, End: contract.RunFailed}))
	held, err := st.ListSubmissions(ctx, SubmissionFilter{Status: contract.StatusQuarantined}, PageCursor{}, 20)
	must(err)
	if len(held) != 1 {
		t.Fatalf("quarantined listing: %d submissions, want 1", len(held))
	}
	_, err = st.ListSubmissions(ctx, SubmissionFilter{Status: contract.StatusQuarantined}, PageCursor{Submitted: *held[0].Times.Submitted, ID: held[0].ID}, 20)
	must(err)
	_, err = st.ReleaseQuarantined(ctx, "live3", now)
	must(err)
	_, err = st.CreateSubmission(ctx, Submission{ID: "live4", Assignment: "wl", Student: "s008", Files: []string{"mapper.py"}})
	must(err)
	newer, err := st.Submission(ctx, "live4")
	must(err)
	_, err = st.SupersedeEarlier(ctx, newer, now)
	must(err)
	_, err = st.ClaimRun(ctx, "live3", contract.Run{ActivityID: "11", Attempt: 3, Started: now}, 0)
	must(err)

	// Regrades, listings and a rolled-back upload.
	n, err := st.NextRegrade(ctx, history[5])
	must(err)
	rid := fmt.Sprintf("%s-r%d", history[5], n)
	_, err = st.CreateSubmission(ctx, Submission{ID: rid, Assignment: "a5", Student: "s005", Files: []string{"mapper.py"}, RegradeOf: history[5]})
	must(err)
	for _, f := range []SubmissionFilter{{Student: "s005"}, {Student: "s005", Assignment: "a5"}, {Assignment: "a5"}} {
		page, err := st.ListSubmissions(ctx, f, PageCursor{}, 20)
		must(err)
		if len(page) > 0 && f.Student != "" {
			last := page[len(page)-1]
			_, err := st.ListSubmissions(ctx, f, PageCursor{Submitted: *last.Times.Submitted, ID: last.ID}, 20)
			must(err)
		}
	}
	must(st.DeleteSubmission(ctx, rid))
	_, err = st.CreateSubmission(ctx, Submission{ID: "gone", Assignment: "wl", Student: "s1", Files: []string{"x.py"}})
	must(err)
	_, err = st.DeleteAbandonedUpload(ctx, "gone")
	must(err)

	// Rate limits and worker heartbeats.
	_, _, err = st.TakeToken(ctx, "student:s005", RateLimit{PerMinute: 30, Burst: 10}, now)
	must(err)
	must(st.HeartbeatWorker(ctx, WorkerBeat{Identity: "w1", Queue: "execute", Slots: 2}, now))
	_, _, err = st.ExecutionSlots(ctx, time.Minute)
	must(err)
	must(st.RemoveWorker(ctx, "w1", "execute"))
	must(st.DeleteFile(ctx, a.InputFiles[0]))

	// Multi-test assignments: files by content, datasets, live test
	// results, regrade-all runs.
	ref, err := st.PutBlob(ctx, "in.txt", []byte("a b a\n"))
	must(err)
	_, err = st.PutBlob(ctx, "again.txt", []byte("a b a\n")) // stored already
	must(err)
	big, err := st.PutBlobFrom(ctx, "big.txt", strings.NewReader(strings.Repeat("word ", 1<<18)), 1<<30, nil)
	must(err)
	_, err = st.PutBlobFrom(ctx, "big2.txt", strings.NewReader(strings.Repeat("word ", 1<<18)), 1<<30, nil) // dropped copy
	must(err)
	_, err = st.PutDataset(ctx, "big", big)
	must(err)
	_, err = st.GetDataset(ctx, "big")
	must(err)
	_, err = st.FetchBlob(ctx, ref.Blob, filepath.Join(t.TempDir(), "data"), 1<<20)
	must(err)
	_, err = st.FetchBlob(ctx, big.Blob, filepath.Join(t.TempDir(), "data"), 1<<30)
	must(err)
	_, err = st.CreateSubmission(ctx, Submission{ID: "live2", Assignment: "wl", Student: "s007", Files: []string{"mapper.py"}})
	must(err)
	must(st.MarkTest(ctx, "live2", contract.TestResult{Name: "small", Status: contract.TestPassed}))
	must(st.PutRegradeRun(ctx, RegradeRun{ID: "rg-1", Assignment: "a5", Scope: "latest", Items: []RegradeItem{{From: history[5], To: rid}}}))
	_, err = st.RegradeRunByID(ctx, "rg-1")
	must(err)
	_, err = st.CreateRegradeRun(ctx, RegradeRun{ID: "rg-2", Assignment: "a5", Scope: "all", Items: []RegradeItem{{From: history[5], To: rid}}})
	must(err)
	must(st.MarkRegradeItem(ctx, "rg-2", 0, now, ""))
	must(st.DeleteRegradeRun(ctx, "rg-2"))
	_, err = st.SubmissionsByID(ctx, []string{history[5], rid})
	must(err)
}
