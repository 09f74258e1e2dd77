// Command kubelet is the kubelet of k8s.io/kubernetes, at the version this module's go.mod pins
// (the same as kas's), for the local stack's opt-in node (infra/local/node).
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
