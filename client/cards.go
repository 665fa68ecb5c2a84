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
	Size    int64     // bytes of its latest version's JSON; 0 for the default card, made when read
	Updated time.Time // when its latest version was saved; zero for the default card
	// Versions are the versions kept, oldest first: the final one (saved
	// when the attempt ended) and the last others, at most
	// MaxCardVersions. Empty for the default card and for a card saved
	// before versions were kept, which has only its latest.
	Versions []CardVersion
}

// CardVersion is one saved version of a card.
type CardVersion struct {
	Version int       // 1 for the first save, one more each save
	Size    int64     // bytes of its JSON
	Saved   time.Time // when it was saved
	Final   bool      // saved when the attempt ended
	Key     string    // the content key of its JSON in the datastore
}

// MaxCardVersions is how many versions of a card are kept besides the
// final one: a progress card saved every few seconds keeps its last
// MaxCardVersions versions, and the one saved when its attempt ended.
const MaxCardVersions = datastore.MaxCardVersions

// Latest is the number of the card's latest version; 0 when versions are
// not known (the default card, or one saved before versions were kept).
func (ci CardInfo) Latest() int {
	if n := len(ci.Versions); n > 0 {
		return ci.Versions[n-1].Version
	}
	return 0
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
// those its step made, by attempt and name, each with its versions (for a
// task cloned by a resume, those of the task it was cloned from).
func (t *Task) Cards(ctx context.Context) ([]CardInfo, error) {
	refs, err := t.c.store.ListCards(ctx, t.cardPath())
	if err != nil {
		return nil, err
	}
	out := []CardInfo{{Name: card.DefaultName, Attempt: max(len(t.Attempts)-1, 0)}}
	for _, r := range refs {
		ci := CardInfo{Name: r.Name, Attempt: r.Attempt, Size: r.Size, Updated: r.Updated}
		for _, v := range r.Versions {
			ci.Versions = append(ci.Versions, CardVersion{Version: v.Version, Size: v.Size, Saved: v.Saved, Final: v.Final, Key: v.Key})
		}
		out = append(out, ci)
	}
	return out, nil
}

// CardJSON returns the latest version of a card of the task as JSON (see
// package stepwise.dev/stepwise/internal/card for its form); attempt -1 is
// the last attempt that has it. The card named "default" is made from
// what is recorded of the task.
func (t *Task) CardJSON(ctx context.Context, attempt int, name string) ([]byte, error) {
	return t.CardVersionJSON(ctx, attempt, name, 0)
}

// CardVersionJSON returns one version of a card of the task as JSON, the
// latest when version is 0; attempt -1 is the last attempt that has the
// card. A version that was not kept matches ErrNotFound, and its error
// says which versions are.
func (t *Task) CardVersionJSON(ctx context.Context, attempt int, name string, version int) ([]byte, error) {
	if err := card.CheckName(name); err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, fmt.Errorf("card version %d: versions count from 1 (0 is the latest)", version)
	}
	if name == card.DefaultName {
		if version > 1 {
			return nil, fmt.Errorf("the default card of task %s is made when read: it has one version: %w", t.Pathspec(), ErrNotFound)
		}
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
	attempt = max(attempt, 0)
	data, err := t.c.store.GetCard(ctx, t.cardPath(), attempt, name, version)
	if errors.Is(err, fs.ErrNotExist) && version != 0 {
		// A card saved before versions were kept has its latest alone,
		// which knows its number.
		if latest, lerr := t.c.store.GetCard(ctx, t.cardPath(), attempt, name, 0); lerr == nil {
			if d, derr := card.Decode(latest); derr == nil && d.Version == version {
				return latest, nil
			}
		}
	}
	switch {
	case errors.Is(err, datastore.ErrCollected):
		return nil, fmt.Errorf("card %q of task %s: %w", name, t.Pathspec(), err)
	case errors.Is(err, fs.ErrNotExist) && version != 0:
		return nil, fmt.Errorf("%v; list the versions with 'stepwise card list %s --name %s': %w", err, t.Pathspec(), name, ErrNotFound)
	case errors.Is(err, fs.ErrNotExist):
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
