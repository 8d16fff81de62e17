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
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gradeflow/gradeflow/activities"
)

// Config is the worker's configuration, read once from flags and env.
type Config struct {
	TemporalAddress   string
	TemporalNamespace string
	MongoURI          string
	MongoDB           string
	Queues            []string // short names: sanity, execute, grade
	SanitySlots       int
	ExecuteSlots      int
	GradeSlots        int
	StopTimeout       time.Duration // how long SIGTERM waits for running tasks
	JanitorEvery      time.Duration
	PullImage         bool // pull the runtime image when the engine lacks it
	WebhookSecret     string
	BeatEvery         time.Duration // how often execute workers advertise their slots
	Activities        activities.Config
	LogLevel          string
}

func main() {
	cfg, err := loadConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers:", err)
		os.Exit(2)
	}
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("worker stopped", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	_ = log.Sync()
}

func loadConfig(args []string) (Config, error) {
	def := activities.DefaultConfig()
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	var cfg Config
	var queues string
	fs.StringVar(&cfg.TemporalAddress, "temporal", env("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	fs.StringVar(&cfg.TemporalNamespace, "namespace", env("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (TEMPORAL_NAMESPACE)")
	fs.StringVar(&cfg.MongoURI, "mongo", env("MONGODB_URI", "mongodb://127.0.0.1:27017"), "MongoDB URI (MONGODB_URI)")
	fs.StringVar(&cfg.MongoDB, "db", env("GRADEFLOW_DB", "gradeflow"), "MongoDB database (GRADEFLOW_DB)")
	fs.StringVar(&queues, "queues", env("GRADEFLOW_QUEUES", "sanity,execute,grade"), "task queues to serve (GRADEFLOW_QUEUES)")
	fs.IntVar(&cfg.SanitySlots, "sanity-slots", envInt("GRADEFLOW_SANITY_SLOTS", 2), "concurrent sanity checks (GRADEFLOW_SANITY_SLOTS)")
	fs.IntVar(&cfg.ExecuteSlots, "execute-slots", envInt("GRADEFLOW_EXECUTE_SLOTS", 2), "concurrent jobs (GRADEFLOW_EXECUTE_SLOTS)")
	fs.IntVar(&cfg.GradeSlots, "grade-slots", envInt("GRADEFLOW_GRADE_SLOTS", 32), "concurrent compare/record steps (GRADEFLOW_GRADE_SLOTS)")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", envDuration("GRADEFLOW_STOP_TIMEOUT", 20*time.Second), "how long SIGTERM waits for running tasks before handing them back (GRADEFLOW_STOP_TIMEOUT)")
	fs.DurationVar(&cfg.JanitorEvery, "janitor-every", envDuration("GRADEFLOW_JANITOR_EVERY", 15*time.Second), "how often orphaned containers are looked for (GRADEFLOW_JANITOR_EVERY)")
	fs.StringVar(&cfg.Activities.Image, "image", env("GRADEFLOW_IMAGE", def.Image), "Hadoop runtime image (GRADEFLOW_IMAGE)")
	fs.BoolVar(&cfg.PullImage, "pull-image", os.Getenv("GRADEFLOW_IMAGE_PULL") == "true", "pull the runtime image if the engine lacks it (GRADEFLOW_IMAGE_PULL)")
	fs.StringVar(&cfg.Activities.WorkDir, "workdir", env("GRADEFLOW_WORKDIR", def.WorkDir), "host scratch directory (GRADEFLOW_WORKDIR)")
	fs.DurationVar(&cfg.Activities.HeartbeatEvery, "heartbeat-every", envDuration("GRADEFLOW_HEARTBEAT_EVERY", def.HeartbeatEvery), "execute heartbeat interval (GRADEFLOW_HEARTBEAT_EVERY)")
	fs.DurationVar(&cfg.BeatEvery, "beat-every", envDuration("GRADEFLOW_BEAT_EVERY", 10*time.Second), "how often execute workers advertise their slots to the API (GRADEFLOW_BEAT_EVERY)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("GRADEFLOW_LOG_LEVEL", "info"), "debug, info, warn or error (GRADEFLOW_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	cfg.WebhookSecret = os.Getenv("GRADEFLOW_WEBHOOK_SECRET") // a secret: env only, never a flag
	a := &cfg.Activities
	a.MaxSubmission, a.MaxInput, a.MaxOutput, a.MaxExpected = def.MaxSubmission, def.MaxInput, def.MaxOutput, def.MaxExpected
	a.StderrBytes, a.ScratchFraction, a.PidsLimit, a.SanityTimeout = def.StderrBytes, def.ScratchFraction, def.PidsLimit, def.SanityTimeout
	abs, err := filepath.Abs(a.WorkDir)
	if err != nil {
		return Config{}, fmt.Errorf("workdir: %w", err)
	}
	a.WorkDir = abs
	for _, q := range strings.Split(queues, ",") {
		if q = strings.TrimSpace(q); q == "" {
			continue
		}
		switch q {
		case "sanity", "execute", "grade":
			cfg.Queues = append(cfg.Queues, q)
		default:
			return Config{}, fmt.Errorf("queues: unknown queue %q (want sanity, execute, grade)", q)
		}
	}
	if len(cfg.Queues) == 0 {
		return Config{}, errors.New("queues: serve at least one of sanity, execute, grade")
	}
	for name, n := range map[string]int{"sanity-slots": cfg.SanitySlots, "execute-slots": cfg.ExecuteSlots, "grade-slots": cfg.GradeSlots} {
		if n < 1 {
			return Config{}, fmt.Errorf("%s: must be at least 1", name)
		}
	}
	return cfg, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = lvl
	zc.Sampling = nil
	return zc.Build()
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}
