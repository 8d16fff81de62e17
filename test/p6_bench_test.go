//go:build stack

package test

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkP6HadoopContainerVsHost runs the wordcount streaming job in the
// sandboxed runtime container (create, start, job, output, remove) and the
// same JVM command directly on the host, with the same jars and Hadoop
// configuration, alternating the two.
func BenchmarkP6HadoopContainerVsHost(b *testing.B) {
	ctx := context.Background()
	sub := filepath.Join(stk.root, exampleDir, "submissions/python-correct")
	input := filepath.Join(stk.root, exampleDir, "input")
	cfg := loadAssignment(b)

	host := func() time.Duration {
		return hostStreaming(b, ctx, input, sub, "-mapper", "python3 "+filepath.Join(sub, cfg.Mapper), "-reducer", "python3 "+filepath.Join(sub, cfg.Reducer))
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
