// Command local is a flow with a step placed on the launcher's machine: a
// deployed flow has none, so deploying it is refused.
package main

import (
	"context"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/kubernetes"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
)

// Local reads a file of the laptop it runs on.
type Local struct{}

func (f *Local) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.ReadLaptopFile)
	g.Step(f.ReadLaptopFile).Compute(stepwise.Local{}).Next(f.End)
	g.Step(f.End)
}

func (f *Local) Start(context.Context) error          { return nil }
func (f *Local) ReadLaptopFile(context.Context) error { return nil }
func (f *Local) End(context.Context) error            { return nil }

func main() { stepwise.Main(&Local{}) }
