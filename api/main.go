// Command gradeflow-api is the HTTP API the course portal and staff use:
// it accepts submissions (uploading their files to GridFS and starting
// their grading workflows), reports their progress and queue position,
// cancels and regrades them, and manages assignments. See openapi.json.
//
// Portal tokens reach the student-facing endpoints, staff tokens all of
// them. Submissions are limited per student by a token bucket kept in
// MongoDB (store.TakeToken), so that API replicas share one limit; a
// refused submission is answered 429 with Retry-After, never dropped
// silently. Queue positions and ETAs come from the read model and the
// execute workers' heartbeats (see queueStats.eta for the model).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gradeflow/gradeflow/config"
	"github.com/gradeflow/gradeflow/dispatch"
	"github.com/gradeflow/gradeflow/store"
	"github.com/gradeflow/gradeflow/temporalclient"
)

// Config is the API's configuration, read once from the environment and
// the command line (flags win).
type Config struct {
	Addr              string
	Temporal          config.Temporal
	Mongo             config.Mongo
	PortalTokens      []string // bearer tokens of the student-facing portal
	StaffTokens       []string // bearer tokens of staff: everything
	DevTokens         bool     // the tokens are the local development defaults
	MaxUpload         int64    // bytes of one submission's files (and of its zip, unpacked)
	MaxAssignment     int64    // bytes of one assignment upload
	RatePerMinute     float64  // submissions per student per minute; 0 disables the limit
	RateBurst         int      // submissions a student may make at once
	WebhookSecret     string   // signs webhook test deliveries
	WebhookPrivate    bool     // webhook URLs may point at private addresses
	RuntimeImages     []string // runtime images assignments may name besides the default
	MaxDataset        int64    // bytes of one dataset upload (streamed)
	RequestTimeout    time.Duration
	AssignmentTimeout time.Duration // for assignment uploads, which can be large
	ShutdownTimeout   time.Duration
	QueueWindow       time.Duration // how far back throughput and medians are measured
	WorkerFresh       time.Duration // a worker heartbeat older than this is offline
	QueueCacheTTL     time.Duration // queue statistics are reused this long
	DefaultRun        time.Duration // run time assumed by the ETA before any is measured
	Fairness          string        // the server's execute-queue dispatch: "on" (fair between students) or "off" (FIFO)
	LogLevel          string
}

// Development defaults for the bearer tokens; a warning is logged when used.
const (
	devPortalToken = "dev-portal"
	devStaffToken  = "dev-staff"
)

func main() {
	cfg, err := loadConfig(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gradeflow-api:", err)
		os.Exit(2)
	}
	log, err := config.Logger(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gradeflow-api:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error("gradeflow-api stopped", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	_ = log.Sync()
}

// loadConfig reads the configuration from args and the environment.
func loadConfig(args []string, lookup func(string) (string, bool)) (Config, error) {
	var cfg Config
	var portal, staff string
	l := config.New("gradeflow-api", lookup)
	l.String(&cfg.Addr, "addr", "GRADEFLOW_API_ADDR", "127.0.0.1:8080", "listen address")
	l.Temporal(&cfg.Temporal)
	l.Mongo(&cfg.Mongo)
	// Secrets come from the environment only: flags show in ps.
	l.Secret(&portal, "GRADEFLOW_PORTAL_TOKENS")
	l.Secret(&staff, "GRADEFLOW_STAFF_TOKENS")
	l.Secret(&cfg.WebhookSecret, "GRADEFLOW_WEBHOOK_SECRET")
	l.WebhookAllowPrivate(&cfg.WebhookPrivate)
	l.RuntimeImages(&cfg.RuntimeImages)
	l.Int64(&cfg.MaxDataset, "max-dataset", "GRADEFLOW_MAX_DATASET", 4<<30, "bytes of one dataset upload (streamed, never held in memory)")
	l.Int64(&cfg.MaxUpload, "max-upload", "GRADEFLOW_MAX_UPLOAD", 16<<20, "bytes of one submission")
	l.Int64(&cfg.MaxAssignment, "max-assignment", "GRADEFLOW_MAX_ASSIGNMENT_UPLOAD", 64<<20, "bytes of one assignment upload")
	l.Float(&cfg.RatePerMinute, "rate-per-minute", "GRADEFLOW_RATE_PER_MINUTE", 30, "submissions per student per minute, 0 for no limit")
	l.Int(&cfg.RateBurst, "rate-burst", "GRADEFLOW_RATE_BURST", 10, "submissions a student may make at once")
	l.Duration(&cfg.RequestTimeout, "request-timeout", "GRADEFLOW_REQUEST_TIMEOUT", 15*time.Second, "bound on one request's work")
	l.Duration(&cfg.AssignmentTimeout, "assignment-timeout", "GRADEFLOW_ASSIGNMENT_TIMEOUT", 2*time.Minute, "bound on an assignment upload")
	l.Duration(&cfg.ShutdownTimeout, "shutdown-timeout", "GRADEFLOW_SHUTDOWN_TIMEOUT", 20*time.Second, "grace for requests in flight at shutdown")
	l.Duration(&cfg.QueueWindow, "queue-window", "GRADEFLOW_QUEUE_WINDOW", 10*time.Minute, "window of throughput and median measurements")
	l.Duration(&cfg.WorkerFresh, "worker-fresh", "GRADEFLOW_WORKER_FRESH", 30*time.Second, "age beyond which a worker heartbeat is stale")
	l.Duration(&cfg.QueueCacheTTL, "queue-cache", "GRADEFLOW_QUEUE_CACHE", 2*time.Second, "reuse queue statistics this long")
	l.Duration(&cfg.DefaultRun, "default-run", "GRADEFLOW_ETA_DEFAULT_RUN", time.Minute, "run time the ETA assumes before any is measured")
	l.String(&cfg.Fairness, "fairness", "GRADEFLOW_FAIRNESS", "on", "the Temporal server's task-queue fairness (deploy/dev/temporal.sh): on or off")
	l.String(&cfg.LogLevel, "log-level", "GRADEFLOW_LOG_LEVEL", "info", "debug, info, warn or error")
	rest, err := l.Parse(args)
	if err != nil {
		return Config{}, err
	}
	l.Check(len(rest) == 0, "unexpected arguments: %q", rest)
	cfg.PortalTokens, cfg.StaffTokens = splitTokens(portal), splitTokens(staff)
	if len(cfg.PortalTokens) == 0 && len(cfg.StaffTokens) == 0 {
		cfg.PortalTokens, cfg.StaffTokens, cfg.DevTokens = []string{devPortalToken}, []string{devStaffToken}, true
	}
	l.Check(cfg.MaxUpload > 0, "GRADEFLOW_MAX_UPLOAD: must be positive")
	l.Check(cfg.MaxAssignment > 0, "GRADEFLOW_MAX_ASSIGNMENT_UPLOAD: must be positive")
	l.Check(cfg.MaxDataset > 0, "GRADEFLOW_MAX_DATASET: must be positive")
	_, fairnessOK := dispatch.ParseFairness(cfg.Fairness)
	l.Check(fairnessOK && cfg.Fairness != "", "GRADEFLOW_FAIRNESS: %q is neither on nor off", cfg.Fairness)
	l.Check(cfg.RatePerMinute >= 0, "GRADEFLOW_RATE_PER_MINUTE: must not be negative")
	l.Check(cfg.RateBurst >= 0, "GRADEFLOW_RATE_BURST: must not be negative")
	l.Check(cfg.RatePerMinute == 0 || cfg.RateBurst > 0, "GRADEFLOW_RATE_BURST: must be at least 1 when the rate limit is on")
	for env, d := range map[string]time.Duration{
		"GRADEFLOW_REQUEST_TIMEOUT": cfg.RequestTimeout, "GRADEFLOW_ASSIGNMENT_TIMEOUT": cfg.AssignmentTimeout,
		"GRADEFLOW_QUEUE_WINDOW": cfg.QueueWindow, "GRADEFLOW_WORKER_FRESH": cfg.WorkerFresh,
		"GRADEFLOW_SHUTDOWN_TIMEOUT": cfg.ShutdownTimeout,
	} {
		l.Check(d > 0, "%s: must be positive", env)
	}
	if err := l.Err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// dispatch is the execute queue's dispatch order, as the ETA models it.
func (c Config) dispatch() dispatch.Mode {
	m, _ := dispatch.ParseFairness(c.Fairness)
	return m
}

func splitTokens(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// run serves the API until ctx is canceled, then shuts down gracefully.
// Temporal and MongoDB are reached lazily, so the API starts (and reports
// not ready on /readyz) while either is down.
func run(ctx context.Context, cfg Config, log *zap.Logger) error {
	if cfg.DevTokens {
		log.Warn("using the development bearer tokens; set GRADEFLOW_PORTAL_TOKENS and GRADEFLOW_STAFF_TOKENS",
			zap.String("portal", devPortalToken), zap.String("staff", devStaffToken))
	}
	if cfg.WebhookSecret == "" {
		log.Warn("GRADEFLOW_WEBHOOK_SECRET is empty: webhook test deliveries are signed with an empty key")
	}
	st, err := store.Open(cfg.Mongo.URI, cfg.Mongo.DB)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.WithoutCancel(ctx)) }()
	tc, err := temporalclient.NewLazy(temporalclient.Config{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace}, log)
	if err != nil {
		return err
	}
	defer tc.Close()

	srv := newServer(ctx, cfg, st, tc, log)
	defer srv.queue.wait() // before the store closes
	hs := &http.Server{
		Addr:    cfg.Addr,
		Handler: srv.handler(),
		// Reading and writing are bounded per route (withTimeout): an
		// assignment upload may take minutes, a submission only seconds.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("serving", zap.String("addr", ln.Addr().String()),
		zap.String("temporal", cfg.Temporal.Address), zap.String("db", cfg.Mongo.DB))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		ensureIndexes(gctx, st, log)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", zap.Duration("grace", cfg.ShutdownTimeout))
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.ShutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
	return g.Wait()
}

// ensureIndexes creates the read model's indexes, retrying until MongoDB
// answers or ctx ends.
func ensureIndexes(ctx context.Context, st *store.Store, log *zap.Logger) {
	for {
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := st.EnsureIndexes(ictx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("creating indexes; retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
}
