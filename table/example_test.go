package table_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow/array"

	"stepwise.dev/stepwise/table"
)

type Sale struct {
	Region string
	Day    int32
	User   int64
	Cents  int64
}

// Write a partitioned dataset from structs, then read one partition's
// column back as Arrow batches.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example-table-")
	defer os.RemoveAll(dir)
	loc := filepath.Join(dir, "sales")

	var sales []Sale
	for i := range 1000 {
		sales = append(sales, Sale{Region: []string{"eu", "us"}[i%2], Day: int32(i % 5), User: int64(i), Cents: int64(i % 100)})
	}
	v, err := table.WriteRows(ctx, loc, sales, &table.WriteOptions{PartitionBy: []string{"region", "day"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("version", v.Version)

	r, err := table.Open(ctx, loc, &table.ReadOptions{Columns: []string{"cents"}, Filter: "region = 'eu' and day >= 3"})
	if err != nil {
		fmt.Println(err)
		return
	}
	var sum, rows int64
	for rec, err := range r.All() {
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, c := range rec.Column(0).(*array.Int64).Int64Values() {
			sum += c
		}
		rows += rec.NumRows()
	}
	fmt.Println(rows, "rows, sum", sum)
	// Output:
	// version 1
	// 200 rows, sum 10200
}

// Read a small table into a slice of structs; a field whose type does not
// match its column is an error naming both.
func ExampleRead() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example-table-")
	defer os.RemoveAll(dir)
	loc := filepath.Join(dir, "rates")
	type Rate struct {
		Region string
		PerMil int64
	}
	if _, err := table.WriteRows(ctx, loc, []Rate{{"eu", 900}, {"us", 1000}}, nil); err != nil {
		fmt.Println(err)
		return
	}
	rates, err := table.Read[Rate](ctx, loc, nil)
	fmt.Println(rates, err)

	type Wrong struct {
		Region string
		PerMil string
	}
	_, err = table.Read[Wrong](ctx, loc, nil)
	fmt.Println(err != nil)
	// Output:
	// [{eu 900} {us 1000}] <nil>
	// true
}
