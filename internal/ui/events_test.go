package ui

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPageStatesShared: streams open on the same page share one read of
// the stores per poll interval; other pages read their own, and a read
// that failed is not kept.
func TestPageStatesShared(t *testing.T) {
	var p pageStates
	var reads atomic.Int64
	read := func(v string) func() ([]byte, bool, error) {
		return func() ([]byte, bool, error) { reads.Add(1); return []byte(v), false, nil }
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if data, _, err := p.get("run F/1", time.Hour, read("one")); err != nil || string(data) != "one" {
				t.Errorf("get = %q, %v", data, err)
			}
		})
	}
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("20 streams of one page read the stores %d times within a poll interval, want once", n)
	}
	if data, _, _ := p.get("run F/2", time.Hour, read("two")); string(data) != "two" || reads.Load() != 2 {
		t.Errorf("another page got %q after %d reads", data, reads.Load())
	}
	// A poll interval of zero reads every time.
	for i := range 3 {
		if data, _, _ := p.get("run F/1", 0, read(fmt.Sprint(i))); string(data) != fmt.Sprint(i) {
			t.Errorf("get with no interval = %q, want %d", data, i)
		}
	}
	failed := errors.New("store down")
	if _, _, err := p.get("run F/3", time.Hour, func() ([]byte, bool, error) { return nil, false, failed }); !errors.Is(err, failed) {
		t.Errorf("a failed read gave %v", err)
	}
	if data, _, err := p.get("run F/3", time.Hour, read("back")); err != nil || string(data) != "back" {
		t.Errorf("after a failed read, get = %q, %v; want a new read", data, err)
	}
}
