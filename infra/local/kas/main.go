// kas runs a real Kubernetes control plane for secret-sync's local stack, in one process:
// an embedded etcd, the kube-apiserver of k8s.io/kubernetes, and the garbage-collector,
// namespace and service-account controllers of kube-controller-manager. It is the same
// code a cluster runs (CRD validation, server-side apply, watches, ownerReference GC),
// with nothing but loopback listeners.
//
//	kas serve --data-dir DIR [--apiserver-port 16443] [--etcd-port 12379]
//	kas kubectl --kubeconfig DIR/kubeconfig get secrets -A
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery"
	cacheddiscovery "k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/component-base/cli"
	"k8s.io/controller-manager/pkg/informerfactory"
	"k8s.io/klog/v2"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/controller/certificates/rootcacertpublisher"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/controller/garbagecollector"
	"k8s.io/kubernetes/pkg/controller/namespace"
	"k8s.io/kubernetes/pkg/controller/nodelifecycle"
	"k8s.io/kubernetes/pkg/controller/replicaset"
	"k8s.io/kubernetes/pkg/controller/serviceaccount"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "serve":
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "kas serve:", err)
			os.Exit(1)
		}
	case "kubectl":
		cmd := kubectl.NewDefaultKubectlCommand()
		cmd.SetArgs(os.Args[2:])
		os.Exit(cli.Run(cmd))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kas serve --data-dir DIR [--apiserver-port N] [--etcd-port N] | kas kubectl ARGS...")
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "directory for etcd data, certificates, keys and the kubeconfig (required)")
	apiPort := fs.Int("apiserver-port", 16443, "kube-apiserver secure port on 127.0.0.1")
	etcdPort := fs.Int("etcd-port", 12379, "etcd client port on 127.0.0.1 (the peer port is this plus one)")
	verbosity := fs.Int("v", 0, "klog verbosity of the apiserver and controllers")
	nodeControllers := fs.Bool("node-controllers", false,
		"also run what Pods on a node need: kube-scheduler and the node-lifecycle, deployment, replicaset and root-CA-publisher controllers")
	servingIPs := fs.String("serving-ips", "",
		"comma-separated addresses besides 127.0.0.1 the serving certificate is valid for (where Pods on a local node reach the apiserver)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var extraIPs []net.IP
	for _, s := range strings.Split(*servingIPs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--serving-ips: %q is not an IP address", s)
		}
		extraIPs = append(extraIPs, ip)
	}
	if *dataDir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	pki, err := ensurePKI(filepath.Join(dir, "pki"), extraIPs)
	if err != nil {
		return fmt.Errorf("preparing certificates: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	etcd, err := startEtcd(filepath.Join(dir, "etcd"), *etcdPort)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

	apiErr := make(chan error, 1)
	go func() { apiErr <- runAPIServer(ctx, pki, *apiPort, *etcdPort, *verbosity) }()

	server := fmt.Sprintf("https://127.0.0.1:%d", *apiPort)
	cfg := &rest.Config{
		Host:            server,
		BearerToken:     pki.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: pki.caPEM},
		QPS:             200,
		Burst:           400,
	}
	if err := waitReady(ctx, cfg, apiErr); err != nil {
		return err
	}
	if err := writeKubeconfig(filepath.Join(dir, "kubeconfig"), server, pki); err != nil {
		return err
	}
	if *nodeControllers {
		if err := startNodeControllers(ctx, cfg, pki.caPEM, filepath.Join(dir, "kubeconfig")); err != nil {
			return fmt.Errorf("starting the node controllers: %w", err)
		}
	}
	if err := startControllers(ctx, cfg); err != nil {
		return fmt.Errorf("starting controllers: %w", err)
	}
	klog.Infof("control plane ready at %s", server)

	select {
	case <-ctx.Done():
		// The apiserver watches the same signals and drains itself; wait for it.
		select {
		case <-apiErr:
		case <-time.After(20 * time.Second):
		}
		return nil
	case err := <-apiErr:
		return fmt.Errorf("kube-apiserver exited: %w", err)
	case err := <-etcd.Err():
		return fmt.Errorf("etcd failed: %w", err)
	}
}

func startEtcd(dir string, port int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	client := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(port))}
	peer := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(port+1))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	// A development store: losing the last writes on a crash is acceptable, fsync latency is not.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd was not ready within 60s")
	}
}

func runAPIServer(ctx context.Context, pki *pki, port, etcdPort, verbosity int) error {
	cmd := apiserver.NewAPIServerCommand()
	cmd.SetArgs([]string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--client-ca-file=" + pki.caCert,
		"--token-auth-file=" + pki.tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.saPublic,
		"--service-account-signing-key-file=" + pki.saPrivate,
		// No nodes, so no endpoints for the kubernetes Service; a loopback address is refused there.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		fmt.Sprintf("-v=%d", verbosity),
	})
	return cmd.ExecuteContext(ctx)
}

func waitReady(ctx context.Context, cfg *rest.Config, apiErr <-chan error) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after 120s: %v", err)
		}
		select {
		case err := <-apiErr:
			return fmt.Errorf("kube-apiserver exited during startup: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startControllers wires the three kube-controller-manager controllers secret-sync relies on,
// the way kube-controller-manager itself does (cmd/kube-controller-manager/app/core.go).
func startControllers(ctx context.Context, cfg *rest.Config) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	metadataClient, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	discoveryClient, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cacheddiscovery.NewMemCacheClient(discoveryClient))

	shared := informers.NewSharedInformerFactory(client, 0)
	meta := metadatainformer.NewSharedInformerFactory(metadataClient, 0)
	started := make(chan struct{})

	gc, err := garbagecollector.NewGarbageCollector(ctx, client, metadataClient, mapper,
		garbagecollector.DefaultIgnoredResources(), informerfactory.NewInformerFactory(shared, meta), started)
	if err != nil {
		return err
	}
	ns := namespace.NewNamespaceController(ctx, client, metadataClient,
		client.Discovery().ServerPreferredNamespacedResources, shared.Core().V1().Namespaces(),
		5*time.Minute, corev1.FinalizerKubernetes)
	sa, err := serviceaccount.NewServiceAccountsController(klog.FromContext(ctx),
		shared.Core().V1().ServiceAccounts(), shared.Core().V1().Namespaces(), client,
		serviceaccount.DefaultServiceAccountsControllerOptions())
	if err != nil {
		return err
	}

	shared.Start(ctx.Done())
	meta.Start(ctx.Done())
	close(started)

	// New resource types (our CRDs) are picked up by the GC's discovery resync; a short period
	// makes a freshly installed CRD's owners collectable within seconds.
	const gcResync = 5 * time.Second
	go gc.Run(ctx, 4, gcResync)
	go gc.Sync(ctx, discoveryClient, gcResync)
	go ns.Run(ctx, 2)
	go sa.Run(ctx, 1)
	return nil
}

// startNodeControllers wires what a Deployment needs to become Pods on a node: kube-scheduler
// (in-process), and kube-controller-manager's node-lifecycle, deployment, replicaset and
// root-CA-publisher (`kube-root-ca.crt` in every namespace, which projected service-account
// volumes mount) controllers, as kube-controller-manager starts them.
func startNodeControllers(ctx context.Context, cfg *rest.Config, caPEM []byte, kubeconfig string) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	shared := informers.NewSharedInformerFactory(client, 0)
	dc, err := deployment.NewDeploymentController(ctx, shared.Apps().V1().Deployments(),
		shared.Apps().V1().ReplicaSets(), shared.Core().V1().Pods(), client)
	if err != nil {
		return err
	}
	rsc := replicaset.NewReplicaSetController(ctx, shared.Apps().V1().ReplicaSets(),
		shared.Core().V1().Pods(), client, replicaset.BurstReplicas)
	ca, err := rootcacertpublisher.NewPublisher(shared.Core().V1().ConfigMaps(),
		shared.Core().V1().Namespaces(), client, caPEM)
	if err != nil {
		return err
	}
	// kube-controller-manager's defaults: a node is marked NotReady 50 s after its last
	// heartbeat, and the not-ready taint a kubelet registers with goes once the node is Ready.
	lifecycle, err := nodelifecycle.NewNodeLifecycleController(ctx,
		shared.Coordination().V1().Leases(), shared.Core().V1().Pods(), shared.Core().V1().Nodes(),
		shared.Apps().V1().DaemonSets(), client,
		5*time.Second, time.Minute, 50*time.Second, 0.1, 0.01, 50, 0.55)
	if err != nil {
		return err
	}
	shared.Start(ctx.Done())
	go lifecycle.Run(ctx)
	go dc.Run(ctx, 2)
	go rsc.Run(ctx, 2)
	go ca.Run(ctx, 1)

	// Not through its cobra command: that applies the logging configuration again (the
	// apiserver's did already) and exits the process when it cannot.
	opts := scheduleroptions.NewOptions()
	fs := pflag.NewFlagSet("kube-scheduler", pflag.ContinueOnError)
	for _, set := range opts.Flags.FlagSets {
		fs.AddFlagSet(set)
	}
	if err := fs.Parse([]string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
	}); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := scheduler.Setup(ctx, opts)
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	go func() {
		if err := scheduler.Run(ctx, cc, sched); err != nil && ctx.Err() == nil {
			klog.Errorf("kube-scheduler exited: %v", err)
		}
	}()
	return nil
}
