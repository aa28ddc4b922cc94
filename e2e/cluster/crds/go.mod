// Pins the third-party modules whose CRD manifests the local control plane
// installs. Nothing is built from here: `go mod download -json` fetches the
// module archives (verified against go.sum) and xtask reads the YAML from them:
//   cert-manager:        deploy/crds/*.yaml
//   prometheus-operator: example/prometheus-operator-crd/*.yaml
module footballprediction/e2e/cluster/crds

go 1.26.0

require (
	github.com/cert-manager/cert-manager v1.21.2
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
