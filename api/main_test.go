//go:build stack

package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestRunServesAndShutsDown runs the program's run on the real stack:
// it serves, is ready, and returns cleanly once its context ends.
func TestRunServesAndShutsDown(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig([]string{
		"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-temporal", stack.hostPort,
		"-mongo", stack.mongoURI, "-db", "t_run_" + randHex(4), "-shutdown-timeout", "5s",
	}, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, zap.NewNop()) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The development tokens are in force when none are configured.
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/assignments", nil)
	req.Header.Set("Authorization", "Bearer dev-staff")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("dev staff token: %v %v", resp, err)
	}
	if resp != nil {
		_ = resp.Body.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}
