// Package datastore stores artifacts content-addressed, and the per-task
// records that say which artifact a task produced under which name.
//
// The storage itself is a [Backend]: plain objects under string keys. The
// local directory backend lives in package local, the S3 backend in package
// s3; package storetest holds the conformance suite every backend passes.
package datastore
