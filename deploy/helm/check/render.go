// Package check renders Portal's Helm chart (deploy/helm/portal) with Helm's
// own library and decodes every object strictly into the Kubernetes API
// types, so that its tests can check the chart offline: the restricted Pod
// Security Standard, the NetworkPolicies, and that deploy/k8s/portal.yaml is
// the chart's output. It is a module of its own so that Helm's many
// dependencies stay out of Portal's go.mod.
package check

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one rendered object: its source template, kind and name, and
// the typed value it decoded into (a pointer to a k8s.io/api type).
type Object struct {
	Template string
	Kind     string
	Name     string
	Value    any
}

// kinds are the object kinds the chart may produce, each with its type.
var kinds = map[string]func() any{
	"v1/Namespace":                       func() any { return new(corev1.Namespace) },
	"v1/Service":                         func() any { return new(corev1.Service) },
	"v1/ConfigMap":                       func() any { return new(corev1.ConfigMap) },
	"apps/v1/Deployment":                 func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                func() any { return new(appsv1.StatefulSet) },
	"batch/v1/Job":                       func() any { return new(batchv1.Job) },
	"policy/v1/PodDisruptionBudget":      func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/Ingress":       func() any { return new(networkingv1.Ingress) },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return new(networkingv1.NetworkPolicy) },
}

// Render renders the chart in dir as release name in namespace, with
// values over the chart's values.yaml. It returns the manifest (the
// templates' output by file name, the namespace first) and its
// objects.
func Render(dir, name, namespace string, values map[string]any) (string, []Object, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("load chart: %w", err)
	}
	vals, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: name, Namespace: namespace, IsInstall: true}, nil)
	if err != nil {
		return "", nil, fmt.Errorf("values: %w", err)
	}
	eng := engine.Engine{Strict: true}
	out, err := eng.Render(ch, vals)
	if err != nil {
		return "", nil, fmt.Errorf("render: %w", err)
	}
	files := make([]string, 0, len(out))
	for f := range out {
		files = append(files, f)
	}
	// The namespace first, so that kubectl apply -f creates it first.
	sort.Slice(files, func(i, j int) bool {
		ni, nj := strings.HasSuffix(files[i], "/namespace.yaml"), strings.HasSuffix(files[j], "/namespace.yaml")
		if ni != nj {
			return ni
		}
		return files[i] < files[j]
	})
	var manifest strings.Builder
	var objs []Object
	for _, f := range files {
		if !strings.HasSuffix(f, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(out[f], "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			o, err := Decode(doc)
			if err != nil {
				return "", nil, fmt.Errorf("%s: %w", f, err)
			}
			o.Template = f
			objs = append(objs, o)
			fmt.Fprintf(&manifest, "---\n# Source: %s\n%s\n", f, strings.TrimSpace(doc))
		}
	}
	return manifest.String(), objs, nil
}

// Decode decodes one YAML document strictly into its k8s.io/api type: a
// duplicate key, an unknown field or an unknown kind is an error.
func Decode(doc string) (Object, error) {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return Object{}, err
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return Object{}, err
	}
	mk, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return Object{}, fmt.Errorf("unknown kind %s/%s", head.APIVersion, head.Kind)
	}
	// sigs.k8s.io/json as the API server decodes: field names match case
	// sensitively (encoding/json would take clusterIp for clusterIP).
	v := mk()
	strict, err := kjson.UnmarshalStrict(js, v)
	if err = errors.Join(append(strict, err)...); err != nil {
		return Object{}, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	return Object{Kind: head.Kind, Name: head.Metadata.Name, Value: v}, nil
}

// stripComments drops the comment lines of a YAML document.
func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
