// Command table writes a generated sales dataset as partitioned Parquet,
// then reads it back with a partition filter and a projection, sums each
// region in its own task, and joins the sums with a small table of
// exchange rates:
//
//	go run ./examples/table run --rows 3000000
//	go run ./examples/table run --data s3://bucket/sales   # on S3 (AWS_* settings)
package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/s3"     // s3:// data locations
	_ "stepwise.dev/stepwise/backend/sqlite" // runs recorded in .stepwise/, no set-up
	"stepwise.dev/stepwise/table"
)

// Regions of the generated sales; row i is in Regions[i%len(Regions)].
var Regions = []string{"asia", "eu", "us"}

// Days of the generated sales: row i is on day (i/7)%Days.
const Days = 5

// Sale is row i of the generated dataset.
func Sale(i int) (region string, day int32, user int64, cents int64) {
	return Regions[i%len(Regions)], int32((i / 7) % Days), int64(i % 100_000), int64(i*7919) % 10_000
}

// Rate is a row of the exchange-rate table: cents of a region's currency
// per 1,000 cents of the reporting one.
type Rate struct {
	Region string
	PerMil int64
}

// Table is the flow.
type Table struct {
	Rows    int    `param:"rows" help:"how many sales rows to generate"`
	Data    string `param:"data" help:"where the datasets go: a directory or s3://bucket/prefix"`
	FromDay int    `param:"from-day" help:"sum the sales of this day and later"`

	Regions []string
	// Per region (in the foreach): the sum of its sales and their count.
	Region string
	Cents  int64
	Count  int64
	// Joined: each region's sum converted with its rate, and the total.
	Converted map[string]int64
	Total     int64
}

// Graph declares the steps.
func (f *Table) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Foreach("Regions", f.SumRegion)
	g.Step(f.SumRegion).Next(f.Join)
	g.Step(f.Join).Next(f.End)
	g.Step(f.End)
}

func (f *Table) sales() string { return strings.TrimSuffix(f.Data, "/") + "/sales" }
func (f *Table) rates() string { return strings.TrimSuffix(f.Data, "/") + "/rates" }

// Start writes the sales dataset, partitioned by region and day, in
// batches of 64K rows, and the rates table from a slice of structs.
func (f *Table) Start(ctx context.Context) error {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "region", Type: arrow.BinaryTypes.String},
		{Name: "day", Type: arrow.PrimitiveTypes.Int32},
		{Name: "user", Type: arrow.PrimitiveTypes.Int64},
		{Name: "cents", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	w, err := table.NewWriter(ctx, f.sales(), schema, &table.WriteOptions{PartitionBy: []string{"region", "day"}})
	if err != nil {
		return err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for start := 0; start < f.Rows; start += 64 << 10 {
		for i := start; i < min(start+64<<10, f.Rows); i++ {
			region, day, user, cents := Sale(i)
			b.Field(0).(*array.StringBuilder).Append(region)
			b.Field(1).(*array.Int32Builder).Append(day)
			b.Field(2).(*array.Int64Builder).Append(user)
			b.Field(3).(*array.Int64Builder).Append(cents)
		}
		rec := b.NewRecordBatch()
		err := w.Write(ctx, rec)
		rec.Release()
		if err != nil {
			return errorsJoin(err, w.Abort(ctx))
		}
	}
	v, err := w.Commit(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %d sales rows to %s (version %d)\n", f.Rows, v.Location, v.Version)
	if _, err := table.WriteRows(ctx, f.rates(), []Rate{{"asia", 1500}, {"eu", 900}, {"us", 1000}}, nil); err != nil {
		return err
	}
	f.Regions = Regions
	return nil
}

// SumRegion reads one region's sales from FromDay on (the filter skips
// the other regions' and days' files unopened), only the cents column.
func (f *Table) SumRegion(ctx context.Context, region string) error {
	f.Region = region
	r, err := table.Open(ctx, f.sales(), &table.ReadOptions{
		Columns: []string{"cents"},
		Filter:  fmt.Sprintf("region = '%s' and day >= %d", region, f.FromDay),
	})
	if err != nil {
		return err
	}
	defer r.Close()
	for rec, err := range r.All() {
		if err != nil {
			return err
		}
		for _, c := range rec.Column(0).(*array.Int64).Int64Values() {
			f.Cents += c
		}
		f.Count += rec.NumRows()
	}
	return nil
}

// Join joins the regions' sums with their rates.
func (f *Table) Join(ctx context.Context, in stepwise.Inputs[*Table]) error {
	rates, err := table.Read[Rate](ctx, f.rates(), nil)
	if err != nil {
		return err
	}
	perMil := map[string]int64{}
	for _, r := range rates {
		perMil[r.Region] = r.PerMil
	}
	f.Converted = map[string]int64{}
	for _, t := range in.All() {
		rate, ok := perMil[t.Region]
		if !ok {
			return fmt.Errorf("no exchange rate for region %s in %s", t.Region, f.rates())
		}
		f.Converted[t.Region] = t.Cents * 1000 / rate
		f.Total += f.Converted[t.Region]
		f.Count += t.Count
	}
	return nil
}

// End prints the result.
func (f *Table) End(context.Context) error {
	regions := make([]string, 0, len(f.Converted))
	for r := range f.Converted {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		fmt.Printf("%s: %d\n", r, f.Converted[r])
	}
	fmt.Printf("total of %d sales from day %d: %d\n", f.Count, f.FromDay, f.Total)
	return nil
}

func errorsJoin(a, b error) error {
	if b == nil {
		return a
	}
	return fmt.Errorf("%w (and cleaning up: %v)", a, b)
}

func main() { stepwise.Main(&Table{Rows: 3_000_000, Data: "table-data", FromDay: 2}) }
