//go:build stack

package test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/intake"
)

// hostStreaming runs a Hadoop streaming job directly on the host: the same
// jars, Hadoop configuration and JVM options as the runtime image (but
// Hadoop's own local file system), no container, no sandbox.
func hostStreaming(tb testing.TB, ctx context.Context, input, sub string, extra ...string) time.Duration {
	tb.Helper()
	lib := filepath.Join(stk.root, "docker/image/build/lib")
	jars, err := filepath.Glob(filepath.Join(lib, "*.jar"))
	if err != nil || len(jars) == 0 {
		tb.Fatalf("no Hadoop jars in %s: run make images", lib)
	}
	if _, err := exec.LookPath("java"); err != nil {
		tb.Fatal("the host comparison needs java on the host")
	}
	sort.Strings(jars)
	conf := filepath.Join(stk.root, "docker/image/hadoop")
	tmp := tb.TempDir()
	args := []string{"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
		"-Dlog4j.configuration=file:" + filepath.Join(conf, "log4j.properties"),
		"-Djava.io.tmpdir=" + tmp,
		"-cp", strings.Join(jars, ":") + ":" + conf, "org.apache.hadoop.streaming.HadoopStreaming",
		"-D", "hadoop.tmp.dir=" + filepath.Join(tmp, "hadoop-tmp"),
		// The image's no-fork local file system is compiled into the image
		// only; on the host, Hadoop's own (which forks chmod).
		"-D", "fs.file.impl=org.apache.hadoop.fs.LocalFileSystem",
		"-input", "file://" + input, "-output", "file://" + filepath.Join(tmp, "out")}
	cmd := exec.CommandContext(ctx, "java", append(args, extra...)...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "HADOOP_USER_NAME=bench", "PYTHONPATH="+sub)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("host job: %v\n%s", err, tailString(string(out), 2000))
	}
	d := time.Since(start)
	if _, err := os.Stat(filepath.Join(tmp, "out/part-00000")); err != nil {
		tb.Fatalf("host job wrote no output: %v", err)
	}
	return d
}

// datasetMB is the size of P11's dataset (GRADEFLOW_P11_MB overrides).
func datasetMB(tb testing.TB) int {
	n, err := strconv.Atoi(envOr("GRADEFLOW_P11_MB", "500"))
	if err != nil || n < 1 {
		tb.Fatalf("GRADEFLOW_P11_MB: %v", err)
	}
	return n
}

// BenchmarkP11Dataset grades topword's correct submission on one test whose
// input is a 500 MB dataset: the first grading on an execute host that has
// never seen it (the dataset streams from the store into the host cache),
// the gradings after it (cached), and the same Hadoop job run directly on
// the host. The dataset is generated once into .data/bench (not
// committed) and uploaded through the intake, streamed.
func BenchmarkP11Dataset(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	mb := datasetMB(b)
	gen := filepath.Join(stk.root, ".data/bench", fmt.Sprintf("ds%d", mb))
	if _, err := os.Stat(filepath.Join(gen, "expected/part-00000")); err != nil {
		if out, err := exec.CommandContext(ctx, "python3", filepath.Join(stk.root, topwordDir, "generate.py"), gen, strconv.Itoa(mb)).CombinedOutput(); err != nil {
			b.Fatalf("generate: %v\n%s", err, out)
		}
	}
	// One file: a dataset is one file.
	data := filepath.Join(gen, "data.txt")
	if _, err := os.Stat(data); err != nil {
		parts, _ := filepath.Glob(filepath.Join(gen, "input", "*"))
		sort.Strings(parts)
		out, err := os.Create(data + ".tmp")
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range parts {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			_, err = io.Copy(out, f)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(data+".tmp", data); err != nil {
			b.Fatal(err)
		}
	}
	in := stk.intake()
	f, err := os.Open(data)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	ds, err := in.PutDataset(ctx, fmt.Sprintf("bench-%dmb", mb), f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	upload := time.Since(start)
	expected, err := os.ReadFile(filepath.Join(gen, "expected/part-00000"))
	if err != nil {
		b.Fatal(err)
	}
	name := "bench-dataset-" + randHex(3)
	cfg, err := intake.DecodeAssignment([]byte(fmt.Sprintf(`{"name": %q, "runtimes": ["streaming"], "memory_mb": 2048,
		"mapper": "mapper.py", "reducer": "reducer.py", "combiner": "combiner.py",
		"tests": [{"name": "big", "points": 100, "visibility": "visible", "dataset": %q, "expected": "expected", "compare": "exact", "time_limit_seconds": 1800}]}`,
		name, ds.Name)), "")
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := in.PutAssignment(ctx, intake.AssignmentUpload{Config: cfg, Files: map[string][]byte{"expected/part-00000": expected}}); err != nil {
		b.Fatal(err)
	}
	// A worker of its own, with an empty host cache.
	executeMu.Lock()
	defer executeMu.Unlock()
	executeWorker.Terminate(20 * time.Second)
	defer restoreExecuteWorker(b)
	fresh, err := stk.startWorker(ctx, "worker-execute-p11", "execute", "GRADEFLOW_WORKDIR="+b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer fresh.Terminate(20 * time.Second)
	sub := filepath.Join(stk.root, topwordDir, "submissions/python-correct")
	files := readFiles(b, sub)
	grade := func() time.Duration {
		id := name + "-" + randHex(4)
		start := time.Now()
		got, err := in.Submit(ctx, intake.Submission{ID: id, Assignment: name, Student: "p11", Files: files})
		if err != nil {
			b.Fatal(err)
		}
		var res contract.Result
		if err := got.Run.Get(ctx, &res); err != nil {
			b.Fatal(err)
		}
		if res.Outcome != contract.OutcomePassed {
			s, _ := stk.store.Submission(ctx, id)
			b.Fatalf("grading %s: %s %+v", id, res.Outcome, s.Tests)
		}
		return time.Since(start)
	}
	host := func() time.Duration {
		py := "python3 " + sub + "/"
		return hostStreaming(b, ctx, data, sub, "-mapper", py+"mapper.py", "-combiner", py+"combiner.py", "-reducer", py+"reducer.py")
	}
	first := grade()
	rounds := 3
	var cached, direct []float64
	for range rounds {
		cached = append(cached, grade().Seconds())
		direct = append(direct, host().Seconds())
	}
	b.ReportMetric(float64(ds.Size)/1e6, "dataset_MB")
	b.ReportMetric(upload.Seconds(), "upload_s")
	b.ReportMetric(first.Seconds(), "first_s")
	b.ReportMetric(median(cached), "cached_s")
	b.ReportMetric(median(direct), "host_s")
	b.ReportMetric(median(cached)/median(direct), "cached/host")
}
