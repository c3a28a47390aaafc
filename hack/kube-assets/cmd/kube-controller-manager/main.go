// kube-controller-manager, built from the upstream k8s.io/kubernetes module at the version
// go.mod pins. The test control plane runs only the controllers a cluster without nodes still
// needs (namespace termination, garbage collection), as a real cluster would run them.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
