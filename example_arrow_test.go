package stepwise_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise"
	"stepwise.dev/stepwise/client"
)

// Scores keeps a table as an Arrow artifact: start makes it, end reads it
// back from the datastore into the same field.
type Scores struct {
	Table arrow.Table // stored as an Arrow IPC file, readable by any Arrow library
	Best  float64
}

func (f *Scores) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

func (f *Scores) Start(context.Context) error {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"ann", "bob", "cy"}, nil)
	b.Field(1).(*array.Float64Builder).AppendValues([]float64{0.71, 0.93, 0.88}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	f.Table = array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
	return nil
}

func (f *Scores) End(context.Context) error {
	for _, c := range f.Table.Column(1).Data().Chunks() {
		for _, v := range c.(*array.Float64).Float64Values() {
			f.Best = max(f.Best, v)
		}
	}
	return nil
}

// A field of type arrow.Table (or arrow.RecordBatch) is an Arrow artifact:
// the next step gets it back in the field, and the client as Arrow. The
// caller owns what client.Get returns and releases it.
func ExampleRun_arrow() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))

	run, err := stepwise.Run(ctx, &Scores{}, &stepwise.RunOptions{Datastore: filepath.Join(dir, "ds")})
	if err != nil {
		fmt.Println(err)
		return
	}
	end, _ := run.EndTask(ctx)
	best, _ := client.Get[float64](ctx, end, "Best")
	tbl, err := client.Get[arrow.Table](ctx, end, "Table")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tbl.Release()
	a, _ := end.Artifact("Table")
	fmt.Println(best, tbl.NumRows(), tbl.Schema().Field(0).Name, a.Type)
	// Output: 0.93 3 name arrow.Table
}
