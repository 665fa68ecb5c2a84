package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServiceSwitchesToTheRetrainedModel builds the example, trains, serves,
// trains again and sees the service answer from the new model without a
// restart; then stops it with SIGTERM.
func TestServiceSwitchesToTheRetrainedModel(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hosting")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "STEPWISE_DATASTORE="+filepath.Join(dir, "ds"), "STEPWISE_METADATA=", "STEPWISE_TOKEN=",
		"STEPWISE_CONFIG="+filepath.Join(dir, "config.json"), "STEPWISE_USER=ann", "STEPWISE_SERVICE_TOKENS=")
	train := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"run"}, args...)...)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %v: %v\n%s", args, err, out)
		}
		return regexp.MustCompile(`Run (\d+) of flow Fit succeeded`).FindStringSubmatch(string(out))[1]
	}
	train("--slope", "2", "--intercept", "1", "--noise", "0")

	out, err := exec.Command(bin, "show").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/predict  Predict  main.PredictRequest  main.PredictResponse") {
		t.Fatalf("show: %v\n%s", err, out)
	}

	serve := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--poll", "100ms", "--log-json")
	serve.Env, serve.Dir = env, dir
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	// The log's lines, as they come; the first says where it listens.
	lines := make(chan map[string]any, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	var base string
	for m := range lines {
		if msg, _ := m["msg"].(string); strings.HasSuffix(msg, " listening") {
			base = "http://" + m["addr"].(string)
			break
		}
	}
	if base == "" {
		t.Fatal("the service did not say where it listens")
	}

	// predict asks for y at x = 10.
	predict := func() (float64, string) {
		t.Helper()
		resp, err := http.Get(base + "/predict?x=10")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p struct{ Y float64 }
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusServiceUnavailable {
			return 0, "" // not loaded yet
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("GET /predict?x=10: %d %s", resp.StatusCode, body)
		}
		return p.Y, resp.Header.Get("Stepwise-Run")
	}
	// waitFor asks until the answer comes from run (the service looks for
	// new runs every 100ms); it gives up after a minute.
	waitFor := func(run string) float64 {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if y, from := predict(); from == run {
				return y
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the service did not answer from run %s within a minute", run)
		return 0
	}
	first := train("--slope", "2", "--intercept", "1", "--noise", "0")
	if y := waitFor(first); y < 20.999 || y > 21.001 {
		t.Fatalf("predicted %v for x=10 with y = 2x+1", y)
	}
	second := train("--slope", "5", "--intercept", "0", "--noise", "0")
	if y := waitFor(second); y < 49.999 || y > 50.001 {
		t.Fatalf("predicted %v for x=10 after re-training with y = 5x", y)
	}
	resp, err := http.Post(base+"/predict", "application/json", bytes.NewReader([]byte(`{"xs": [1, 2]}`)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ys struct{ Ys []float64 }
	if err := json.Unmarshal(body, &ys); resp.StatusCode != 200 || err != nil || len(ys.Ys) != 2 || math.Abs(ys.Ys[0]-5) > 1e-6 || math.Abs(ys.Ys[1]-10) > 1e-6 {
		t.Errorf("POST /predict: %d %s, want ys 5 and 10", resp.StatusCode, body)
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	shutDown := false
	for m := range lines {
		msg, _ := m["msg"].(string)
		shutDown = shutDown || strings.HasSuffix(msg, " shut down")
	}
	if err := serve.Wait(); err != nil || !shutDown {
		t.Fatalf("after SIGTERM: %v, shut down logged: %v", err, shutDown)
	}
}
