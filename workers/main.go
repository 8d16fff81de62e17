// Command workers runs gradeflow's Temporal workers: any subset of the
// sanity, execute and grade task queues, each with its own number of
// concurrent slots. Running more of these processes, on any host that has a
// Docker engine and the runtime image, adds capacity with no other change.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/activities"
	"github.com/gradeflow/gradeflow/config"
	"github.com/gradeflow/gradeflow/contract"
	"github.com/gradeflow/gradeflow/dispatch"
)

// Config is the worker's configuration, read once from flags and env.
type Config struct {
	Temporal      config.Temporal
	Mongo         config.Mongo
	Queues        []string // short names: sanity, execute, grade
	SanitySlots   int
	SanityWarm    bool // keep warm sanity checker containers
	ExecuteSlots  int
	GradeSlots    int
	StopTimeout   time.Duration // how long SIGTERM waits for running tasks
	JanitorEvery  time.Duration
	PullImage     bool // pull the runtime image when the engine lacks it
	WebhookSecret string
	// WebhookAllowPrivate lets deliveries reach private addresses.
	WebhookAllowPrivate bool
	BeatEvery           time.Duration // how often execute workers advertise their slots
	Activities          activities.Config
	LogLevel            string
	// Prefetch keeps the next queued submissions' files on an execute host
	// (GRADEFLOW_PREFETCH submissions; 0, the default, is off).
	Prefetch activities.PrefetchConfig
}

func main() {
	cfg, err := loadConfig(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers:", err)
		os.Exit(2)
	}
	log, err := config.Logger(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error("worker stopped", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	_ = log.Sync()
}

// maxPrefetch bounds GRADEFLOW_PREFETCH: the prefetcher reads
// activities.DefaultCandidates of it queued submissions every round.
const maxPrefetch = 256

// loadConfig reads the configuration from args and the environment.
func loadConfig(args []string, lookup func(string) (string, bool)) (Config, error) {
	def := activities.DefaultConfig()
	cfg := Config{Activities: def}
	var queues string
	l := config.New("workers", lookup)
	l.Temporal(&cfg.Temporal)
	l.Mongo(&cfg.Mongo)
	l.String(&queues, "queues", "GRADEFLOW_QUEUES", "sanity,execute,grade", "task queues to serve")
	l.Int(&cfg.SanitySlots, "sanity-slots", "GRADEFLOW_SANITY_SLOTS", 2, "concurrent sanity checks")
	warm := "on"
	l.String(&warm, "sanity-warm", "GRADEFLOW_SANITY_WARM", "on", "on: answer sanity checks with warm checker containers (one per sanity slot); off: one container per check")
	l.Int(&cfg.ExecuteSlots, "execute-slots", "GRADEFLOW_EXECUTE_SLOTS", 2, "concurrent jobs")
	l.Int(&cfg.GradeSlots, "grade-slots", "GRADEFLOW_GRADE_SLOTS", 32, "concurrent compare/record steps")
	l.Duration(&cfg.StopTimeout, "stop-timeout", "GRADEFLOW_STOP_TIMEOUT", 20*time.Second, "how long SIGTERM waits for running tasks before handing them back")
	l.Duration(&cfg.JanitorEvery, "janitor-every", "GRADEFLOW_JANITOR_EVERY", 15*time.Second, "how often orphaned containers are looked for")
	l.String(&cfg.Activities.Image, "image", "GRADEFLOW_IMAGE", def.Image, "Hadoop runtime image")
	l.Bool(&cfg.PullImage, "pull-image", "GRADEFLOW_IMAGE_PULL", false, "pull the runtime image if the engine lacks it")
	l.String(&cfg.Activities.WorkDir, "workdir", "GRADEFLOW_WORKDIR", def.WorkDir, "host scratch directory")
	l.Int64(&cfg.Activities.MaxInput, "max-input", "GRADEFLOW_MAX_INPUT", def.MaxInput, "bytes of one test's input an execute worker fetches (a dataset; at least the API's GRADEFLOW_MAX_DATASET)")
	l.Int64(&cfg.Activities.InputCacheBytes, "input-cache-bytes", "GRADEFLOW_INPUT_CACHE_BYTES", def.InputCacheBytes, "bytes of assignment input kept on this host")
	l.Duration(&cfg.Activities.HeartbeatEvery, "heartbeat-every", "GRADEFLOW_HEARTBEAT_EVERY", def.HeartbeatEvery, "execute heartbeat interval")
	l.Int(&cfg.Prefetch.Count, "prefetch", "GRADEFLOW_PREFETCH", 0, "queued submissions whose files an execute worker keeps ready (0: off)")
	l.Int64(&cfg.Prefetch.MaxBytes, "prefetch-bytes", "GRADEFLOW_PREFETCH_BYTES", 256<<20, "bytes of prefetched submission files kept on this host")
	l.Duration(&cfg.Prefetch.Every, "prefetch-every", "GRADEFLOW_PREFETCH_EVERY", time.Second, "how often the prefetcher looks at the queue")
	fairness := "on"
	l.String(&fairness, "fairness", "GRADEFLOW_FAIRNESS", "on", "the Temporal server's task-queue fairness (deploy/dev/temporal.sh), which the prefetcher's order follows: on or off")
	l.Duration(&cfg.BeatEvery, "beat-every", "GRADEFLOW_BEAT_EVERY", 10*time.Second, "how often execute workers advertise their slots to the API")
	l.Int(&cfg.Activities.QuarantineAfter, "quarantine-after", "GRADEFLOW_QUARANTINE_AFTER", def.QuarantineAfter, "execute attempts of a submission that may die with their worker before it is quarantined (0: never)")
	l.String(&cfg.LogLevel, "log-level", "GRADEFLOW_LOG_LEVEL", "info", "debug, info, warn or error")
	l.Secret(&cfg.WebhookSecret, "GRADEFLOW_WEBHOOK_SECRET")
	l.WebhookAllowPrivate(&cfg.WebhookAllowPrivate)
	l.RuntimeImages(&cfg.Activities.RuntimeImages)
	rest, err := l.Parse(args)
	if err != nil {
		return Config{}, err
	}
	l.Check(len(rest) == 0, "unexpected arguments: %q", rest)
	for _, q := range strings.Split(queues, ",") {
		if q = strings.TrimSpace(q); q == "" {
			continue
		}
		_, known := contract.TaskQueues[q]
		l.Check(known, "GRADEFLOW_QUEUES: unknown queue %q (want sanity, execute, grade)", q)
		cfg.Queues = append(cfg.Queues, q)
	}
	l.Check(len(cfg.Queues) > 0, "GRADEFLOW_QUEUES: serve at least one of sanity, execute, grade")
	l.Check(cfg.SanitySlots >= 1, "GRADEFLOW_SANITY_SLOTS: must be at least 1")
	l.Check(warm == "on" || warm == "off", "GRADEFLOW_SANITY_WARM: want on or off, not %q", warm)
	cfg.SanityWarm = warm == "on"
	l.Check(cfg.ExecuteSlots >= 1, "GRADEFLOW_EXECUTE_SLOTS: must be at least 1")
	l.Check(cfg.GradeSlots >= 1, "GRADEFLOW_GRADE_SLOTS: must be at least 1")
	l.Check(cfg.StopTimeout > 0, "GRADEFLOW_STOP_TIMEOUT: must be positive")
	l.Check(cfg.JanitorEvery > 0, "GRADEFLOW_JANITOR_EVERY: must be positive")
	l.Check(cfg.BeatEvery > 0, "GRADEFLOW_BEAT_EVERY: must be positive")
	l.Check(cfg.Prefetch.Count >= 0 && cfg.Prefetch.Count <= maxPrefetch, "GRADEFLOW_PREFETCH: must be between 0 (off) and %d", maxPrefetch)
	l.Check(cfg.Prefetch.MaxBytes > 0, "GRADEFLOW_PREFETCH_BYTES: must be positive")
	l.Check(cfg.Prefetch.Every > 0, "GRADEFLOW_PREFETCH_EVERY: must be positive")
	mode, fairnessOK := dispatch.ParseFairness(fairness)
	l.Check(fairnessOK && fairness != "", "GRADEFLOW_FAIRNESS: %q is neither on nor off", fairness)
	cfg.Prefetch.Dispatch = mode
	l.Check(cfg.Activities.InputCacheBytes > 0, "GRADEFLOW_INPUT_CACHE_BYTES: must be positive")
	l.Check(cfg.Activities.MaxInput > 0, "GRADEFLOW_MAX_INPUT: must be positive")
	// The workflow's execute retries (contract.DefaultExecuteAttempts)
	// must outlast the deaths, or the step fails before it is quarantined.
	l.Check(cfg.Activities.QuarantineAfter >= 0 && cfg.Activities.QuarantineAfter < int(contract.DefaultExecuteAttempts),
		"GRADEFLOW_QUARANTINE_AFTER: must be between 0 (never) and %d", contract.DefaultExecuteAttempts-1)
	l.Check(cfg.Activities.HeartbeatEvery > 0, "GRADEFLOW_HEARTBEAT_EVERY: must be positive")
	if err := l.Err(); err != nil {
		return Config{}, err
	}
	abs, err := filepath.Abs(cfg.Activities.WorkDir)
	if err != nil {
		return Config{}, fmt.Errorf("GRADEFLOW_WORKDIR: %w", err)
	}
	cfg.Activities.WorkDir = abs
	return cfg, nil
}
