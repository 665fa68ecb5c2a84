package stepwise_test

import (
	"context"
	"fmt"

	"stepwise.dev/stepwise"
)

// Images reads a prefix of images in a step and writes a result next to
// them. The flow's program imports _ "stepwise.dev/stepwise/backend/s3".
type Images struct {
	Count int
	Bytes int64
}

func (f *Images) Start(ctx context.Context) error {
	s, err := stepwise.Objects(ctx, &stepwise.ObjectsOptions{Root: "s3://ml-data/images/"})
	if err != nil {
		return err
	}
	defer s.Close()                              // removes the temporary files of Download
	objs, err := s.GetPrefix(ctx, "2026-12-01/") // every object under the prefix, 16 requests in flight
	if err != nil {
		return err
	}
	for _, o := range objs {
		f.Count++
		f.Bytes += int64(len(o.Data))
	}
	// A large file to disk, read as parallel ranged requests.
	files, err := s.Download(ctx, "s3://ml-data/models/base.bin")
	if err != nil {
		return err
	}
	fmt.Println("model at", files[0].Path)
	header, err := s.GetRange(ctx, "s3://ml-data/models/base.bin", 0, 4096)
	if err != nil {
		return err
	}
	_ = header
	_, err = s.Put(ctx, stepwise.PutObject{Key: "2026-12-01/summary.txt", Data: fmt.Appendf(nil, "%d images, %d bytes", f.Count, f.Bytes)})
	return err
}

// Bulk reads and writes of objects on S3 inside a step, with the run's S3
// settings. Without a Root, keys are relative to the run's own place in
// its datastore (DATASTORE/objects/FLOW/RUN_ID/), or s3:// URLs.
func ExampleObjects() {
	f := &Images{}
	// In a flow, Start is a step: Stepwise calls it with the task's context.
	if err := f.Start(context.Background()); err != nil {
		fmt.Println("the example needs a bucket:", err != nil)
	}
}
