// Package datastore stores artifacts content-addressed, and the per-task
// records that say which artifact a task produced under which name.
//
// The storage itself is a [Backend]: plain objects under string keys, put
// atomically (a reader sees a whole object or none). The local directory
// backend lives in package local, the S3 backend in package s3; package
// storetest holds the conformance suite every backend passes. Tasks run as
// separate processes, possibly on several machines: everything here is
// safe with concurrent writers anywhere.
//
// # Key layout
//
//	blobs/<2 hex>/<64 hex>                                   artifact values, by content key
//	runs/<Flow>/<Run>/run.json                               run record (RunRecord), written when it starts
//	runs/<Flow>/<Run>/end.json                               how it ended (RunEnd)
//	runs/<Flow>/<Run>/tags.json                              its user tags after a change (RunTags)
//	runs/<Flow>/<Run>/<Step>/<Task>/task.json                task records
//	logs/<Flow>/<Run>/<Step>/<Task>/<attempt>/<stream>/<8 digits>  log chunks (see LogPrefix)
//	cards/<Flow>/<Run>/graph.json                            the flow's graph, written with the run, for the UI
//	cards/<Flow>/<Run>/<Step>/<Task>/<attempt>/<name>.versions  the versions kept of a card of a task attempt (their blobs' keys)
//	cards/<Flow>/<Run>/<Step>/<Task>/<attempt>/<name>.json    its latest version, also as is (see PutCard)
//	gc/blobs/<2 hex>/<64 hex>                                notes of blobs gc deleted (Collected)
//	gc/logs/<Flow>/<Run>                                     notes of runs whose logs gc deleted
//
// # Blobs
//
// A blob is the encoded value of one artifact, given as parts to
// [Store.PutBlob]. Its content key is the lowercase hex SHA-256 of the
// concatenated parts; a value stored by many tasks or runs is kept once
// (PutBlob hashes, asks the backend whether the object exists, and writes
// nothing if it does). The object is a 28-byte header (magic "SWBL",
// format version, codec raw or zstd, blob length, payload length, CRC-32C
// of the header) and the payload: the blob itself, or zstd frames (fastest
// level, 4 MiB of blob each, compressed on all cores). PutBlob compresses
// only when a sample of the blob (four 16 KiB windows) shrinks by 10% or
// more, so random data does not pay for compression. [Store.GetBlob]
// reads into one buffer of the blob's length, checks the lengths, and
// checks the SHA-256 against the key (hashing beside the reading); any
// damage is an error wrapping [ErrCorrupt].
//
// # Task records
//
// A task record ([TaskRecord]) is JSON:
//
//	{
//	  "format": 1,
//	  "sha256": "<hex SHA-256 of the compact JSON of record>",
//	  "record": {"path": {"flow": ..., "run": ..., "step": ..., "task": ...},
//	             "attempt": 0, "artifacts": [{"name", "key", "type", "size"}...],
//	             "foreach": [{"step", "index", "count"}...], "cloned_from": "F/R/S/T"}
//	}
//
// Artifacts are sorted by name, foreach frames go outermost first.
// [Store.GetTask] verifies the checksum and that the record is the one of
// the task asked for.
//
// # Cards
//
// Each saved version of a card is a blob, like an artifact's value; the
// card's versions record lists the final version and at most
// [MaxCardVersions] others, the latest. [Store.GetCard] reads any version
// kept, and reads cards saved before versions were kept (their latest
// alone).
//
// # Garbage collection
//
// Package gc deletes blobs no kept run refers to (by its task records,
// its tasks in the metadata store, or the versions of its cards); a blob it deletes
// leaves a note, and GetBlob of it says "collected by gc on DATE"
// (ErrCollected). PutBlob gives a blob it reuses that is older than
// RefreshAge a new modification time, so that gc's grace period protects
// every blob a running task has stored or reused.
//
// # Durability
//
// Run records (run, end and tags) are made durable (fsynced) before Put
// returns. Blobs, task records and log chunks are not: see [NeedsSync]
// for the measurements behind that and for how damage from a machine
// crash is caught.
package datastore
