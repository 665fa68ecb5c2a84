package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	"stepwise.dev/stepwise/internal/datastore"
)

// cardSaver saves the cards of one attempt in the datastore.
type cardSaver struct {
	store   *datastore.Store
	path    datastore.TaskPath
	attempt int
}

func (c cardSaver) SaveCard(ctx context.Context, name string, data []byte) error {
	return c.store.PutCard(ctx, c.path, c.attempt, name, data)
}

// keepGraph stores the flow's graph with the run, once, for the UI and the
// default card. A failure is a warning: the task goes on.
func (x *Executor) keepGraph(ctx context.Context, run string) {
	var b bytes.Buffer
	if err := x.Def.Graph.WriteJSON(&b); err == nil {
		err = x.Store.PutGraph(ctx, x.Def.Name(), run, b.Bytes())
		if err != nil {
			fmt.Fprintf(x.Stderr, "stepwise: warning: the graph of run %s/%s is not kept for the UI: %v\n", x.Def.Name(), run, err)
		}
	}
}

// artifactText is the value of the flow's field name as indented JSON,
// for a card that shows an artifact.
func artifactText(flow reflect.Value, name string) string {
	f := flow.Elem().FieldByName(name)
	if !f.IsValid() || !f.CanInterface() {
		return fmt.Sprintf("(the flow has no artifact %q)", name)
	}
	data, err := json.MarshalIndent(f.Interface(), "", "  ")
	if err != nil {
		return fmt.Sprint(f.Interface())
	}
	return string(data)
}
