// Package deploytest tests deploy/: it generates the CustomResourceDefinitions
// from engine/policy's Go types, renders and lints the Helm chart, builds the
// kustomize base and validates every manifest offline against Kubernetes', KEDA's,
// prometheus-operator's and Kedastral's own schemas. It is a module of its own so
// that its heavy dependencies stay out of the main go.mod.
package deploytest

//go:generate go run ./cmd/crdgen -out ../crds -chart ../helm/kedastral
