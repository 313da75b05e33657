//! The engine configuration (`config.yaml`) of the pinned release as typed structs: every key the
//! engine's strict parser accepts, and nothing else. Presence is kept exactly (every field is
//! optional and absent fields are not written), so a configuration survives a round trip
//! through these types unchanged. Subtrees the engine itself treats as free-form stay
//! `serde_json::Value`. No defaults live here; see the defaults data file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A key that takes `true`, `false` or a word such as `auto`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StrBool {
    Bool(bool),
    Word(String),
}

impl StrBool {
    /// Whether the value means "on" (`true` or `"true"`), as the engine reads it.
    pub fn is_true(&self) -> bool {
        match self {
            StrBool::Bool(b) => *b,
            StrBool::Word(w) => w.eq_ignore_ascii_case("true"),
        }
    }
}

/// Declares configuration structs: each field is `Option<T>` under its exact engine key,
/// omitted when absent, and an unknown key is an error.
macro_rules! config_structs {
    ($($name:ident { $($field:ident : $ty:ty = $key:tt),* $(,)? })*) => {
        $(
            #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct $name {
                $(
                    #[serde(rename = $key, default, skip_serializing_if = "Option::is_none")]
                    pub $field: Option<$ty>,
                )*
            }
        )*
    };
}

config_structs! {
    Config {
        global: Value = "global",
        export_kube_config: ExportKubeConfig = "exportKubeConfig",
        sync: SyncSection = "sync",
        integrations: Integrations = "integrations",
        deploy: Deploy = "deploy",
        networking: Networking = "networking",
        policies: Policies = "policies",
        control_plane: ControlPlane = "controlPlane",
        private_nodes: PrivateNodes = "privateNodes",
        rbac: Rbac = "rbac",
        plugins: BTreeMap<String, Plugins> = "plugins",
        experimental: Experimental = "experimental",
        telemetry: Telemetry = "telemetry",
        service_cidr: String = "serviceCIDR",
        pro: bool = "pro",
        plugin: BTreeMap<String, Plugin> = "plugin",
        logging: Logging = "logging",
        sleep: Value = "sleep",
        snapshots: Value = "snapshots",
        deletion: Value = "deletion",
        platform: Value = "platform",
    }
    PrivateNodes {
        enabled: bool = "enabled",
        kubelet: Kubelet = "kubelet",
        auto_upgrade: AutoUpgrade = "autoUpgrade",
        join_node: JoinConfiguration = "joinNode",
        auto_nodes: Vec<PrivateNodesAutoNodes> = "autoNodes",
        vpn: PrivateNodesVPN = "vpn",
        daemon: PrivateNodesDaemon = "daemon",
        default_profile: String = "defaultProfile",
    }
    PrivateNodesDaemon {
        enabled: bool = "enabled",
        control_plane_load_balancer: ControlPlaneLoadBalancer = "controlPlaneLoadBalancer",
    }
    ControlPlaneLoadBalancer {
        enabled: bool = "enabled",
        kube_proxy: bool = "kubeProxy",
        port: i64 = "port",
    }
    CloudControllerManager {
        enabled: bool = "enabled",
    }
    PrivateNodesVPN {
        enabled: bool = "enabled",
        node_to_node: PrivateNodesVPNNodeToNode = "nodeToNode",
    }
    PrivateNodesVPNNodeToNode {
        enabled: bool = "enabled",
    }
    PrivateNodesAutoNodes {
        provider: String = "provider",
        properties: BTreeMap<String, String> = "properties",
        r#static: Vec<StaticNodePool> = "static",
        dynamic: Vec<DynamicNodePool> = "dynamic",
    }
    DynamicNodePool {
        name: String = "name",
        node_type_selector: Vec<Requirement> = "nodeTypeSelector",
        taints: Vec<KubeletJoinTaint> = "taints",
        node_labels: BTreeMap<String, String> = "nodeLabels",
        limits: BTreeMap<String, String> = "limits",
        disruption: DynamicNodePoolDisruption = "disruption",
        termination_grace_period: String = "terminationGracePeriod",
        expire_after: String = "expireAfter",
        weight: i64 = "weight",
        profile: String = "profile",
    }
    DynamicNodePoolDisruption {
        consolidate_after: String = "consolidateAfter",
        consolidation_policy: String = "consolidationPolicy",
        budgets: Vec<DynamicNodePoolDisruptionBudget> = "budgets",
    }
    DynamicNodePoolDisruptionBudget {
        nodes: String = "nodes",
        schedule: String = "schedule",
        duration: String = "duration",
    }
    StaticNodePool {
        name: String = "name",
        node_type_selector: Vec<Requirement> = "nodeTypeSelector",
        taints: Vec<KubeletJoinTaint> = "taints",
        node_labels: BTreeMap<String, String> = "nodeLabels",
        termination_grace_period: String = "terminationGracePeriod",
        quantity: i64 = "quantity",
        profile: String = "profile",
    }
    Requirement {
        property: String = "property",
        operator: String = "operator",
        values: Vec<String> = "values",
        value: String = "value",
    }
    Deploy {
        kube_proxy: KubeProxy = "kubeProxy",
        metallb: Metallb = "metallb",
        cni: Cni = "cni",
        local_path_provisioner: LocalPathProvisioner = "localPathProvisioner",
        ingress_nginx: IngressNginx = "ingressNginx",
        metrics_server: DeployMetricsServer = "metricsServer",
        volume_snapshot_controller: VolumeSnapshotController = "volumeSnapshotController",
        argo_cd: Value = "argoCD",
    }
    DeployMetricsServer {
        enabled: bool = "enabled",
    }
    VolumeSnapshotController {
        enabled: bool = "enabled",
    }
    IngressNginx {
        enabled: bool = "enabled",
        default_ingress_class: bool = "defaultIngressClass",
    }
    Metallb {
        enabled: bool = "enabled",
        controller_image: String = "controllerImage",
        speaker_image: String = "speakerImage",
        ip_address_pool: MetallbIPAddressPool = "ipAddressPool",
    }
    MetallbIPAddressPool {
        addresses: Vec<String> = "addresses",
        l2_advertisement: bool = "l2Advertisement",
    }
    Standalone {
        enabled: bool = "enabled",
        data_dir: String = "dataDir",
        advertise_address: String = "advertiseAddress",
        auto_nodes: StandaloneAutoNodes = "autoNodes",
        join_node: StandaloneJoinNode = "joinNode",
    }
    StandaloneAutoNodes {
        provider: String = "provider",
        quantity: i64 = "quantity",
        node_type_selector: Vec<Requirement> = "nodeTypeSelector",
    }
    StandaloneJoinNode {
        enabled: bool = "enabled",
        pre_install_commands: Vec<String> = "preInstallCommands",
        pre_join_commands: Vec<String> = "preJoinCommands",
        post_join_commands: Vec<String> = "postJoinCommands",
        containerd: ContainerdJoin = "containerd",
        ca_cert_path: String = "caCertPath",
        skip_phases: Vec<String> = "skipPhases",
        node_registration: NodeRegistration = "nodeRegistration",
    }
    JoinConfiguration {
        pre_install_commands: Vec<String> = "preInstallCommands",
        pre_join_commands: Vec<String> = "preJoinCommands",
        post_join_commands: Vec<String> = "postJoinCommands",
        containerd: ContainerdJoin = "containerd",
        ca_cert_path: String = "caCertPath",
        skip_phases: Vec<String> = "skipPhases",
        node_registration: NodeRegistration = "nodeRegistration",
    }
    ContainerdJoin {
        enabled: bool = "enabled",
        registry: ContainerdRegistry = "registry",
        pause_image: String = "pauseImage",
    }
    ContainerdRegistry {
        config_path: String = "configPath",
        mirrors: BTreeMap<String, ContainerdMirror> = "mirrors",
        auth: BTreeMap<String, ContainerdRegistryAuth> = "auth",
    }
    ContainerdRegistryAuth {
        username: String = "username",
        password: String = "password",
        identity_token: String = "identityToken",
        auth: String = "auth",
    }
    ContainerdMirror {
        server: String = "server",
        ca_cert: Vec<String> = "caCert",
        skip_verify: bool = "skipVerify",
        capabilities: Vec<String> = "capabilities",
        override_path: bool = "overridePath",
        hosts: Vec<ContainerdMirrorHost> = "hosts",
    }
    ContainerdMirrorHost {
        server: String = "server",
        ca_cert: Vec<String> = "caCert",
        skip_verify: bool = "skipVerify",
        capabilities: Vec<String> = "capabilities",
        override_path: bool = "overridePath",
    }
    NodeRegistration {
        cri_socket: String = "criSocket",
        kubelet_extra_args: Vec<KubeletExtraArg> = "kubeletExtraArgs",
        taints: Vec<KubeletJoinTaint> = "taints",
        ignore_preflight_errors: Vec<String> = "ignorePreflightErrors",
        image_pull_policy: String = "imagePullPolicy",
    }
    KubeletExtraArg {
        name: String = "name",
        value: String = "value",
    }
    KubeletJoinTaint {
        key: String = "key",
        value: String = "value",
        effect: String = "effect",
    }
    LocalPathProvisioner {
        enabled: bool = "enabled",
        image: String = "image",
        image_pull_policy: String = "imagePullPolicy",
        node_path: String = "nodePath",
    }
    Cni {
        flannel: CniFlannel = "flannel",
    }
    CniFlannel {
        enabled: bool = "enabled",
        image: String = "image",
        init_image: String = "initImage",
        image_pull_policy: String = "imagePullPolicy",
    }
    AutoUpgrade {
        enabled: bool = "enabled",
        image: String = "image",
        image_pull_policy: String = "imagePullPolicy",
        node_selector: BTreeMap<String, String> = "nodeSelector",
        binaries_path: String = "binariesPath",
        cni_binaries_path: String = "cniBinariesPath",
        concurrency: i64 = "concurrency",
        pod_security_context: BTreeMap<String, Value> = "podSecurityContext",
        container_security_context: BTreeMap<String, Value> = "containerSecurityContext",
    }
    Kubelet {
        config: BTreeMap<String, Value> = "config",
    }
    KubeProxy {
        enabled: bool = "enabled",
        image: String = "image",
        image_pull_policy: String = "imagePullPolicy",
        node_selector: BTreeMap<String, String> = "nodeSelector",
        priority_class_name: String = "priorityClassName",
        tolerations: Vec<Value> = "tolerations",
        extra_env: Vec<Value> = "extraEnv",
        extra_args: Vec<String> = "extraArgs",
        config: BTreeMap<String, Value> = "config",
    }
    Konnectivity {
        server: KonnectivityServer = "server",
        agent: KonnectivityAgent = "agent",
    }
    KonnectivityServer {
        enabled: bool = "enabled",
        extra_args: Vec<String> = "extraArgs",
    }
    KonnectivityAgent {
        enabled: bool = "enabled",
        replicas: i64 = "replicas",
        image: String = "image",
        image_pull_policy: String = "imagePullPolicy",
        node_selector: BTreeMap<String, String> = "nodeSelector",
        priority_class_name: String = "priorityClassName",
        tolerations: Vec<Value> = "tolerations",
        extra_env: Vec<Value> = "extraEnv",
        extra_args: Vec<String> = "extraArgs",
    }
    Integrations {
        metrics_server: MetricsServer = "metricsServer",
        kube_virt: KubeVirt = "kubeVirt",
        external_secrets: ExternalSecrets = "externalSecrets",
        cert_manager: CertManager = "certManager",
        istio: Istio = "istio",
        netris: Value = "netris",
        argo_cd: Value = "argoCD",
    }
    CertManager {
        enabled: bool = "enabled",
        sync: CertManagerSync = "sync",
    }
    CertManagerSync {
        to_host: CertManagerSyncToHost = "toHost",
        from_host: CertManagerSyncFromHost = "fromHost",
    }
    CertManagerSyncToHost {
        certificates: EnableSwitch = "certificates",
        issuers: EnableSwitch = "issuers",
    }
    CertManagerSyncFromHost {
        cluster_issuers: ClusterIssuersSyncConfig = "clusterIssuers",
    }
    ClusterIssuersSyncConfig {
        enabled: bool = "enabled",
        selector: LabelSelector = "selector",
    }
    Istio {
        enabled: bool = "enabled",
        sync: IstioSync = "sync",
    }
    IstioSync {
        to_host: IstioSyncToHost = "toHost",
    }
    IstioSyncToHost {
        destination_rules: EnableSwitch = "destinationRules",
        gateways: EnableSwitch = "gateways",
        virtual_services: EnableSwitch = "virtualServices",
    }
    ExternalSecrets {
        enabled: bool = "enabled",
        version: String = "version",
        webhook: EnableSwitch = "webhook",
        sync: ExternalSecretsSync = "sync",
    }
    ExternalSecretsSync {
        to_host: ExternalSecretsSyncToHostConfig = "toHost",
        from_host: ExternalSecretsSyncFromHostConfig = "fromHost",
    }
    ExternalSecretsSyncToHostConfig {
        external_secrets: SelectorConfig = "externalSecrets",
        stores: EnableSwitchSelector = "stores",
    }
    ExternalSecretsSyncFromHostConfig {
        cluster_stores: EnableSwitchSelector = "clusterStores",
    }
    SelectorConfig {
        selector: Value = "selector",
    }
    EnableSwitchSelector {
        selector: Value = "selector",
        enabled: bool = "enabled",
    }
    LabelSelector {
        labels: BTreeMap<String, String> = "labels",
    }
    KubeVirt {
        enabled: bool = "enabled",
        api_service: ApiService = "apiService",
        webhook: EnableSwitch = "webhook",
        sync: KubeVirtSync = "sync",
    }
    KubeVirtSync {
        data_volumes: EnableSwitch = "dataVolumes",
        virtual_machine_instance_migrations: EnableSwitch = "virtualMachineInstanceMigrations",
        virtual_machine_instances: EnableSwitch = "virtualMachineInstances",
        virtual_machines: EnableSwitch = "virtualMachines",
        virtual_machine_clones: EnableSwitch = "virtualMachineClones",
        virtual_machine_pools: EnableSwitch = "virtualMachinePools",
    }
    MetricsServer {
        enabled: bool = "enabled",
        api_service: ApiService = "apiService",
        nodes: bool = "nodes",
        pods: bool = "pods",
    }
    ApiService {
        service: ApiServiceService = "service",
    }
    ApiServiceService {
        name: String = "name",
        namespace: String = "namespace",
        port: i64 = "port",
    }
    ExportKubeConfig {
        context: String = "context",
        server: String = "server",
        insecure: bool = "insecure",
        service_account: ExportKubeConfigServiceAccount = "serviceAccount",
        secret: ExportKubeConfigSecretReference = "secret",
        additional_secrets: Vec<ExportKubeConfigAdditionalSecretReference> = "additionalSecrets",
    }
    ExportKubeConfigServiceAccount {
        name: String = "name",
        namespace: String = "namespace",
        cluster_role: String = "clusterRole",
    }
    ExportKubeConfigSecretReference {
        name: String = "name",
        namespace: String = "namespace",
    }
    ExportKubeConfigAdditionalSecretReference {
        context: String = "context",
        server: String = "server",
        insecure: bool = "insecure",
        service_account: ExportKubeConfigServiceAccount = "serviceAccount",
        name: String = "name",
        namespace: String = "namespace",
    }
    SyncSection {
        to_host: SyncToHost = "toHost",
        from_host: SyncFromHost = "fromHost",
    }
    SyncToHost {
        pods: SyncPods = "pods",
        secrets: SyncAllResource = "secrets",
        config_maps: SyncAllResource = "configMaps",
        ingresses: EnableSwitchWithPatches = "ingresses",
        gateway_api: GatewayAPIEnableSwitchWithPatches = "gatewayApi",
        services: EnableSwitchWithPatches = "services",
        endpoints: EnableSwitchWithPatches = "endpoints",
        endpoint_slices: EnableSwitchWithPatches = "endpointSlices",
        network_policies: EnableSwitchWithPatches = "networkPolicies",
        persistent_volume_claims: EnableSwitchWithPatches = "persistentVolumeClaims",
        persistent_volumes: EnableSwitchWithPatches = "persistentVolumes",
        volume_snapshots: EnableSwitchWithPatches = "volumeSnapshots",
        volume_snapshot_contents: EnableSwitchWithPatches = "volumeSnapshotContents",
        storage_classes: EnableSwitchWithPatches = "storageClasses",
        service_accounts: EnableSwitchWithPatches = "serviceAccounts",
        pod_disruption_budgets: EnableSwitchWithPatches = "podDisruptionBudgets",
        priority_classes: EnableSwitchWithPatches = "priorityClasses",
        custom_resources: BTreeMap<String, SyncToHostCustomResource> = "customResources",
        namespaces: SyncToHostNamespaces = "namespaces",
        resource_claims: EnableSwitchWithPatches = "resourceClaims",
        resource_claim_templates: EnableSwitchWithPatches = "resourceClaimTemplates",
    }
    EnableSwitchWithPatches {
        enabled: bool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
    }
    GatewayAPIEnableSwitchWithPatches {
        enabled: bool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
        http_routes: EnableSwitchWithPatches = "httpRoutes",
        gateways: EnableSwitchWithPatches = "gateways",
        tls_routes: EnableSwitchWithPatches = "tlsRoutes",
        backend_tls_policies: EnableSwitchWithPatches = "backendTLSPolicies",
        reference_grants: EnableAutoSwitchWithPatches = "referenceGrants",
    }
    EnableSwitchWithResourcesMappings {
        enabled: bool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
        mappings: FromHostMappings = "mappings",
    }
    FromHostMappings {
        by_name: BTreeMap<String, String> = "byName",
    }
    SyncFromHost {
        nodes: SyncNodes = "nodes",
        events: EnableSwitchWithPatches = "events",
        ingress_classes: EnableSwitchWithPatchesAndSelector = "ingressClasses",
        gateway_classes: EnableSwitchWithPatchesAndSelector = "gatewayClasses",
        gateways: FromHostGateways = "gateways",
        runtime_classes: EnableSwitchWithPatchesAndSelector = "runtimeClasses",
        priority_classes: EnableSwitchWithPatchesAndSelector = "priorityClasses",
        storage_classes: EnableAutoSwitchWithPatchesAndSelector = "storageClasses",
        csi_nodes: EnableAutoSwitchWithPatches = "csiNodes",
        csi_drivers: EnableAutoSwitchWithPatches = "csiDrivers",
        csi_storage_capacities: EnableAutoSwitchWithPatches = "csiStorageCapacities",
        custom_resources: BTreeMap<String, SyncFromHostCustomResource> = "customResources",
        volume_snapshot_classes: EnableSwitchWithPatches = "volumeSnapshotClasses",
        config_maps: EnableSwitchWithResourcesMappings = "configMaps",
        secrets: EnableSwitchWithResourcesMappings = "secrets",
        device_classes: EnableSwitchWithPatchesAndSelector = "deviceClasses",
    }
    EnableSwitchWithPatchesAndSelector {
        enabled: bool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
        selector: Value = "selector",
    }
    FromHostGateways {
        enabled: bool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
        selector: Value = "selector",
        mappings: FromHostMappings = "mappings",
        allowed_routes: GatewayAllowedRoutesConfig = "allowedRoutes",
        status: GatewayImportStatus = "status",
        metadata: GatewayImportMetadata = "metadata",
        sanitize: GatewayImportSanitize = "sanitize",
    }
    GatewayAllowedRoutesConfig {
        default_virtual_namespace_policy: GatewayVirtualNamespacePolicy = "defaultVirtualNamespacePolicy",
        overrides: Vec<GatewayAllowedRoutesPolicyOverride> = "overrides",
    }
    GatewayAllowedRoutesPolicyOverride {
        host_namespace: String = "hostNamespace",
        name: String = "name",
        virtual_namespace_policy: GatewayVirtualNamespacePolicy = "virtualNamespacePolicy",
        allowed_hostnames: Vec<String> = "allowedHostnames",
    }
    GatewayVirtualNamespacePolicy {
        from: String = "from",
        selector: Value = "selector",
    }
    GatewayImportStatus {
        expose_addresses: bool = "exposeAddresses",
    }
    GatewayImportMetadata {
        expose_source_gateway: bool = "exposeSourceGateway",
    }
    GatewayImportSanitize {
        certificate_refs: bool = "certificateRefs",
        infrastructure: bool = "infrastructure",
    }
    EnableAutoSwitchWithPatchesAndSelector {
        enabled: StrBool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
        selector: Value = "selector",
    }
    SyncToHostNamespaces {
        enabled: bool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
        mappings: FromHostMappings = "mappings",
        mappings_only: bool = "mappingsOnly",
        extra_labels: BTreeMap<String, String> = "extraLabels",
    }
    SyncToHostCustomResource {
        enabled: bool = "enabled",
        scope: String = "scope",
        patches: Vec<TranslatePatch> = "patches",
    }
    TranslatePatch {
        path: String = "path",
        expression: String = "expression",
        reverse_expression: String = "reverseExpression",
        reference: TranslatePatchReference = "reference",
        labels: Value = "labels",
    }
    TranslatePatchReference {
        api_version: String = "apiVersion",
        api_version_path: String = "apiVersionPath",
        kind: String = "kind",
        kind_path: String = "kindPath",
        name_path: String = "namePath",
        namespace_path: String = "namespacePath",
    }
    SyncFromHostCustomResource {
        enabled: bool = "enabled",
        scope: String = "scope",
        patches: Vec<TranslatePatch> = "patches",
        mappings: FromHostMappings = "mappings",
    }
    EnableAutoSwitch {
        enabled: StrBool = "enabled",
    }
    EnableAutoSwitchWithPatches {
        enabled: StrBool = "enabled",
        patches: Vec<TranslatePatch> = "patches",
    }
    EnableSwitch {
        enabled: bool = "enabled",
    }
    SyncAllResource {
        enabled: bool = "enabled",
        all: bool = "all",
        patches: Vec<TranslatePatch> = "patches",
    }
    SyncPods {
        enabled: bool = "enabled",
        translate_image: BTreeMap<String, String> = "translateImage",
        enforce_tolerations: Vec<String> = "enforceTolerations",
        use_secrets_for_sa_tokens: bool = "useSecretsForSATokens",
        runtime_class_name: String = "runtimeClassName",
        priority_class_name: String = "priorityClassName",
        rewrite_hosts: SyncRewriteHosts = "rewriteHosts",
        patches: Vec<TranslatePatch> = "patches",
        hybrid_scheduling: HybridScheduling = "hybridScheduling",
    }
    SyncRewriteHosts {
        enabled: bool = "enabled",
        init_container: SyncRewriteHostsInitContainer = "initContainer",
    }
    SyncRewriteHostsInitContainer {
        image: Image = "image",
        resources: Resources = "resources",
    }
    HybridScheduling {
        enabled: bool = "enabled",
        host_schedulers: Vec<String> = "hostSchedulers",
    }
    SyncNodes {
        enabled: bool = "enabled",
        sync_back_changes: bool = "syncBackChanges",
        clear_image_status: bool = "clearImageStatus",
        selector: SyncNodeSelector = "selector",
        patches: Vec<TranslatePatch> = "patches",
    }
    SyncNodeSelector {
        all: bool = "all",
        labels: BTreeMap<String, String> = "labels",
    }
    ServiceMonitor {
        enabled: bool = "enabled",
        labels: BTreeMap<String, String> = "labels",
        annotations: BTreeMap<String, String> = "annotations",
    }
    Networking {
        service_cidr: String = "serviceCIDR",
        pod_cidr: String = "podCIDR",
        replicate_services: ReplicateServices = "replicateServices",
        resolve_dns: Vec<ResolveDNS> = "resolveDNS",
        advanced: NetworkingAdvanced = "advanced",
    }
    ReplicateServices {
        to_host: Vec<ServiceMapping> = "toHost",
        from_host: Vec<ServiceMapping> = "fromHost",
    }
    ServiceMapping {
        from: String = "from",
        to: String = "to",
    }
    ResolveDNS {
        hostname: String = "hostname",
        service: String = "service",
        namespace: String = "namespace",
        target: ResolveDNSTarget = "target",
    }
    ResolveDNSTarget {
        hostname: String = "hostname",
        ip: String = "ip",
        host_service: String = "hostService",
        host_namespace: String = "hostNamespace",
        v_cluster_service: String = "vClusterService",
    }
    NetworkingAdvanced {
        cluster_domain: String = "clusterDomain",
        fallback_host_cluster: bool = "fallbackHostCluster",
        proxy_kubelets: NetworkProxyKubelets = "proxyKubelets",
    }
    NetworkProxyKubelets {
        by_hostname: bool = "byHostname",
        by_ip: bool = "byIP",
    }
    Plugin {
        name: String = "name",
        image: String = "image",
        image_pull_policy: String = "imagePullPolicy",
        config: BTreeMap<String, Value> = "config",
        rbac: PluginsRbac = "rbac",
        command: Vec<String> = "command",
        args: Vec<String> = "args",
        security_context: BTreeMap<String, Value> = "securityContext",
        resources: BTreeMap<String, Value> = "resources",
        volume_mounts: Vec<Value> = "volumeMounts",
        version: String = "version",
        env: Vec<Value> = "env",
        env_from: Vec<Value> = "envFrom",
        lifecycle: BTreeMap<String, Value> = "lifecycle",
        liveness_probe: BTreeMap<String, Value> = "livenessProbe",
        readiness_probe: BTreeMap<String, Value> = "readinessProbe",
        startup_probe: BTreeMap<String, Value> = "startupProbe",
        working_dir: String = "workingDir",
        optional: bool = "optional",
    }
    Plugins {
        name: String = "name",
        image: String = "image",
        image_pull_policy: String = "imagePullPolicy",
        config: BTreeMap<String, Value> = "config",
        rbac: PluginsRbac = "rbac",
        command: Vec<String> = "command",
        args: Vec<String> = "args",
        security_context: BTreeMap<String, Value> = "securityContext",
        resources: BTreeMap<String, Value> = "resources",
        volume_mounts: Vec<Value> = "volumeMounts",
    }
    PluginsRbac {
        role: PluginsExtraRules = "role",
        cluster_role: PluginsExtraRules = "clusterRole",
    }
    PluginsExtraRules {
        extra_rules: Vec<RbacPolicyRule> = "extraRules",
    }
    RbacPolicyRule {
        verbs: Vec<String> = "verbs",
        api_groups: Vec<String> = "apiGroups",
        resources: Vec<String> = "resources",
        resource_names: Vec<String> = "resourceNames",
        non_resource_urls: Vec<String> = "nonResourceURLs",
    }
    ControlPlane {
        endpoint: String = "endpoint",
        distro: Distro = "distro",
        standalone: Standalone = "standalone",
        backing_store: BackingStore = "backingStore",
        coredns: CoreDNS = "coredns",
        proxy: ControlPlaneProxy = "proxy",
        host_path_mapper: HostPathMapper = "hostPathMapper",
        ingress: ControlPlaneIngress = "ingress",
        tls_route: ControlPlaneTLSRoute = "tlsRoute",
        service: ControlPlaneService = "service",
        stateful_set: ControlPlaneStatefulSet = "statefulSet",
        service_monitor: ServiceMonitor = "serviceMonitor",
        advanced: ControlPlaneAdvanced = "advanced",
    }
    ControlPlaneTLSRoute {
        enabled: bool = "enabled",
        api_version: String = "apiVersion",
        host: String = "host",
        parent_refs: Vec<BTreeMap<String, Value>> = "parentRefs",
        spec: BTreeMap<String, Value> = "spec",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    KubeVip {
        enabled: bool = "enabled",
        interface: String = "interface",
        gateway: String = "gateway",
    }
    ControlPlaneStatefulSet {
        high_availability: ControlPlaneHighAvailability = "highAvailability",
        resources: Resources = "resources",
        scheduling: ControlPlaneScheduling = "scheduling",
        security: ControlPlaneSecurity = "security",
        probes: ControlPlaneProbes = "probes",
        persistence: ControlPlanePersistence = "persistence",
        enable_service_links: bool = "enableServiceLinks",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
        pods: LabelsAndAnnotations = "pods",
        image: Image = "image",
        image_pull_policy: String = "imagePullPolicy",
        working_dir: String = "workingDir",
        command: Vec<String> = "command",
        args: Vec<String> = "args",
        env: Vec<BTreeMap<String, Value>> = "env",
        dns_policy: String = "dnsPolicy",
        dns_config: Value = "dnsConfig",
        init_containers: Vec<Value> = "initContainers",
        sidecar_containers: Vec<Value> = "sidecarContainers",
        host_aliases: Vec<Value> = "hostAliases",
        runtime_class_name: String = "runtimeClassName",
    }
    Distro {
        k8s: DistroK8s = "k8s",
    }
    DistroK8s {
        enabled: bool = "enabled",
        version: String = "version",
        api_server: DistroContainerEnabled = "apiServer",
        controller_manager: DistroContainerEnabled = "controllerManager",
        scheduler: DistroContainerEnabled = "scheduler",
        image: Image = "image",
        image_pull_policy: String = "imagePullPolicy",
        env: Vec<BTreeMap<String, Value>> = "env",
        resources: BTreeMap<String, Value> = "resources",
        security_context: BTreeMap<String, Value> = "securityContext",
    }
    DistroContainerEnabled {
        enabled: bool = "enabled",
        command: Vec<String> = "command",
        extra_args: Vec<String> = "extraArgs",
    }
    Image {
        registry: String = "registry",
        repository: String = "repository",
        tag: String = "tag",
    }
    ImagePullSecretName {
        name: String = "name",
    }
    VirtualClusterKubeConfig {
        kube_config: String = "kubeConfig",
        server_ca_key: String = "serverCAKey",
        server_ca_cert: String = "serverCACert",
        client_ca_cert: String = "clientCACert",
        client_ca_key: String = "clientCAKey",
        request_header_ca_cert: String = "requestHeaderCACert",
    }
    BackingStore {
        etcd: Etcd = "etcd",
        database: Database = "database",
    }
    Database {
        embedded: DatabaseKine = "embedded",
        external: ExternalDatabaseKine = "external",
    }
    ExternalDatabaseKine {
        enabled: bool = "enabled",
        data_source: String = "dataSource",
        identity_provider: String = "identityProvider",
        key_file: String = "keyFile",
        cert_file: String = "certFile",
        ca_file: String = "caFile",
        extra_args: Vec<String> = "extraArgs",
        connector: String = "connector",
    }
    DatabaseKine {
        enabled: bool = "enabled",
        data_source: String = "dataSource",
        identity_provider: String = "identityProvider",
        key_file: String = "keyFile",
        cert_file: String = "certFile",
        ca_file: String = "caFile",
        extra_args: Vec<String> = "extraArgs",
    }
    Etcd {
        embedded: EtcdEmbedded = "embedded",
        deploy: EtcdDeploy = "deploy",
        external: EtcdExternal = "external",
    }
    EtcdExternal {
        enabled: bool = "enabled",
        endpoint: String = "endpoint",
        tls: EtcdExternalTLS = "tls",
    }
    EtcdExternalTLS {
        ca_file: String = "caFile",
        cert_file: String = "certFile",
        key_file: String = "keyFile",
    }
    EtcdEmbedded {
        enabled: bool = "enabled",
        migrate_from_deployed_etcd: bool = "migrateFromDeployedEtcd",
        snapshot_count: i64 = "snapshotCount",
        extra_args: Vec<String> = "extraArgs",
    }
    EtcdDeploy {
        enabled: bool = "enabled",
        stateful_set: EtcdDeployStatefulSet = "statefulSet",
        service: EtcdDeployService = "service",
        headless_service: EtcdDeployHeadlessService = "headlessService",
    }
    EtcdDeployService {
        enabled: bool = "enabled",
        annotations: BTreeMap<String, String> = "annotations",
    }
    EtcdDeployHeadlessService {
        annotations: BTreeMap<String, String> = "annotations",
    }
    EtcdDeployStatefulSet {
        enabled: bool = "enabled",
        enable_service_links: bool = "enableServiceLinks",
        image: Image = "image",
        image_pull_policy: String = "imagePullPolicy",
        env: Vec<BTreeMap<String, Value>> = "env",
        extra_args: Vec<String> = "extraArgs",
        resources: Resources = "resources",
        pods: LabelsAndAnnotations = "pods",
        high_availability: ExternalEtcdHighAvailability = "highAvailability",
        scheduling: ControlPlaneScheduling = "scheduling",
        security: ControlPlaneSecurity = "security",
        persistence: ExternalEtcdPersistence = "persistence",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    Resources {
        limits: BTreeMap<String, Value> = "limits",
        requests: BTreeMap<String, Value> = "requests",
    }
    ExternalEtcdHighAvailability {
        replicas: i64 = "replicas",
    }
    HostPathMapper {
        enabled: bool = "enabled",
        central: bool = "central",
    }
    CoreDNS {
        enabled: bool = "enabled",
        embedded: bool = "embedded",
        security: ControlPlaneSecurity = "security",
        service: CoreDNSService = "service",
        deployment: CoreDNSDeployment = "deployment",
        overwrite_config: String = "overwriteConfig",
        overwrite_manifests: String = "overwriteManifests",
        priority_class_name: String = "priorityClassName",
    }
    CoreDNSService {
        spec: BTreeMap<String, Value> = "spec",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    CoreDNSDeployment {
        image: String = "image",
        replicas: i64 = "replicas",
        node_selector: BTreeMap<String, String> = "nodeSelector",
        affinity: BTreeMap<String, Value> = "affinity",
        tolerations: Vec<BTreeMap<String, Value>> = "tolerations",
        resources: Resources = "resources",
        pods: LabelsAndAnnotations = "pods",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
        topology_spread_constraints: Vec<Value> = "topologySpreadConstraints",
    }
    ControlPlaneProxy {
        bind_address: String = "bindAddress",
        port: i64 = "port",
        extra_sans: Vec<String> = "extraSANs",
    }
    ControlPlaneService {
        enabled: bool = "enabled",
        spec: BTreeMap<String, Value> = "spec",
        kubelet_node_port: i64 = "kubeletNodePort",
        https_node_port: i64 = "httpsNodePort",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    ControlPlaneIngress {
        enabled: bool = "enabled",
        host: String = "host",
        path_type: String = "pathType",
        spec: BTreeMap<String, Value> = "spec",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    ControlPlaneHighAvailability {
        replicas: i64 = "replicas",
        lease_duration: i64 = "leaseDuration",
        renew_deadline: i64 = "renewDeadline",
        retry_period: i64 = "retryPeriod",
    }
    ControlPlaneAdvanced {
        default_image_registry: String = "defaultImageRegistry",
        virtual_scheduler: EnableSwitch = "virtualScheduler",
        service_account: ControlPlaneServiceAccount = "serviceAccount",
        workload_service_account: ControlPlaneWorkloadServiceAccount = "workloadServiceAccount",
        headless_service: ControlPlaneHeadlessService = "headlessService",
        konnectivity: Konnectivity = "konnectivity",
        registry: Registry = "registry",
        cloud_controller_manager: CloudControllerManager = "cloudControllerManager",
        global_metadata: ControlPlaneGlobalMetadata = "globalMetadata",
        kube_vip: KubeVip = "kubeVip",
        pod_disruption_budget: PodDisruptionBudget = "podDisruptionBudget",
    }
    Registry {
        enabled: bool = "enabled",
        anonymous_pull: bool = "anonymousPull",
        config: Value = "config",
    }
    ControlPlaneHeadlessService {
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    Proxy {
        custom_resources: BTreeMap<String, CustomResourceProxy> = "customResources",
    }
    CustomResourceProxy {
        enabled: bool = "enabled",
        target_virtual_cluster: VirtualClusterRef = "targetVirtualCluster",
        access_resources: String = "accessResources",
    }
    VirtualClusterRef {
        name: String = "name",
        project: String = "project",
    }
    ExternalEtcdPersistence {
        volume_claim: ExternalEtcdPersistenceVolumeClaim = "volumeClaim",
        volume_claim_templates: Vec<BTreeMap<String, Value>> = "volumeClaimTemplates",
        add_volumes: Vec<BTreeMap<String, Value>> = "addVolumes",
        add_volume_mounts: Vec<Value> = "addVolumeMounts",
    }
    ExternalEtcdPersistenceVolumeClaim {
        enabled: bool = "enabled",
        access_modes: Vec<String> = "accessModes",
        retention_policy: String = "retentionPolicy",
        size: String = "size",
        storage_class: String = "storageClass",
    }
    ControlPlanePersistence {
        volume_claim: VolumeClaim = "volumeClaim",
        volume_claim_templates: Vec<BTreeMap<String, Value>> = "volumeClaimTemplates",
        data_volume: Vec<BTreeMap<String, Value>> = "dataVolume",
        binaries_volume: Vec<BTreeMap<String, Value>> = "binariesVolume",
        add_volumes: Vec<BTreeMap<String, Value>> = "addVolumes",
        add_volume_mounts: Vec<Value> = "addVolumeMounts",
    }
    VolumeClaim {
        enabled: StrBool = "enabled",
        access_modes: Vec<String> = "accessModes",
        retention_policy: String = "retentionPolicy",
        size: String = "size",
        storage_class: String = "storageClass",
    }
    ControlPlaneScheduling {
        node_selector: BTreeMap<String, Value> = "nodeSelector",
        affinity: BTreeMap<String, Value> = "affinity",
        tolerations: Vec<BTreeMap<String, Value>> = "tolerations",
        priority_class_name: String = "priorityClassName",
        pod_management_policy: String = "podManagementPolicy",
        topology_spread_constraints: Vec<Value> = "topologySpreadConstraints",
    }
    ControlPlaneServiceAccount {
        enabled: bool = "enabled",
        name: String = "name",
        image_pull_secrets: Vec<ImagePullSecretName> = "imagePullSecrets",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    ControlPlaneWorkloadServiceAccount {
        enabled: bool = "enabled",
        name: String = "name",
        image_pull_secrets: Vec<ImagePullSecretName> = "imagePullSecrets",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    ControlPlaneProbes {
        liveness_probe: LivenessProbe = "livenessProbe",
        readiness_probe: ReadinessProbe = "readinessProbe",
        startup_probe: StartupProbe = "startupProbe",
    }
    LivenessProbe {
        enabled: bool = "enabled",
        failure_threshold: i64 = "failureThreshold",
        initial_delay_seconds: i64 = "initialDelaySeconds",
        timeout_seconds: i64 = "timeoutSeconds",
        period_seconds: i64 = "periodSeconds",
    }
    ReadinessProbe {
        enabled: bool = "enabled",
        failure_threshold: i64 = "failureThreshold",
        timeout_seconds: i64 = "timeoutSeconds",
        period_seconds: i64 = "periodSeconds",
    }
    StartupProbe {
        enabled: bool = "enabled",
        failure_threshold: i64 = "failureThreshold",
        timeout_seconds: i64 = "timeoutSeconds",
        period_seconds: i64 = "periodSeconds",
    }
    ControlPlaneSecurity {
        pod_security_context: BTreeMap<String, Value> = "podSecurityContext",
        container_security_context: BTreeMap<String, Value> = "containerSecurityContext",
    }
    ControlPlaneGlobalMetadata {
        annotations: BTreeMap<String, String> = "annotations",
    }
    PodDisruptionBudget {
        enabled: bool = "enabled",
        min_available: Value = "minAvailable",
        max_unavailable: Value = "maxUnavailable",
        unhealthy_pod_eviction_policy: String = "unhealthyPodEvictionPolicy",
    }
    LabelsAndAnnotations {
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    Policies {
        network_policy: NetworkPolicy = "networkPolicy",
        pod_security_standard: String = "podSecurityStandard",
        resource_quota: ResourceQuota = "resourceQuota",
        limit_range: LimitRange = "limitRange",
        central_admission: CentralAdmission = "centralAdmission",
    }
    ResourceQuota {
        enabled: StrBool = "enabled",
        quota: BTreeMap<String, Value> = "quota",
        scope_selector: BTreeMap<String, Value> = "scopeSelector",
        scopes: Vec<String> = "scopes",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    LimitRange {
        enabled: StrBool = "enabled",
        r#default: BTreeMap<String, Value> = "default",
        default_request: BTreeMap<String, Value> = "defaultRequest",
        max: BTreeMap<String, Value> = "max",
        min: BTreeMap<String, Value> = "min",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    NetworkPolicy {
        enabled: bool = "enabled",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
        fallback_dns: String = "fallbackDns",
        control_plane: NetworkPolicyControlPlane = "controlPlane",
        workload: NetworkPolicyWorkload = "workload",
    }
    NetworkPolicyControlPlane {
        ingress: Vec<NetworkPolicyIngressRule> = "ingress",
        egress: Vec<NetworkPolicyEgressRule> = "egress",
    }
    NetworkPolicyWorkload {
        public_egress: NetworkPolicyWorkloadPublicEgress = "publicEgress",
        ingress: Vec<NetworkPolicyIngressRule> = "ingress",
        egress: Vec<NetworkPolicyEgressRule> = "egress",
    }
    NetworkPolicyIngressRule {
        ports: Vec<NetworkPolicyPort> = "ports",
        from: Vec<NetworkPolicyPeer> = "from",
    }
    NetworkPolicyEgressRule {
        ports: Vec<NetworkPolicyPort> = "ports",
        to: Vec<NetworkPolicyPeer> = "to",
    }
    NetworkPolicyPort {
        protocol: String = "protocol",
        port: Value = "port",
        end_port: i64 = "endPort",
    }
    NetworkPolicyPeer {
        pod_selector: Value = "podSelector",
        namespace_selector: Value = "namespaceSelector",
        ip_block: IpBlock = "ipBlock",
    }
    NetworkPolicyWorkloadPublicEgress {
        enabled: bool = "enabled",
        cidr: String = "cidr",
        except: Vec<String> = "except",
    }
    IpBlock {
        cidr: String = "cidr",
        except: Vec<String> = "except",
    }
    CentralAdmission {
        validating_webhooks: Vec<ValidatingWebhookConfiguration> = "validatingWebhooks",
        mutating_webhooks: Vec<MutatingWebhookConfiguration> = "mutatingWebhooks",
    }
    MutatingWebhookConfiguration {
        kind: String = "kind",
        api_version: String = "apiVersion",
        metadata: ObjectMeta = "metadata",
        webhooks: Vec<Value> = "webhooks",
    }
    ValidatingWebhookConfiguration {
        kind: String = "kind",
        api_version: String = "apiVersion",
        metadata: ObjectMeta = "metadata",
        webhooks: Vec<ValidatingWebhook> = "webhooks",
    }
    ValidatingWebhook {
        name: String = "name",
        client_config: ValidatingWebhookClientConfig = "clientConfig",
        rules: Vec<Value> = "rules",
        failure_policy: String = "failurePolicy",
        match_policy: String = "matchPolicy",
        namespace_selector: Value = "namespaceSelector",
        object_selector: Value = "objectSelector",
        side_effects: String = "sideEffects",
        timeout_seconds: i64 = "timeoutSeconds",
        admission_review_versions: Vec<String> = "admissionReviewVersions",
        match_conditions: Vec<Value> = "matchConditions",
    }
    ValidatingWebhookClientConfig {
        url: String = "url",
        service: ValidatingWebhookServiceReference = "service",
        ca_bundle: String = "caBundle",
    }
    ValidatingWebhookServiceReference {
        namespace: String = "namespace",
        name: String = "name",
        path: String = "path",
        port: i64 = "port",
    }
    ObjectMeta {
        name: String = "name",
        labels: BTreeMap<String, String> = "labels",
        annotations: BTreeMap<String, String> = "annotations",
    }
    Rbac {
        role: RbacRole = "role",
        cluster_role: RbacClusterRole = "clusterRole",
        enable_volume_snapshot_rules: EnableAutoSwitch = "enableVolumeSnapshotRules",
    }
    RbacClusterRole {
        enabled: StrBool = "enabled",
        extra_rules: Vec<BTreeMap<String, Value>> = "extraRules",
        overwrite_rules: Vec<BTreeMap<String, Value>> = "overwriteRules",
    }
    RbacRole {
        enabled: bool = "enabled",
        extra_rules: Vec<BTreeMap<String, Value>> = "extraRules",
        overwrite_rules: Vec<BTreeMap<String, Value>> = "overwriteRules",
    }
    Telemetry {
        enabled: bool = "enabled",
        instance_creator: String = "instanceCreator",
        machine_id: String = "machineID",
        platform_user_id: String = "platformUserID",
        platform_instance_id: String = "platformInstanceID",
    }
    Experimental {
        deploy: ExperimentalDeploy = "deploy",
        sync_settings: ExperimentalSyncSettings = "syncSettings",
        virtual_cluster_kube_config: VirtualClusterKubeConfig = "virtualClusterKubeConfig",
        deny_proxy_requests: Vec<DenyRule> = "denyProxyRequests",
        proxy: Proxy = "proxy",
        docker: ExperimentalDocker = "docker",
        node_monitors: Vec<ExperimentalNodeMonitor> = "nodeMonitors",
    }
    ExperimentalNodeMonitor {
        name: String = "name",
        node_selector: BTreeMap<String, String> = "nodeSelector",
        endpoints: Vec<ExperimentalNodeServiceMonitorEndpoint> = "endpoints",
        spec: BTreeMap<String, Value> = "spec",
        annotations: BTreeMap<String, String> = "annotations",
        labels: BTreeMap<String, String> = "labels",
    }
    ExperimentalNodeServiceMonitorEndpoint {
        path: String = "path",
        params: BTreeMap<String, Vec<String>> = "params",
        extra_relabelings: Vec<BTreeMap<String, Value>> = "extraRelabelings",
        metrics_relabelings: Vec<BTreeMap<String, Value>> = "metricsRelabelings",
        interval: String = "interval",
        scrape_timeout: String = "scrapeTimeout",
    }
    ExperimentalSyncSettings {
        set_owner: bool = "setOwner",
        host_metrics_bind_address: String = "hostMetricsBindAddress",
        virtual_metrics_bind_address: String = "virtualMetricsBindAddress",
    }
    ExperimentalDocker {
        image: String = "image",
        ports: Vec<String> = "ports",
        volumes: Vec<String> = "volumes",
        env: Vec<String> = "env",
        args: Vec<String> = "args",
        enabled: bool = "enabled",
        network: String = "network",
        nodes: Vec<ExperimentalDockerNode> = "nodes",
        registry_proxy: EnableSwitch = "registryProxy",
        load_balancer: ExperimentalDockerLoadBalancer = "loadBalancer",
    }
    ExperimentalDockerLoadBalancer {
        enabled: bool = "enabled",
        forward_ports: bool = "forwardPorts",
    }
    ExperimentalDockerNode {
        image: String = "image",
        ports: Vec<String> = "ports",
        volumes: Vec<String> = "volumes",
        env: Vec<String> = "env",
        args: Vec<String> = "args",
        name: String = "name",
    }
    ExperimentalDeploy {
        host: ExperimentalDeployHost = "host",
        vcluster: ExperimentalDeployVCluster = "vcluster",
    }
    ExperimentalDeployHost {
        manifests: String = "manifests",
        manifests_template: String = "manifestsTemplate",
    }
    ExperimentalDeployVCluster {
        manifests: String = "manifests",
        manifests_template: String = "manifestsTemplate",
        helm: Vec<ExperimentalDeployHelm> = "helm",
    }
    ExperimentalDeployHelm {
        chart: ExperimentalDeployHelmChart = "chart",
        release: ExperimentalDeployHelmRelease = "release",
        values: String = "values",
        timeout: String = "timeout",
        bundle: String = "bundle",
    }
    ExperimentalDeployHelmRelease {
        name: String = "name",
        namespace: String = "namespace",
    }
    ExperimentalDeployHelmChart {
        name: String = "name",
        repo: String = "repo",
        insecure: bool = "insecure",
        version: String = "version",
        username: String = "username",
        password: String = "password",
    }
    DenyRule {
        name: String = "name",
        namespaces: Vec<String> = "namespaces",
        rules: Vec<Value> = "rules",
        excluded_users: Vec<String> = "excludedUsers",
    }
    Logging {
        encoding: String = "encoding",
    }
}
