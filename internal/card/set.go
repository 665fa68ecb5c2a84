package card

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Saver stores one version of one card of the running attempt: d is the
// card as saved (its name, version, time and whether it is the final
// one), data its JSON.
type Saver interface {
	SaveCard(ctx context.Context, d *Doc, data []byte) error
}

// Set is the cards of one running attempt. Parts are added from the step's
// code; Refresh saves changed cards at most every MinInterval, and Finish
// saves them when the step ends. It is safe for concurrent use.
type Set struct {
	mu      sync.Mutex
	saver   Saver
	task    string
	attempt int
	docs    map[string]*Doc
	order   []string
	dirty   map[string]bool
	last    time.Time
	timer   *time.Timer
	done    bool
	err     error // the first save that failed
	// Now is the clock (time.Now unless a test sets it).
	Now func() time.Time
}

// NewSet returns the cards of attempt attempt of task (Flow/Run/step/ID),
// saved through s.
func NewSet(s Saver, task string, attempt int) *Set {
	return &Set{saver: s, task: task, attempt: attempt, docs: map[string]*Doc{}, dirty: map[string]bool{}, Now: time.Now}
}

func (s *Set) doc(name string) *Doc {
	d, ok := s.docs[name]
	if !ok {
		d = &Doc{Name: name, Task: s.task, Attempt: s.attempt}
		s.docs[name] = d
		s.order = append(s.order, name)
	}
	return d
}

// Add appends parts to the card called name, creating it.
func (s *Set) Add(name string, parts ...Part) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.doc(name)
	d.Parts = append(d.Parts, parts...)
	if len(d.Parts) > MaxParts+1 {
		d.Parts = append(d.Parts[:MaxParts], Part{Kind: KindMarkdown, Text: "*More parts were added than a card holds; the last ones are not kept.*"})
	}
	s.dirty[name] = true
}

// Reset empties the card called name (a progress card drawn again).
func (s *Set) Reset(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc(name).Parts = nil
	s.dirty[name] = true
}

// Refresh saves the changed cards now if the last save was at least
// MinInterval ago, or else once that interval has passed.
func (s *Set) Refresh(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || s.timer != nil {
		return
	}
	wait := MinInterval - s.Now().Sub(s.last)
	if wait <= 0 {
		s.saveLocked(ctx, false)
		return
	}
	ctx = context.WithoutCancel(ctx)
	s.timer = time.AfterFunc(wait, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.timer = nil
		if !s.done {
			s.saveLocked(ctx, false)
		}
	})
}

// Finish saves every card for the last time: value parts that name an
// artifact get its value from resolve, and when the step failed each card
// gets an error part. It returns the first save that failed, if any.
func (s *Set) Finish(ctx context.Context, resolve func(artifact string) string, stepErr error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.done = true
	for _, name := range s.order {
		d := s.docs[name]
		for i, p := range d.Parts {
			if p.Kind == KindValue && p.Artifact != "" && resolve != nil {
				d.Parts[i].Text, d.Parts[i].Total = cut(resolve(p.Artifact), MaxText)
			}
		}
		if stepErr != nil {
			d.Parts = append(d.Parts, Error(stepErr.Error()))
		}
		s.dirty[name] = true
	}
	s.saveLocked(ctx, true)
	return s.err
}

// saveLocked saves the changed cards.
func (s *Set) saveLocked(ctx context.Context, final bool) {
	s.last = s.Now()
	for _, name := range s.order {
		if !s.dirty[name] {
			continue
		}
		d := s.docs[name]
		d.Version++
		d.Updated = s.last.UTC()
		d.Final = final
		data, err := json.Marshal(d)
		if err == nil {
			err = s.saver.SaveCard(ctx, d, data)
		}
		if err != nil {
			s.err = errors.Join(s.err, fmt.Errorf("card %s of task %s: %w", name, s.task, err))
			continue
		}
		delete(s.dirty, name)
	}
}
