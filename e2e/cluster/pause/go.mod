// The sandbox ("pause") program of the local cluster's real node: holds a pod's
// namespaces open until it is told to stop. Built static, packed into an OCI image
// and pushed to the loopback registry by `cargo xtask cluster up --node kubelet`.
module footballprediction/e2e/cluster/pause

go 1.26.0
