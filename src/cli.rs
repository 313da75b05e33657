//! Every clap type: what the user typed. Commands turn these into their own options; nothing
//! here talks to a host or a file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    failure (including a malformed or read-only kubeconfig)
  2    usage error (invalid input, a prompt needed without a terminal, an ambiguous name)
  3    not found
  4    timed out
  5    host unreachable, unauthorized or forbidden
  6    already exists or conflict (including a requested local port in use)
  130  interrupted";

/// Ephemeral virtual Kubernetes clusters on any host cluster.
#[derive(Debug, Parser)]
#[command(name = "vc", version, about, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Kubeconfig file of the host cluster (default: $KUBECONFIG, else ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context of the host cluster (default: the current context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Host namespace (default: the cluster's own namespace `vc-NAME`; all namespaces for list)
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Print only results and errors
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// More detail on stderr
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No colours (also when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// Format of the data written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
    Name,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a virtual cluster
    #[command(after_help = CREATE_EXAMPLES)]
    Create(Box<CreateArgs>),
    /// List virtual clusters
    #[command(visible_alias = "ls", after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Show a virtual cluster's record, host objects, events and quota usage
    #[command(after_help = "Examples:\n  vc describe dev\n  vc describe dev -o json")]
    Describe(DescribeArgs),
    /// Delete virtual clusters and everything vc created for them
    #[command(visible_alias = "rm", after_help = DELETE_EXAMPLES)]
    Delete(DeleteArgs),
    /// Connect kubectl to a virtual cluster (background port-forward + kubeconfig context)
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(ConnectArgs),
    /// Stop the port-forward and remove the kubeconfig entries of a virtual cluster
    #[command(after_help = "Examples:\n  vc disconnect dev\n  vc disconnect --all")]
    Disconnect(DisconnectArgs),
    /// Print a kubeconfig for a virtual cluster without starting anything
    #[command(
        after_help = "Examples:\n  vc kubeconfig dev --server https://dev.example.com > dev.kubeconfig"
    )]
    Kubeconfig(KubeconfigArgs),
    /// Stop a virtual cluster's control plane and workloads, keeping its data
    #[command(after_help = "Examples:\n  vc pause dev\n  vc pause dev -n team-a")]
    Pause(PauseArgs),
    /// Start a paused virtual cluster again and wait until it is ready
    #[command(after_help = "Examples:\n  vc resume dev\n  vc resume dev -o json")]
    Resume(ResumeArgs),
    /// Move a virtual cluster's expiry, counted from now
    #[command(
        after_help = "Examples:\n  vc extend ci-42 --ttl 1h\n  vc extend dev --until 2030-01-01T00:00:00Z"
    )]
    Extend(ExtendArgs),
    /// Delete expired virtual clusters and pause idle ones
    #[command(after_help = GC_EXAMPLES)]
    Gc(GcArgs),
    /// Save a virtual cluster's datastore to one portable file
    #[command(after_help = SNAPSHOT_EXAMPLES)]
    Snapshot(SnapshotArgs),
    /// Create a virtual cluster from a snapshot file or URL
    #[command(after_help = RESTORE_EXAMPLES)]
    Restore(RestoreArgs),
    /// Copy a virtual cluster into a new one (snapshot and restore through a pipe)
    #[command(after_help = CLONE_EXAMPLES)]
    Clone(CloneArgs),
    /// Print the Roles and RoleBindings that let a user run vc in a namespace (for a cluster admin)
    #[command(after_help = RBAC_EXAMPLES)]
    Rbac(RbacArgs),
    /// Check the host, your rights, storage, network policies, images and local state
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// Print, install, run or remove the controller that reconciles VirtualCluster objects
    #[command(after_help = OPERATOR_EXAMPLES)]
    Operator(OperatorArgs),
    /// Hand a cluster made by vc create over to a VirtualCluster of the same name
    #[command(after_help = ADOPT_EXAMPLES)]
    Adopt(AdoptArgs),
    /// Runs the background port-forward of one virtual cluster (started by `vc connect`)
    #[command(hide = true)]
    Forwarder(ForwarderArgs),
    /// Print a shell completion script (cluster names complete from the host)
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the version, commit, engine release and supported Kubernetes versions
    #[command(after_help = "Examples:\n  vc version\n  vc version -o json\n  vc --version")]
    Version,
    /// Warm pools: ready virtual clusters that `vc create --from-pool` claims in seconds
    #[command(subcommand)]
    Pool(PoolCommand),
}

/// `vc pool ...`
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Declare a pool of ready virtual clusters of one spec and start its first members
    #[command(after_help = POOL_CREATE_EXAMPLES)]
    Create(PoolCreateArgs),
    /// List pools with their sizes, ready members and claims
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  vc pool list\n  vc pool list -o json"
    )]
    List,
    /// Show a pool's spec, members and figures (claims, claim and refill times)
    #[command(after_help = "Examples:\n  vc pool describe ci\n  vc pool describe ci -o json")]
    Describe(PoolNameArgs),
    /// Delete a pool and its unclaimed members (claimed clusters stay)
    #[command(visible_alias = "rm", after_help = "Examples:\n  vc pool delete ci --yes")]
    Delete(PoolDeleteArgs),
    /// Keep every pool full, starting members as others are claimed (`vc operator run` does
    /// the same)
    #[command(after_help = "Examples:\n  vc pool keep\n  vc pool keep --once")]
    Keep(PoolKeepArgs),
}

const POOL_CREATE_EXAMPLES: &str = "\
Examples:
  vc pool create ci --size 3
  vc pool create ci --size 5 --max-surge 2 --ttl 2h --kubernetes-version 1.33
  vc pool create cheap --size 2 --paused
  vc create pr-42 --from-pool ci";

/// `vc pool create`
#[derive(Debug, Args)]
pub struct PoolCreateArgs {
    /// Name of the pool (members are named POOL-xxxxx)
    pub name: String,
    /// How many unclaimed members to keep
    #[arg(long, value_name = "N")]
    pub size: u32,
    /// How many members may start at once, so a burst of claims cannot overload the host
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub max_surge: u32,
    /// Pause members while they wait (cheaper; a claim then includes a resume)
    #[arg(long)]
    pub paused: bool,
    /// Values file holding the members' spec (flags override it)
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Kubernetes minor version of the members, such as 1.33
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Lifetime of a claimed member, counted from its claim (30m, 2h, 1d)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Keep the members' datastores on an emptyDir
    #[arg(long)]
    pub ephemeral: bool,
    /// Drop the NetworkPolicies and the DNS restriction
    #[arg(long)]
    pub no_isolation: bool,
    /// Drop the ResourceQuota and the LimitRange
    #[arg(long)]
    pub no_quota: bool,
    /// Only write the pool's definition; `vc pool keep` or `vc operator run` starts members
    #[arg(long)]
    pub no_fill: bool,
}

/// `vc pool describe`
#[derive(Debug, Args)]
pub struct PoolNameArgs {
    /// Name of the pool
    pub name: String,
}

/// `vc pool delete`
#[derive(Debug, Args)]
pub struct PoolDeleteArgs {
    /// Name of the pool
    pub name: String,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// `vc pool keep`
#[derive(Debug, Args)]
pub struct PoolKeepArgs {
    /// Time between two passes over the pools
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration_arg)]
    pub interval: Duration,
    /// Make one pass and exit (non-zero when a member could not be started)
    #[arg(long)]
    pub once: bool,
}

const OPERATOR_EXAMPLES: &str = "\
Examples:
  vc operator crd > crd.yaml                   # the VirtualCluster CRD (also deploy/crd.yaml)
  vc operator install --image REF              # CRD, RBAC and a Deployment in vc-system
  vc operator run                              # reconcile from here, against the current context
  vc operator uninstall --yes

Declared clusters: kubectl apply -f a VirtualCluster (group vc.dev, short name vcl); see
docs/operator.md.";

/// `vc operator ...`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Print the VirtualCluster CustomResourceDefinition (YAML, or JSON with -o json)
    Crd,
    /// Reconcile VirtualCluster objects until SIGTERM (in-cluster, or against the current context)
    Run(OperatorRunArgs),
    /// Apply the CRD, the operator's RBAC and a Deployment running `vc operator run`
    Install(OperatorInstallArgs),
    /// Remove what install applied; refuses while VirtualClusters exist unless --force
    Uninstall(OperatorUninstallArgs),
}

#[derive(Debug, Args)]
pub struct OperatorRunArgs {
    /// Namespace of the operator's Lease (default: -n, else $VC_OPERATOR_NAMESPACE, else vc-system)
    #[arg(long, value_name = "NS", env = "VC_OPERATOR_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease (default: host name and process id)
    #[arg(long, value_name = "NAME", env = "VC_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// Serve /healthz, /readyz and /metrics on this address, such as 0.0.0.0:8080
    #[arg(long, value_name = "ADDR")]
    pub metrics_address: Option<std::net::SocketAddr>,
    /// How long the Lease holds without renewal (renewed every third of it)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "15s", hide = true)]
    pub lease_duration: Duration,
    /// How often the leader checks the warm pools (vc pool create) and refills them
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "5s")]
    pub pool_interval: Duration,
}

#[derive(Debug, Args)]
pub struct OperatorInstallArgs {
    /// Operator image (default: ghcr.io/vc-dev/vc:<this version>; build it from the Dockerfile)
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Print the objects as one v1 List instead of applying them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct OperatorUninstallArgs {
    /// Remove the CRD even while VirtualClusters exist (deleting them and their clusters)
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  vc completions bash > ~/.local/share/bash-completion/completions/vc
  vc completions zsh > ~/.zfunc/_vc        # with fpath=(~/.zfunc $fpath) before compinit
  vc completions fish > ~/.config/fish/completions/vc.fish

The script calls vc back for every completion, so it stays right across upgrades; cluster
names come from the host named by --kubeconfig, --context and -n on the command line, and a
host that does not answer within 1.5 s completes nothing rather than hanging the shell.";

const DOCTOR_EXAMPLES: &str = "\
Examples:
  vc doctor
  vc doctor -n team            # what a namespace admin needs in team
  vc doctor --skip-probes      # read-only: no throwaway objects
  vc doctor --fix -o json

Probes create a namespace vc-doctor-XXXXXX (with -n: objects named so in NS) holding a claim
of the default StorageClass, a pod with the engine images (imagePullPolicy IfNotPresent) and
two pods with a deny NetworkPolicy between them, and remove it all afterwards, also on
failure or Ctrl-C. Exit 1 when a check fails.";

const SNAPSHOT_EXAMPLES: &str = "\
Examples:
  vc snapshot dev                       # dev-YYYYmmdd-HHMMSS.vcsnap
  vc snapshot dev --to seeded.vcsnap
  vc snapshot dev --to - | gzip -t      # stream to stdout

Every key of the datastore, read at one revision by the engine itself; volumes of workloads
inside are not part of it (see docs/snapshots.md).";

const RESTORE_EXAMPLES: &str = "\
Examples:
  vc restore seeded.vcsnap --name pr-42 --ttl 2h
  vc restore https://artifacts.example.com/seeded.vcsnap --name ci
  ssh box vc snapshot dev --to - | vc restore - --name dev-copy
  vc create pr-42 --from-snapshot seeded.vcsnap

The whole file is verified (format version, entry count, SHA-256) before anything is created;
a URL is streamed twice (to verify, then to restore), never stored. Stdin (-) is read once:
the cluster is created from its metadata and the engine writes the datastore only after the
whole stream has verified; otherwise the new cluster is removed.";

const CLONE_EXAMPLES: &str = "\
Examples:
  vc clone prod-like rehearsal --kubernetes-version 1.36

--kubernetes-version may name the next minor after the source's (the newer API server reads
what the older one stored, as in an upgrade); an older minor, or skipping one, is refused.";

const RBAC_EXAMPLES: &str = "\
Examples:
  vc rbac team --user alice@example.com | kubectl apply -f -
  vc rbac team --group platform-devs -o json
  vc rbac ci --service-account ci/runner

The Role grants what vc applies and removes in that namespace and every right of the engine's
own Role, which RBAC lets a user grant only if they hold it: the built-in admin role lacks
endpoints and endpointslices writes, pods/status, pods/ephemeralcontainers, pods/resize,
and resourcequotas / limitranges writes. A second Role in default lets the user read the
kubernetes Endpoints (that object only), so the control plane's egress is pinned to the API
server. Nothing is sent to the host.";

const GC_EXAMPLES: &str = "\
Examples:
  vc gc --dry-run
  vc gc --yes
  vc gc -l ci=true --yes -o json

Deletes every cluster whose expiry (vc create --ttl, vc extend) has passed, in all namespaces
unless -n is given, and pauses every cluster idle for longer than its vc create --sleep-after.
A cluster without an expiry is never deleted, nor one made by another tool unless it carries
vc's expiry annotation. Safe to run from many jobs at once.";

const CREATE_EXAMPLES: &str = "\
Examples:
  vc create dev
  vc create ci-42 --kubernetes-version 1.33 --ttl 2h --label pr=42
  vc create dev -f values.yaml --quota cpu=8,memory=16Gi
  vc create dev --apply k8s/ --chart ./charts/web --chart-values web-values.yaml
  vc create dev --chart oci://ghcr.io/example/charts/web@1.2.3
  vc create dev --dry-run -o yaml
  vc create dev --operator --dry-run -o yaml > dev-vcl.yaml

Where the VirtualCluster resource is installed and an operator holds its Lease (vc-operator in
$VC_OPERATOR_NAMESPACE, else vc-system), vc create makes a VirtualCluster object NAME in the
cluster's namespace and waits on its status; the operator applies the host objects, and vc
connects as usual. --direct applies them from here instead. Restores, clones and pool claims
always take the direct path.";

const ADOPT_EXAMPLES: &str = "\
Examples:
  vc adopt dev
  vc adopt ci-42 -n team-a

Creates the VirtualCluster NAME in the cluster's namespace with the recorded spec, marked to
adopt it; the operator re-applies the host objects with owner references, and from then on the
cluster is the VirtualCluster's (kubectl delete vcl NAME -n NS removes it). Needs the CRD and a
running operator; a paused cluster is resumed first (vc resume NAME).";

const CONNECT_EXAMPLES: &str = "\
Examples:
  vc connect dev && kubectl get ns
  vc connect dev --no-switch --local-port 18443
  vc connect pr-42 -- kubectl apply -f k8s/
  vc connect dev --print > dev.kubeconfig
  vc connect dev --logs";

const LIST_EXAMPLES: &str = "\
Examples:
  vc list
  vc list -n team-a -o json
  vc ls -l pr=42 -o name";

const DELETE_EXAMPLES: &str = "\
Examples:
  vc delete dev
  vc rm ci-42 --yes --no-wait
  vc delete -l pr=42 --yes
  vc delete --all --yes";

/// `vc create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the virtual cluster (a DNS label: lowercase letters, digits, '-')
    pub name: String,
    /// Values file holding the spec (flags override it)
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Option<PathBuf>,
    /// Kubernetes minor version of the virtual cluster, such as 1.33
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Exact control-plane image (overrides --kubernetes-version)
    #[arg(long, value_name = "IMAGE")]
    pub control_plane_image: Option<String>,
    /// Engine (syncer) image
    #[arg(long, value_name = "IMAGE")]
    pub engine_image: Option<String>,
    /// Lifetime of the cluster (30m, 2h, 1d); after it, vc list shows it as Expired
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Idle limit (30m, 2h): vc gc pauses the cluster after this long without a request
    #[arg(long, value_name = "DURATION")]
    pub sleep_after: Option<String>,
    /// Label for the cluster's record, repeatable (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Drop the NetworkPolicies and the DNS restriction
    #[arg(long)]
    pub no_isolation: bool,
    /// Let workloads reach the public internet (private ranges stay closed)
    #[arg(long)]
    pub allow_internet: bool,
    /// Drop the ResourceQuota and the LimitRange
    #[arg(long, conflicts_with = "quota")]
    pub no_quota: bool,
    /// Keep the datastore on an emptyDir instead of a volume claim (a faster start; the data
    /// is lost when the control-plane pod is replaced)
    #[arg(long)]
    pub ephemeral: bool,
    /// Size of the datastore's volume claim, such as 10Gi (default 5Gi)
    #[arg(long, value_name = "QUANTITY", conflicts_with = "ephemeral")]
    pub storage_size: Option<String>,
    /// StorageClass of the datastore's volume claim (default: the host's default class)
    #[arg(long, value_name = "CLASS", conflicts_with = "ephemeral")]
    pub storage_class: Option<String>,
    /// Apply manifests inside the cluster once it is ready (server-side apply), repeatable: a
    /// file, a directory of .yaml/.yml/.json files, or an http(s) URL
    #[arg(long = "apply", value_name = "FILE|DIR|URL")]
    pub apply: Vec<String>,
    /// Install a Helm chart inside the cluster once it is ready, after the manifests,
    /// repeatable: a chart directory, a packaged .tgz, or oci://REGISTRY/PATH/NAME@VERSION.
    /// vc renders the chart itself (no Helm binary; docs/provisioning.md lists the template
    /// functions it supports) before it contacts the host
    #[arg(long = "chart", value_name = "PATH|OCI_REF")]
    pub charts: Vec<String>,
    /// Values file for --chart, repeatable (merged in order over the chart's values.yaml);
    /// with several charts, give each its valuesFiles in the values file's charts list
    #[arg(long = "chart-values", value_name = "FILE", requires = "charts")]
    pub chart_values: Vec<String>,
    /// ResourceQuota limits, such as cpu=4,memory=8Gi,pods=20 (also turns the quota on in a shared namespace)
    #[arg(long, value_name = "LIST")]
    pub quota: Option<String>,
    /// How long to wait for the cluster to become ready
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
    /// Return once the objects are applied, without waiting for readiness
    #[arg(long)]
    pub no_wait: bool,
    /// Apply again when the cluster exists
    #[arg(long)]
    pub upsert: bool,
    /// Print the objects that would be applied and contact nothing (with --operator: the
    /// Namespace and the VirtualCluster object)
    #[arg(long)]
    pub dry_run: bool,
    /// Apply the host objects from this process even when an operator holds the Lease
    #[arg(long, conflicts_with = "operator")]
    pub direct: bool,
    /// Create through a VirtualCluster object for the operator; refused (exit 3) when no
    /// operator holds the Lease
    #[arg(long)]
    pub operator: bool,
    /// Delete what was created when the cluster does not become ready
    #[arg(long)]
    pub cleanup_on_failure: bool,
    /// Do not connect once the cluster is ready
    #[arg(long)]
    pub no_connect: bool,
    /// Connect, but keep the kubeconfig's current context
    #[arg(long)]
    pub no_switch: bool,
    /// Local port of the forward (default: a free one, the same on every reconnect)
    #[arg(long, value_name = "PORT")]
    pub local_port: Option<u16>,
    /// Start from a snapshot written by `vc snapshot`: a file, or an http(s) URL of one
    #[arg(long, value_name = "FILE|URL")]
    pub from_snapshot: Option<String>,
    /// Keep what a failed restore made (by default it is deleted)
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Start from a snapshot of this running cluster, streamed (`vc clone`)
    #[arg(skip)]
    pub from_cluster: Option<String>,
    /// Claim a ready member of this pool (created the usual way when the pool is empty)
    #[arg(long, value_name = "POOL", conflicts_with_all = [
        "values", "kubernetes_version", "control_plane_image", "engine_image", "sleep_after",
        "labels", "no_isolation", "allow_internet", "no_quota", "ephemeral", "quota", "upsert",
        "dry_run", "from_snapshot", "no_wait", "apply", "charts", "chart_values", "storage_size", "storage_class",
        "node_selector", "tolerations", "runtime_class", "priority_class", "expose", "ingress_class", "datastore",
        "operator", "etcd_endpoint", "etcd_tls_secret",
    ])]
    pub from_pool: Option<String>,
    /// With --from-pool: wait (up to --timeout) for a member instead of creating the cluster
    #[arg(long, requires = "from_pool")]
    pub pool_wait: bool,
    // Boxed: it would make `Command::Create` much larger than the other variants.
    #[command(flatten)]
    pub hosting: Box<HostingArgs>,
}

/// Flags of `vc create` for where the cluster runs on the host.
#[derive(Debug, Default, Args)]
pub struct HostingArgs {
    /// Node label every pod must match, the control plane's and each synced one's; repeatable
    #[arg(long = "node-selector", value_name = "KEY=VALUE")]
    pub node_selector: Vec<String>,
    /// Toleration added to every pod, as KEY[=VALUE][:EFFECT] or * (repeatable)
    #[arg(long = "toleration", value_name = "TOLERATION")]
    pub tolerations: Vec<String>,
    /// RuntimeClass of every pod, such as gvisor or kata (it must exist on the host)
    #[arg(long = "runtime-class", value_name = "NAME")]
    pub runtime_class: Option<String>,
    /// PriorityClass of every pod (it must exist on the host)
    #[arg(long = "priority-class", value_name = "NAME")]
    pub priority_class: Option<String>,
    /// Expose the virtual API server on the host: nodeport, loadbalancer or
    /// ingress=HOST[:PORT] (TLS passed through; see docs/hosting.md); connect then uses that
    /// address, without a forward
    #[arg(long, value_name = "TYPE")]
    pub expose: Option<String>,
    /// IngressClass of the Ingress made by --expose ingress=HOST (default: the host's default)
    #[arg(long, value_name = "NAME")]
    pub ingress_class: Option<String>,
    /// Connect through a local forward even when the cluster is exposed
    #[arg(long, conflicts_with = "no_connect")]
    pub forward: bool,
    /// Datastore of the control plane: sqlite (the default, kine on the volume claim) or
    /// etcd (an etcd StatefulSet beside the control plane, or --etcd-endpoint)
    #[arg(long, value_name = "KIND")]
    pub datastore: Option<String>,
    /// With --datastore etcd: an external etcd's client URL, https://HOST:PORT, instead of
    /// deploying one
    #[arg(long = "etcd-endpoint", value_name = "URL")]
    pub etcd_endpoint: Option<String>,
    /// With --etcd-endpoint: a Secret in the cluster's namespace with the etcd client's
    /// ca.crt, tls.crt and tls.key
    #[arg(long = "etcd-tls-secret", value_name = "NAME")]
    pub etcd_tls_secret: Option<String>,
}

/// `vc snapshot`
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names())]
    pub name: String,
    /// File to write, `-` for stdout (default: NAME-YYYYmmdd-HHMMSS.vcsnap)
    #[arg(long, value_name = "FILE|-")]
    pub to: Option<PathBuf>,
    /// How long the whole snapshot may take
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// Flags of `vc restore` and `vc clone` that shape the new cluster, as on `vc create`.
#[derive(Debug, Args)]
pub struct FromSnapshotArgs {
    /// Kubernetes minor version of the new cluster (the source's or a newer one)
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Lifetime of the new cluster (30m, 2h, 1d)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Label for the new cluster's record, repeatable (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// How long to wait for the new cluster to become ready
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
    /// Do not connect once the cluster is ready
    #[arg(long)]
    pub no_connect: bool,
    /// Connect, but keep the kubeconfig's current context
    #[arg(long)]
    pub no_switch: bool,
    /// Keep what a failed restore made (by default it is deleted)
    #[arg(long)]
    pub keep_on_failure: bool,
}

impl FromSnapshotArgs {
    /// The create flags these stand for (everything else as `vc create` defaults it).
    pub fn into_create(self, name: String) -> CreateArgs {
        CreateArgs {
            name,
            values: None,
            kubernetes_version: self.kubernetes_version,
            control_plane_image: None,
            engine_image: None,
            ttl: self.ttl,
            sleep_after: None,
            labels: self.labels,
            no_isolation: false,
            allow_internet: false,
            no_quota: false,
            storage_size: None,
            storage_class: None,
            apply: Vec::new(),
            charts: Vec::new(),
            chart_values: Vec::new(),
            quota: None,
            timeout: self.timeout,
            no_wait: false,
            upsert: false,
            dry_run: false,
            direct: false,
            operator: false,
            cleanup_on_failure: false,
            no_connect: self.no_connect,
            no_switch: self.no_switch,
            local_port: None,
            from_snapshot: None,
            keep_on_failure: self.keep_on_failure,
            hosting: Box::default(),
            from_cluster: None,
            ephemeral: false,
            from_pool: None,
            pool_wait: false,
        }
    }
}

/// `vc restore`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot written by `vc snapshot`: a file, an http(s) URL of one (streamed), or - for stdin
    pub source: String,
    /// Name of the new cluster (default: the name in the snapshot)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub create: FromSnapshotArgs,
}

/// `vc clone`
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The running virtual cluster to copy
    #[arg(add = cluster_names())]
    pub source: String,
    /// Name of the new cluster
    pub name: String,
    #[command(flatten)]
    pub create: FromSnapshotArgs,
}

/// `vc connect`
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names())]
    pub name: String,
    /// Keep the kubeconfig's current context
    #[arg(long)]
    pub no_switch: bool,
    /// Local port of the forward (default: a free one, the same on every reconnect)
    #[arg(long, value_name = "PORT")]
    pub local_port: Option<u16>,
    /// Write a self-contained kubeconfig to stdout instead of merging it
    #[arg(long)]
    pub print: bool,
    /// Use this server URL (a Service or Ingress you expose) instead of a local forward
    #[arg(long, value_name = "URL", conflicts_with = "local_port")]
    pub server: Option<String>,
    /// Use a local forward even when the cluster is exposed (vc create --expose)
    #[arg(long, conflicts_with = "server")]
    pub forward: bool,
    /// Show the background forwarder's log
    #[arg(long, conflicts_with_all = ["print", "command"])]
    pub logs: bool,
    /// How long to wait for the cluster to become ready
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
    /// Run this command with KUBECONFIG set to a private kubeconfig and a private forward,
    /// then exit with its exit code (the user's kubeconfig is untouched)
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `vc disconnect`
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names(), required_unless_present = "all")]
    pub name: Option<String>,
    /// Disconnect every virtual cluster
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

/// `vc kubeconfig`
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names())]
    pub name: String,
    /// Server URL to write (default: the URL of the running forward, else the engine's own)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

/// `vc forwarder` (hidden): the global --kubeconfig, --context and -n name the host.
#[derive(Debug, Args)]
pub struct ForwarderArgs {
    pub name: String,
    #[arg(long)]
    pub host_server: String,
    #[arg(long)]
    pub local_port: u16,
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    #[arg(long)]
    pub gone_after_secs: Option<u64>,
}

/// `vc list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Label selector, such as pr=42 or team in (a,b)
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// `vc rbac`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("grantee").required(true).args(["user", "group", "service_account"])))]
pub struct RbacArgs {
    /// The namespace the rights are granted in
    pub namespace: String,
    /// Grant them to this user (as the host's authenticator names it)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Grant them to this group
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Grant them to this service account, as NAMESPACE/NAME
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub service_account: Option<String>,
}

/// `vc describe`
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names())]
    pub name: String,
}

/// `vc delete`
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Names of the virtual clusters
    #[arg(add = cluster_names(), required_unless_present_any = ["all", "selector"])]
    pub names: Vec<String>,
    /// Delete every virtual cluster made by vc (in -n NS, else in all namespaces)
    #[arg(long, conflicts_with_all = ["names", "selector"])]
    pub all: bool,
    /// Delete the virtual clusters matching this label selector
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", conflicts_with = "names")]
    pub selector: Option<String>,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Return without waiting for the objects to be gone
    #[arg(long)]
    pub no_wait: bool,
    /// Succeed when a named cluster does not exist
    #[arg(long)]
    pub ignore_not_found: bool,
    /// How long to wait for the objects to be gone
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// `vc pause`
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names())]
    pub name: String,
    /// How long to wait for the control plane and the workloads to stop
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// `vc adopt`
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// Name of the virtual cluster (made by vc create)
    #[arg(add = cluster_names())]
    pub name: String,
    /// How long to wait for the operator to take the cluster over
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// `vc resume`
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names())]
    pub name: String,
    /// How long to wait for the cluster to become ready
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// `vc extend`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("expiry").required(true).args(["ttl", "until"])))]
pub struct ExtendArgs {
    /// Name of the virtual cluster
    #[arg(add = cluster_names())]
    pub name: String,
    /// New lifetime counted from now (30m, 2h, 1d)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// New expiry as an RFC 3339 time, such as 2030-01-01T00:00:00Z
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// `vc gc`
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only the clusters matching this label selector
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Print what would be deleted or paused and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How long to wait for the deleted clusters to be gone
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// `vc doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Stay read-only: no throwaway pods, claim or NetworkPolicy
    #[arg(long)]
    pub skip_probes: bool,
    /// Stop stale forwarders and remove their state files and stale kubeconfig locks
    #[arg(long)]
    pub fix: bool,
    /// Image of the network probe pods (needs sh, httpd and nc)
    #[arg(long, value_name = "IMAGE", default_value = "busybox:1.36")]
    pub probe_image: String,
    /// How long each probe may wait
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

/// `vc completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate the script for
    pub shell: clap_complete::Shell,
}

/// Completes a cluster-name argument from the host (see `crate::complete`).
pub fn cluster_names() -> clap_complete::ArgValueCompleter {
    clap_complete::ArgValueCompleter::new(crate::complete::cluster_names)
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    crate::spec::parse_ttl(text).map_err(|_| {
        format!("{text:?} is not a duration: use a number with a unit, such as 90s, 5m or 1h")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
