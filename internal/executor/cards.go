package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"stepwise.dev/stepwise/internal/card"
	"stepwise.dev/stepwise/internal/codec"
	"stepwise.dev/stepwise/internal/datastore"
)

// cardSaver saves the cards of one attempt in the datastore.
type cardSaver struct {
	store   *datastore.Store
	path    datastore.TaskPath
	attempt int
}

// SaveCard stores one version of one card of the attempt.
func (c cardSaver) SaveCard(ctx context.Context, d *card.Doc, data []byte) error {
	_, err := c.store.PutCard(ctx, c.path, c.attempt, d.Name, datastore.CardVersion{Version: d.Version, Saved: d.Updated, Final: d.Final}, data)
	return err
}

// artifactText is the value of the flow's field name as indented JSON,
// for a card that shows an artifact.
func artifactText(flow reflect.Value, name string) string {
	f := flow.Elem().FieldByName(name)
	if !f.IsValid() || !f.CanInterface() {
		return fmt.Sprintf("(the flow has no artifact %q)", name)
	}
	if text, ok := codec.ArrowText(f.Interface(), 20); ok {
		return text
	}
	data, err := json.MarshalIndent(f.Interface(), "", "  ")
	if err != nil {
		return fmt.Sprint(f.Interface())
	}
	return string(data)
}
