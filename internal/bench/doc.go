// Package bench holds Stepwise's benchmark suite, each figure with its
// floor measured in the same run on the same machine: the flow program's
// show and check, the seed flow end to end, foreach 100 and 1,000 wide
// (floor: a do-nothing Go binary started as the local backend starts
// tasks, in sequence and by 16 workers, between the benchmark's own
// iterations); artifact save and load (floor: a plain write and read of
// the same bytes); listing runs; S3 on MinIO (floor: plain parallel PUT
// and GET). Run it with ./scripts/bench, which prints one table of
// figures, floors, ratios and targets (internal/bench/cmd/benchtable).
package bench
