//! What the real node is made of: names, addresses and the configuration files of containerd,
//! the CNI plugins, kubelet and kube-proxy. Pure: settings in, file contents out.
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

/// Every address a pod, a Service or the node itself gets lies in this benchmarking range
/// (RFC 2544), which is never routed off the machine here.
pub const NODE_RANGE: &str = "198.18.0.0/15";
/// Pod addresses (one node, one bridge).
pub const POD_CIDR: &str = "198.18.0.0/24";
/// The bridge's own address: the pods' gateway, the node's InternalIP, kubelet's listener.
pub const GATEWAY: &str = "198.18.0.1";
pub const GATEWAY_PREFIX: u8 = 24;
/// Service ClusterIPs (the control plane's `--service-cluster-ip-range` on a real node).
pub const SERVICE_CIDR: &str = "198.19.0.0/24";
/// The `kubernetes` Service's ClusterIP (the first address of the range).
pub const KUBERNETES_SERVICE_IP: &str = "198.19.0.1";
/// The ClusterIP reserved for cluster DNS (kubelet's `clusterDNS`).
pub const DNS_IP: &str = "198.19.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Debian's runc and CNI plugins.
pub const RUNC: &str = "/usr/sbin/runc";
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
pub const CNI_PLUGINS: [&str; 4] = ["bridge", "host-local", "loopback", "portmap"];
/// The sandbox image, pushed to the loopback registry at `up` (every registry host resolves
/// to it, see [`hosts_toml`]).
pub const PAUSE_REPOSITORY: &str = "fp.local/fp-pause";

/// Names of everything the node creates on the host, derived from its state directory so two
/// checkouts never pick the same ones, and prefixed `fpn` so nobody else's are touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Short hash of the state directory.
    pub id: String,
    /// The Node object's name.
    pub node: String,
    /// Linux bridge (at most 15 characters).
    pub bridge: String,
    /// CNI network name (also prefixes the CNI plugins' result cache files).
    pub network: String,
    /// Cgroup (v1: in every hierarchy) that holds kubelet's `kubepods` tree.
    pub cgroup_root: String,
    /// Our iptables chain in the filter table (FORWARD jumps to it): nothing forwarded to or from
    /// the bridge may leave 198.18.0.0/15.
    pub guard_chain: String,
}

impl Names {
    pub fn for_state_dir(dir: &Path) -> Self {
        let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
        let id = hex::encode(&digest[..3]);
        Self {
            node: format!("fpn-{id}"),
            bridge: format!("fpn-{id}"),
            network: format!("fpn-{id}"),
            cgroup_root: format!("/fpn-{id}"),
            guard_chain: format!("FPN-{}-GUARD", id.to_uppercase()),
            id,
        }
    }
}

/// Where the node keeps its files (all under the cluster's state directory).
#[derive(Debug, Clone)]
pub struct NodeDirs {
    pub root: PathBuf,
}

impl NodeDirs {
    pub fn new(cluster_root: &Path) -> Self {
        Self {
            root: cluster_root.join("node"),
        }
    }
    pub fn containerd_root(&self) -> PathBuf {
        self.root.join("containerd").join("root")
    }
    pub fn containerd_state(&self) -> PathBuf {
        self.root.join("containerd").join("state")
    }
    pub fn containerd_socket(&self) -> PathBuf {
        self.root.join("containerd").join("containerd.sock")
    }
    pub fn containerd_config(&self) -> PathBuf {
        self.root.join("containerd").join("config.toml")
    }
    pub fn registry_hosts(&self) -> PathBuf {
        self.root.join("containerd").join("certs.d")
    }
    pub fn runc_root(&self) -> PathBuf {
        self.root.join("runc")
    }
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.root.join("cni").join("net.d")
    }
    pub fn ipam_dir(&self) -> PathBuf {
        self.root.join("cni").join("ipam")
    }
    pub fn kubelet_root(&self) -> PathBuf {
        self.root.join("kubelet")
    }
    pub fn kubelet_config(&self) -> PathBuf {
        self.root.join("kubelet.yaml")
    }
    pub fn pod_logs(&self) -> PathBuf {
        self.root.join("pod-logs")
    }
    pub fn volume_plugins(&self) -> PathBuf {
        self.root.join("volume-plugins")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.root.join("resolv.conf")
    }
    pub fn kube_proxy_config(&self) -> PathBuf {
        self.root.join("kube-proxy.yaml")
    }
    pub fn registry_data(&self) -> PathBuf {
        self.root.join("registry")
    }
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    /// What `up` changed on the host, for `down` to undo (sysctls and their old values).
    pub fn host_record(&self) -> PathBuf {
        self.root.join("host-changes")
    }
}

/// Loopback ports of the node's listeners (kubelet's API itself listens on the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    pub kubelet: u16,
    pub kubelet_healthz: u16,
    pub proxy_healthz: u16,
    pub proxy_metrics: u16,
    pub registry: u16,
}

fn toml_str(s: &str) -> String {
    // Paths and names here never hold quotes or backslashes; JSON escaping is valid TOML.
    serde_json::Value::from(s).to_string()
}

/// containerd 2.x (config version 3): everything under the state directory, the CRI plugin with
/// Debian's runc on cgroupfs, our CNI config, the sandbox image from the loopback registry,
/// streaming (exec, logs, port-forward) on 127.0.0.1, and no plugin that writes elsewhere on
/// the host (NRI's socket, /opt/containerd, the btrfs/zfs/devmapper snapshotters).
pub fn containerd_toml(dirs: &NodeDirs, pause_image: &str) -> String {
    let p = |path: PathBuf| toml_str(&path.display().to_string());
    format!(
        r#"version = 3
root = {root}
state = {state}
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
]

[grpc]
  address = {socket}

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = {pause}
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = {hosts}

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  # These machines withhold CAP_SYS_RESOURCE even from root, so no process may lower its OOM
  # score below its parent's; kubelet asks -998 for every sandbox. Clamp to containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = {runc}
        Root = {runc_root}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [{cni_bin}]
    conf_dir = {cni_conf}
    max_conf_num = 1
"#,
        root = p(dirs.containerd_root()),
        state = p(dirs.containerd_state()),
        socket = p(dirs.containerd_socket()),
        pause = toml_str(pause_image),
        hosts = p(dirs.registry_hosts()),
        runc = toml_str(RUNC),
        runc_root = p(dirs.runc_root()),
        cni_bin = toml_str(CNI_BIN_DIR),
        cni_conf = p(dirs.cni_conf_dir()),
    )
}

/// `certs.d/_default/hosts.toml`: every registry host (docker.io, fp.local, …) is served by
/// the loopback registry, so an image reference never makes containerd leave the machine.
pub fn hosts_toml(registry_port: u16) -> String {
    format!(
        "server = \"http://127.0.0.1:{registry_port}\"\n\n[host.\"http://127.0.0.1:{registry_port}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n"
    )
}

/// The CNI network: a bridge whose address is the pods' gateway, host-local addresses from
/// [`POD_CIDR`], a route to [`NODE_RANGE`] only (no default route: a pod cannot address
/// anything outside the node's range), no masquerade, hairpin for a pod reaching itself
/// through its Service, and portmap for hostPorts.
pub fn cni_conflist(names: &Names, dirs: &NodeDirs) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": names.network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": names.bridge,
                "isGateway": true,
                "isDefaultGateway": false,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                    "routes": [{"dst": NODE_RANGE, "gw": GATEWAY}],
                    "dataDir": dirs.ipam_dir(),
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
        ]
    })
}

/// kubelet: registered as `names.node` with its own certificate, API on the gateway address,
/// cgroupfs under `names.cgroup_root`, every directory it writes under the state directory.
/// `failCgroupV1: false` is what lets kubelet ≥ 1.35 run on these cgroup v1 machines.
pub fn kubelet_config(
    names: &Names,
    dirs: &NodeDirs,
    ports: &NodePorts,
    ca_file: &Path,
    serving: (&Path, &Path),
) -> serde_json::Value {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": GATEWAY,
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "tlsCertFile": serving.0,
        "tlsPrivateKeyFile": serving.1,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": false},
            "x509": {"clientCAFile": ca_file},
        },
        // Only holders of a certificate from the cluster CA get in at all.
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": format!("unix://{}", dirs.containerd_socket().display()),
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": names.cgroup_root,
        "cgroupsPerQOS": true,
        "failCgroupV1": false,
        "failSwapOn": false,
        "clusterDNS": [DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": dirs.resolv_conf(),
        "podLogsDir": dirs.pod_logs(),
        "volumePluginDir": dirs.volume_plugins(),
        "maxPods": 110,
        "registerNode": true,
        "serializeImagePulls": false,
        // A shared build machine's disk is often fuller than kubelet's defaults allow.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "rotateCertificates": false,
        "serverTLSBootstrap": false,
    })
}

/// kube-proxy in iptables mode: ClusterIPs of [`SERVICE_CIDR`] DNAT to pod addresses;
/// NodePorts only on the gateway address; conntrack limits and sysctls left as they are.
pub fn kube_proxy_config(names: &Names, kubeconfig: &Path, ports: &NodePorts) -> serde_json::Value {
    json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "hostnameOverride": names.node,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "detectLocalMode": "ClusterCIDR",
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": format!("127.0.0.1:{}", ports.proxy_healthz),
        "metricsBindAddress": format!("127.0.0.1:{}", ports.proxy_metrics),
        "nodePortAddresses": [format!("{GATEWAY}/32")],
        "iptables": {"localhostNodePorts": false},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    })
}

/// CoreDNS as cluster DNS: the `kubernetes` plugin answers for cluster.local and the reverse
/// zones; there is no `forward`, so a query for any other name is answered here (SERVFAIL) and
/// never leaves the machine. Runs as a non-root user with a read-only root (binding port 53 is
/// allowed by the pod's `ip_unprivileged_port_start=0`, which containerd sets).
pub fn coredns_manifest(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: fp:coredns
rules:
- apiGroups: [""]
  resources: [services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: fp:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: fp:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:53 {{
        errors
        health :8080
        ready :8181
        kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }}
        cache 30
    }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
spec:
  replicas: 1
  selector:
    matchLabels: {{k8s-app: kube-dns}}
  template:
    metadata:
      labels: {{k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
      containers:
      - name: coredns
        image: {image}
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {{name: dns, containerPort: 53, protocol: UDP}}
        - {{name: dns-tcp, containerPort: 53, protocol: TCP}}
        readinessProbe:
          httpGet: {{path: /ready, port: 8181}}
          periodSeconds: 2
        livenessProbe:
          httpGet: {{path: /health, port: 8080}}
        securityContext:
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities: {{drop: [ALL]}}
        volumeMounts:
        - {{name: config, mountPath: /etc/coredns, readOnly: true}}
      volumes:
      - name: config
        configMap: {{name: coredns}}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
spec:
  selector: {{k8s-app: kube-dns}}
  clusterIP: {DNS_IP}
  ports:
  - {{name: dns, port: 53, protocol: UDP, targetPort: 53}}
  - {{name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_in(addr: &str, cidr: &str) -> bool {
        let parse = |s: &str| s.parse::<std::net::Ipv4Addr>().map(u32::from).unwrap();
        let (net, len) = cidr.split_once('/').unwrap();
        let len: u32 = len.parse().unwrap();
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        parse(addr) & mask == parse(net) & mask
    }

    #[test]
    fn every_address_is_inside_the_node_range() {
        for cidr in [POD_CIDR, SERVICE_CIDR] {
            let net = cidr.split_once('/').unwrap().0;
            assert!(ip_in(net, NODE_RANGE), "{cidr}");
        }
        for addr in [GATEWAY, DNS_IP, KUBERNETES_SERVICE_IP] {
            assert!(ip_in(addr, NODE_RANGE), "{addr}");
        }
        assert!(ip_in(GATEWAY, POD_CIDR));
        assert!(ip_in(DNS_IP, SERVICE_CIDR));
        assert!(!ip_in(DNS_IP, POD_CIDR));
    }

    #[test]
    fn names_are_stable_prefixed_and_fit_the_kernel_limits() {
        let a = Names::for_state_dir(Path::new("/w/a/target/fp-state/cluster"));
        let b = Names::for_state_dir(Path::new("/w/b/target/fp-state/cluster"));
        assert_eq!(
            a,
            Names::for_state_dir(Path::new("/w/a/target/fp-state/cluster"))
        );
        assert_ne!(a.bridge, b.bridge);
        assert!(a.bridge.starts_with("fpn-") && a.bridge.len() <= 15);
        assert!(a.guard_chain.starts_with("FPN-") && a.guard_chain.len() <= 28);
        assert!(a.cgroup_root.starts_with("/fpn-"));
    }

    #[test]
    fn cni_network_has_no_masquerade_and_no_default_route() {
        let names = Names::for_state_dir(Path::new("/s"));
        let conf = cni_conflist(&names, &NodeDirs::new(Path::new("/s")));
        let bridge = &conf["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["isDefaultGateway"], false);
        assert_eq!(bridge["bridge"], names.bridge.as_str());
        let routes = bridge["ipam"]["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0]["dst"], NODE_RANGE);
        assert_eq!(bridge["ipam"]["dataDir"], "/s/node/cni/ipam");
        assert_eq!(conf["plugins"][1]["snat"], false);
    }

    #[test]
    fn containerd_writes_only_below_the_state_directory() {
        let dirs = NodeDirs::new(Path::new("/s"));
        let toml = containerd_toml(&dirs, "fp.local/fp-pause:1");
        for line in toml.lines().filter(|l| l.contains('/')) {
            let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            for value in quoted.into_iter().filter(|v| v.starts_with('/')) {
                assert!(
                    value.starts_with("/s/node/") || value == RUNC || value == CNI_BIN_DIR,
                    "{line}"
                );
            }
        }
        assert!(toml.contains("netns_mounts_under_state_dir = true"));
        assert!(toml.contains("SystemdCgroup = false"));
        assert!(toml.contains("restrict_oom_score_adj = true"));
        assert!(toml.contains("sandbox = \"fp.local/fp-pause:1\""));
        assert!(toml.contains("stream_server_address = \"127.0.0.1\""));
    }

    #[test]
    fn cluster_dns_answers_only_for_the_cluster() {
        let m = coredns_manifest("fp.local/fp-coredns:1");
        assert!(m.contains("clusterIP: 198.19.0.10\n"));
        assert!(m.contains("image: fp.local/fp-coredns:1\n"));
        assert!(m.contains("kubernetes cluster.local in-addr.arpa ip6.arpa {"));
        assert!(!m.contains("forward"), "no query may leave the machine");
        assert!(m.contains("runAsNonRoot: true"));
    }

    #[test]
    fn every_registry_resolves_to_loopback() {
        let hosts = hosts_toml(5000);
        assert!(hosts.starts_with("server = \"http://127.0.0.1:5000\"\n"));
        assert!(!hosts.contains("https://"));
    }

    #[test]
    fn kubelet_runs_on_cgroup_v1_with_its_files_in_the_state_directory() {
        let names = Names::for_state_dir(Path::new("/s"));
        let dirs = NodeDirs::new(Path::new("/s"));
        let ports = NodePorts {
            kubelet: 1,
            kubelet_healthz: 2,
            proxy_healthz: 3,
            proxy_metrics: 4,
            registry: 5,
        };
        let c = kubelet_config(
            &names,
            &dirs,
            &ports,
            Path::new("/s/pki/ca.crt"),
            (Path::new("/s/k.crt"), Path::new("/s/k.key")),
        );
        assert_eq!(c["failCgroupV1"], false);
        assert_eq!(c["cgroupDriver"], "cgroupfs");
        assert_eq!(c["address"], GATEWAY);
        assert_eq!(c["readOnlyPort"], 0);
        assert_eq!(c["authentication"]["anonymous"]["enabled"], false);
        for key in ["podLogsDir", "volumePluginDir", "resolvConf"] {
            assert!(c[key].as_str().unwrap().starts_with("/s/node/"), "{key}");
        }
        let p = kube_proxy_config(&names, Path::new("/s/kp"), &ports);
        assert_eq!(p["mode"], "iptables");
        assert_eq!(p["clusterCIDR"], POD_CIDR);
        assert_eq!(p["nodePortAddresses"][0], "198.18.0.1/32");
        assert_eq!(p["iptables"]["localhostNodePorts"], false);
    }
}
