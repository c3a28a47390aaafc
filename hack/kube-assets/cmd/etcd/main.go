// etcd, built from the upstream go.etcd.io/etcd/server/v3 module at the version go.mod pins
// (the release the pinned Kubernetes is tested with).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
