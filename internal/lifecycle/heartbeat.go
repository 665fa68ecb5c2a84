package lifecycle

import (
	"context"
	"sync"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
)

// Heartbeat calls beat every interval (metadata.HeartbeatInterval when
// zero or less) until stop is called, with the time to record. The first
// error beat returns while ctx is live goes to warn; later ones are
// dropped: a heartbeat that cannot be recorded does not stop the run or
// the task, it only lets readers take it for lost.
func Heartbeat(ctx context.Context, every time.Duration, beat func(ctx context.Context, at time.Time) error, warn func(error)) (stop func()) {
	if every <= 0 {
		every = metadata.HeartbeatInterval
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		warned := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := beat(ctx, time.Now().UTC()); err != nil && ctx.Err() == nil && !warned {
				warn(err)
				warned = true
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}
