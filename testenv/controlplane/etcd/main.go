// Command etcd is the etcd server that the tests' Kubernetes control plane
// stores its objects in, built from etcd's server module at the version that
// go.mod pins (the command-line is etcd's own: see etcd --help).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
