//go:build stack

package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkP6HadoopContainerVsHost runs the wordcount streaming job in the
// sandboxed runtime container (create, start, job, output, remove) and the
// same JVM command directly on the host, with the same jars and Hadoop
// configuration, alternating the two.
func BenchmarkP6HadoopContainerVsHost(b *testing.B) {
	ctx := context.Background()
	lib := filepath.Join(stk.root, "docker/image/build/lib")
	jars, err := filepath.Glob(filepath.Join(lib, "*.jar"))
	if err != nil || len(jars) == 0 {
		b.Fatalf("no Hadoop jars in %s: run make images", lib)
	}
	if _, err := exec.LookPath("java"); err != nil {
		b.Fatal("the host comparison needs java on the host")
	}
	sort.Strings(jars)
	classpath := strings.Join(jars, ":") + ":" + filepath.Join(stk.root, "docker/image/hadoop")
	sub := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	input := filepath.Join(stk.root, exampleDir, "input")
	cfg := loadAssignment(b)

	host := func() time.Duration {
		tmp := b.TempDir()
		cmd := exec.CommandContext(ctx, "java",
			"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
			"-Dlog4j.configuration=file:"+filepath.Join(stk.root, "docker/image/hadoop/log4j.properties"),
			"-Djava.io.tmpdir="+tmp,
			"-cp", classpath, "org.apache.hadoop.streaming.HadoopStreaming",
			"-D", "hadoop.tmp.dir="+filepath.Join(tmp, "hadoop-tmp"),
			"-input", "file://"+input, "-output", "file://"+filepath.Join(tmp, "out"),
			"-mapper", "python3 "+filepath.Join(sub, cfg.Mapper), "-reducer", "python3 "+filepath.Join(sub, cfg.Reducer))
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "HADOOP_USER_NAME=bench", "PYTHONPATH="+sub)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("host job: %v\n%s", err, tailString(string(out), 2000))
		}
		d := time.Since(start)
		if _, err := os.Stat(filepath.Join(tmp, "out/part-00000")); err != nil {
			b.Fatalf("host job wrote no output: %v", err)
		}
		return d
	}
	container := func() time.Duration {
		start := time.Now()
		res, err := stk.docker.Run(ctx, bareJobSpec(cfg, sub, input))
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("container job: %v exit %d", err, res.ExitCode)
		}
		return time.Since(start)
	}
	host()
	container()
	var hs, cs []float64
	for i := 0; i < benchRounds*b.N; i++ {
		hs = append(hs, ms(host()))
		cs = append(cs, ms(container()))
	}
	b.ReportMetric(median(cs), "container_ms")
	b.ReportMetric(median(hs), "host_jvm_ms")
	b.ReportMetric(median(cs)/median(hs), "container/host")
}
