// Command required is a flow with a parameter that has no default: a
// deployed flow's runs start with no one to give it, so deploying it is
// refused.
package main

import (
	"context"
	"fmt"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/kubernetes"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
)

// Required needs a date.
type Required struct {
	Date string `param:"date,required" help:"the day to process"`
}

func (f *Required) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

func (f *Required) Start(context.Context) error { return nil }
func (f *Required) End(context.Context) error   { fmt.Println(f.Date); return nil }

func main() { stepwise.Main(&Required{}) }
