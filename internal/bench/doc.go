// Package bench holds Stepwise's benchmark suite: end-to-end runs of the
// examples, foreach widths, artifact throughput, run listing and S3
// throughput. Run it with ./scripts/bench, which prints a table.
package bench
