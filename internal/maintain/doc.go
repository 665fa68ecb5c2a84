// Package maintain holds the commands that look after a team's stores:
// rebuild-metadata (the metadata store from the datastore's records), gc
// (what no kept run needs) and doctor (is the set-up reachable and
// writable). The stepwise command has them; flow binaries do not carry
// them.
package maintain
