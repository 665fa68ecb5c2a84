package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"stepwise.dev/stepwise/internal/card"
	"stepwise.dev/stepwise/internal/datastore"
)

// CardInfo names one card of a task.
type CardInfo struct {
	Name    string
	Attempt int
	Size    int64     // bytes of its JSON; 0 for the default card, made when read
	Updated time.Time // when it was last saved; zero for the default card
}

func (t *Task) path() datastore.TaskPath {
	return datastore.TaskPath{Flow: t.Flow, Run: t.Run, Step: t.Step, Task: t.ID}
}

// cardPath is where the task's cards are: those of the task it was cloned
// from, for a task a resume cloned (it did not run).
func (t *Task) cardPath() datastore.TaskPath {
	if ps, err := ParsePathspec(t.ClonedFrom); err == nil && ps.Task != "" {
		return datastore.TaskPath{Flow: ps.Flow, Run: ps.Run, Step: ps.Step, Task: ps.Task}
	}
	return t.path()
}

// Cards lists the task's cards: the default card every task has, then
// those its step made, by attempt and name (for a task cloned by a resume,
// those of the task it was cloned from).
func (t *Task) Cards(ctx context.Context) ([]CardInfo, error) {
	refs, err := t.c.store.ListCards(ctx, t.cardPath())
	if err != nil {
		return nil, err
	}
	out := []CardInfo{{Name: card.DefaultName, Attempt: max(len(t.Attempts)-1, 0)}}
	for _, r := range refs {
		out = append(out, CardInfo{Name: r.Name, Attempt: r.Attempt, Size: r.Size, Updated: r.Updated})
	}
	return out, nil
}

// CardJSON returns a card of the task as JSON (see package
// stepwise.dev/stepwise/internal/card for its form); attempt -1 is the
// last attempt that has it. The card named "default" is made from what is
// recorded of the task.
func (t *Task) CardJSON(ctx context.Context, attempt int, name string) ([]byte, error) {
	if err := card.CheckName(name); err != nil {
		return nil, err
	}
	if name == card.DefaultName {
		return t.defaultCard(ctx)
	}
	if attempt < 0 {
		refs, err := t.c.store.ListCards(ctx, t.cardPath())
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			if r.Name == name {
				attempt = r.Attempt
			}
		}
	}
	data, err := t.c.store.GetCard(ctx, t.cardPath(), max(attempt, 0), name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("task %s has no card %q (list its cards with 'stepwise card list %s'): %w", t.Pathspec(), name, t.Pathspec(), ErrNotFound)
	}
	return data, err
}

func (t *Task) defaultCard(ctx context.Context) ([]byte, error) {
	info := card.TaskInfo{Task: t.Pathspec(), Step: t.Step, Status: string(t.Status)}
	if run, err := t.c.Flow(t.Flow).Run(ctx, t.Run); err == nil {
		info.Params = run.Params
		info.Graph, _ = run.Graph(ctx)
	}
	for _, a := range t.Artifacts {
		info.Artifacts = append(info.Artifacts, card.ArtifactInfo{Name: a.Name, Type: a.Type, Size: a.Size})
	}
	for _, a := range t.Attempts {
		info.Attempts = append(info.Attempts, card.AttemptInfo{N: a.N, Status: string(a.Status), Started: a.Started, Ended: a.Ended, Error: a.Error})
	}
	return json.Marshal(card.Default(info))
}

// Graph returns the run's graph as JSON, as the flow's show --json prints
// it; it matches ErrNotFound for a run none of whose tasks stored it (runs
// from before graphs were kept).
func (r *Run) Graph(ctx context.Context) (json.RawMessage, error) {
	data, err := r.c.store.GetGraph(ctx, r.Flow, r.ID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run %s has no stored graph: %w", r.Pathspec(), ErrNotFound)
	}
	return data, err
}

// LogRange returns at most n bytes of one stream of one attempt, from byte
// off (a negative off counts from the end), and the stream's length so
// far. Only the part asked for is read.
func (t *Task) LogRange(ctx context.Context, attempt int, stream string, off, n int64) ([]byte, int64, error) {
	if stream != "stdout" && stream != "stderr" {
		return nil, 0, fmt.Errorf("log stream %q: use stdout or stderr", stream)
	}
	return t.c.store.ReadLogRange(ctx, t.path(), attempt, stream, off, n)
}

// OpenArtifact streams the stored bytes of an artifact's value (in
// Stepwise's encoding), with their length, without loading them whole.
func (t *Task) OpenArtifact(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	a, err := t.Artifact(name)
	if err != nil {
		return nil, 0, err
	}
	return t.c.store.OpenBlob(ctx, a.Key)
}
