package check

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite deploy/k8s/portal.yaml from the chart")

const (
	chartDir  = "../portal"
	manifests = "../../k8s/portal.yaml"
)

// generated is deploy/k8s/portal.yaml's header.
const generated = `# Generated from deploy/helm/portal with its default values (release and
# namespace "portal", the namespace created): make k8s. Do not edit; change
# the chart, then run make k8s (make test fails while this file differs).
`

// k8sValues are the values deploy/k8s/portal.yaml is rendered with.
var k8sValues = map[string]any{"namespace": map[string]any{"create": true}}

// externalValues: every backend external, with TLS, CAs and credentials
// from Secrets, and mutual TLS between the services.
var externalValues = map[string]any{
	"tls": map[string]any{"enabled": true},
	"etcd": map[string]any{"bundled": false, "address": "https://etcd.db:2379", "caSecret": "etcd-ca",
		"clientCertSecret": "etcd-client", "credentialsSecret": "etcd-user"},
	"redis": map[string]any{"bundled": false, "addressSecret": "redis-addresses", "caSecret": "redis-ca"},
	"nats":  map[string]any{"bundled": false, "addressSecret": "nats-address", "caSecret": "nats-ca", "credsSecret": "nats-creds"},
}

func render(t *testing.T, values map[string]any) (string, []Object) {
	t.Helper()
	m, objs, err := Render(chartDir, "portal", "portal", values)
	if err != nil {
		t.Fatal(err)
	}
	return m, objs
}

// valueSets are the configurations every check runs on.
var valueSets = map[string]map[string]any{"bundled": k8sValues, "external": externalValues}

func TestManifestsUpToDate(t *testing.T) {
	m, _ := render(t, k8sValues)
	want := generated + m
	if *update {
		if err := os.WriteFile(manifests, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from the chart's output: run make k8s and commit", manifests)
	}
}

func TestStrictDecode(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: None}\n",
		"duplicate key": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"unknown kind":  "apiVersion: v1\nkind: Servic\nmetadata: {name: x}\n",
		"wrong type":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n",
	} {
		if _, err := Decode(doc); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := Decode("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: None}\n"); err != nil {
		t.Errorf("a valid Service: %v", err)
	}
}

// wantObjects: the objects each value set must produce, and those it must not.
func TestObjects(t *testing.T) {
	for set, vals := range valueSets {
		_, objs := render(t, vals)
		have := map[string]bool{}
		for _, o := range objs {
			have[o.Kind+"/"+o.Name] = true
		}
		want := []string{"Ingress/web", "Service/web", "NetworkPolicy/portal-default-deny"}
		for _, s := range []string{"web", "user", "system"} {
			want = append(want, "Deployment/"+s, "PodDisruptionBudget/"+s, "NetworkPolicy/"+s)
		}
		bundled := []string{"StatefulSet/etcd", "StatefulSet/redis", "Deployment/nats", "Job/config-init",
			"NetworkPolicy/etcd", "NetworkPolicy/redis", "NetworkPolicy/nats"}
		if set == "bundled" {
			want = append(want, bundled...)
		}
		for _, w := range want {
			if !have[w] {
				t.Errorf("%s: no %s", set, w)
			}
		}
		if set == "external" {
			for _, b := range bundled {
				if have[b] {
					t.Errorf("%s: %s rendered with the backend external", set, b)
				}
			}
		}
	}
}

func TestRestrictedProfile(t *testing.T) {
	for set, vals := range valueSets {
		_, objs := render(t, vals)
		for _, p := range Pods(objs) {
			if err := Restricted(p); err != nil {
				t.Errorf("%s: %v", set, err)
			}
		}
	}
}

// TestRestrictedCatches breaks each rule on a rendered pod and expects
// Restricted to say so.
func TestRestrictedCatches(t *testing.T) {
	yes, no, root := true, false, int64(0)
	for name, breakIt := range map[string]func(s *corev1.PodSpec){
		"privilege escalation": func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes },
		"escalation unset":     func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil },
		"writable root":        func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &no },
		"capabilities kept":    func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Capabilities.Drop = nil },
		"capability added": func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		},
		"root allowed": func(s *corev1.PodSpec) {
			s.SecurityContext.RunAsNonRoot = nil
			s.Containers[0].SecurityContext.RunAsNonRoot = nil
		},
		"uid 0":      func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.RunAsUser = &root },
		"privileged": func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Privileged = &yes },
		"no seccomp": func(s *corev1.PodSpec) {
			s.SecurityContext.SeccompProfile = nil
			s.Containers[0].SecurityContext.SeccompProfile = nil
		},
		"unconfined seccomp": func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		},
		"host network": func(s *corev1.PodSpec) { s.HostNetwork = true },
		"host path": func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		},
		"host port": func(s *corev1.PodSpec) {
			s.Containers[0].Ports = append(s.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 80, HostPort: 80})
		},
		"token mounted": func(s *corev1.PodSpec) { s.AutomountServiceAccountToken = nil },
	} {
		_, objs := render(t, k8sValues)
		for _, p := range Pods(objs) {
			breakIt(&p.Spec.Spec)
			if Restricted(p) == nil {
				t.Errorf("%s: %s passes", name, p.Owner)
			}
		}
	}
}

// networkRules: every pod is under a policy; only web's HTTP port is open
// to anyone; user and system take gRPC from Portal's services only; the
// bundled backends take connections from Portal's pods (and etcd from its
// own members) only.
func networkRules(objs []Object) error {
	pods := Pods(objs)
	portal := []string{"Deployment/web", "Deployment/user", "Deployment/system", "Job/config-init"}
	var errs []error
	for _, p := range pods {
		rules, selected, err := Ingress(objs, pods, p)
		if err != nil {
			return err
		}
		if !selected {
			errs = append(errs, fmt.Errorf("%s: no NetworkPolicy selects it", p.Owner))
		}
		for _, r := range rules {
			if r.Outside && (p.Owner != "Deployment/web" || !slices.Equal(r.Ports, []string{"http"})) {
				errs = append(errs, fmt.Errorf("%s: reachable from outside on ports %v", p.Owner, r.Ports))
			}
			for _, src := range r.Pods {
				if !slices.Contains(portal, src) && src != p.Owner {
					errs = append(errs, fmt.Errorf("%s: reachable from %s", p.Owner, src))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func TestNetworkPolicies(t *testing.T) {
	for set, vals := range valueSets {
		_, objs := render(t, vals)
		if err := networkRules(objs); err != nil {
			t.Errorf("%s: %v", set, err)
		}
	}
}

// TestNetworkRulesCatch breaks the rendered policies and expects
// networkRules to say so.
func TestNetworkRulesCatch(t *testing.T) {
	policy := func(objs []Object, name string) *networkingv1.NetworkPolicy {
		for _, o := range objs {
			if np, ok := o.Value.(*networkingv1.NetworkPolicy); ok && np.Name == name {
				return np
			}
		}
		t.Fatalf("no NetworkPolicy %s", name)
		return nil
	}
	for name, breakIt := range map[string]func(objs []Object) []Object{
		"no default deny": func(objs []Object) []Object {
			return slices.DeleteFunc(objs, func(o Object) bool { return o.Name == "portal-default-deny" })
		},
		"redis from another namespace": func(objs []Object) []Object {
			np := policy(objs, "redis")
			np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}})
			return objs
		},
		"etcd from any pod": func(objs []Object) []Object {
			np := policy(objs, "etcd")
			np.Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}
			return objs
		},
		"nats open": func(objs []Object) []Object {
			policy(objs, "nats").Spec.Ingress[0].From = nil
			return objs
		},
		"user open": func(objs []Object) []Object {
			policy(objs, "user").Spec.Ingress[0].From = nil
			return objs
		},
		"web grpc open": func(objs []Object) []Object {
			policy(objs, "web").Spec.Ingress[1].From = nil
			return objs
		},
	} {
		_, objs := render(t, k8sValues)
		if networkRules(breakIt(objs)) == nil {
			t.Errorf("%s: networkRules passes", name)
		}
	}
}

// containers returns each Portal service's container by service name.
func containers(t *testing.T, objs []Object) map[string]*corev1.Container {
	t.Helper()
	out := map[string]*corev1.Container{}
	for _, o := range objs {
		if d, ok := o.Value.(*appsv1.Deployment); ok && slices.Contains([]string{"web", "user", "system"}, d.Name) {
			out[d.Name] = &d.Spec.Template.Spec.Containers[0]
		}
	}
	if len(out) != 3 {
		t.Fatalf("found %d of the 3 Portal Deployments", len(out))
	}
	return out
}

func env(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// TestSecretsAndProbes: the private key and the admin password reach user
// only; the public and gateway keys every service; web trusts the Ingress;
// each service is probed on /readyz/lifecycle of its own metrics listener.
func TestSecretsAndProbes(t *testing.T) {
	for set, vals := range valueSets {
		_, objs := render(t, vals)
		for name, c := range containers(t, objs) {
			for _, key := range []string{"MICRO_AUTH_PRIVATE_KEY", "PORTAL_ADMIN_PASSWORD"} {
				if (env(c, key) != nil) != (name == "user") {
					t.Errorf("%s: %s has %s: %v", set, name, key, env(c, key) != nil)
				}
			}
			for _, key := range []string{"MICRO_AUTH_PUBLIC_KEY", "PORTAL_GATEWAY_KEY"} {
				if e := env(c, key); e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("%s: %s has no %s from a Secret", set, name, key)
				}
			}
			if (env(c, "PORTAL_TRUSTED_PROXIES") != nil) != (name == "web") {
				t.Errorf("%s: %s: PORTAL_TRUSTED_PROXIES set: %v", set, name, env(c, "PORTAL_TRUSTED_PROXIES") != nil)
			}
			if (env(c, "PORTAL_METRICS_TOKEN") != nil) != (name == "web") {
				t.Errorf("%s: %s: PORTAL_METRICS_TOKEN set: %v", set, name, env(c, "PORTAL_METRICS_TOKEN") != nil)
			}
			var metricsPort string
			for _, p := range c.Ports {
				if p.Name == "metrics" {
					metricsPort = fmt.Sprint(":", p.ContainerPort)
				}
			}
			if e := env(c, "PORTAL_METRICS_ADDRESS"); e == nil || metricsPort == "" || e.Value != metricsPort {
				t.Errorf("%s: %s: PORTAL_METRICS_ADDRESS %v, metrics port %q", set, name, e, metricsPort)
			}
			rp := c.ReadinessProbe
			// Not /readyz: a dependency every pod shares (etcd, NATS) would
			// make every pod unready at once.
			if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz/lifecycle" || rp.HTTPGet.Port.String() != "metrics" {
				t.Errorf("%s: %s: readiness probe %+v, want GET /readyz/lifecycle on port metrics", set, name, rp)
			}
		}
	}
}

// TestExternalBackends: with external backends, each setting names a file
// on a mounted Secret or comes from a Secret, and none is left at a
// bundled address.
func TestExternalBackends(t *testing.T) {
	_, objs := render(t, externalValues)
	for _, o := range objs {
		d, ok := o.Value.(*appsv1.Deployment)
		if !ok {
			continue
		}
		spec := d.Spec.Template.Spec
		c := spec.Containers[0]
		secretVolumes := map[string]string{}
		for _, v := range spec.Volumes {
			if v.Secret != nil {
				secretVolumes[v.Name] = v.Secret.SecretName
			}
		}
		mounted := map[string]string{} // mount path -> Secret
		for _, m := range c.VolumeMounts {
			if s, ok := secretVolumes[m.Name]; ok {
				mounted[m.MountPath] = s
			}
		}
		want := map[string]string{
			"PORTAL_ETCD_CA_FILE": "etcd-ca", "PORTAL_ETCD_CERT_FILE": "etcd-client", "PORTAL_ETCD_KEY_FILE": "etcd-client",
			"PORTAL_REDIS_CA_FILE": "redis-ca", "PORTAL_NATS_CA_FILE": "nats-ca", "PORTAL_NATS_CREDS_FILE": "nats-creds",
			"PORTAL_TLS_CERT_FILE": "portal-tls-" + d.Name, "PORTAL_TLS_KEY_FILE": "portal-tls-" + d.Name, "PORTAL_TLS_CA_FILE": "portal-tls-" + d.Name,
		}
		for key, secret := range want {
			e := env(&c, key)
			if e == nil {
				t.Errorf("%s: no %s", d.Name, key)
				continue
			}
			if got := mounted[path.Dir(e.Value)]; got != secret {
				t.Errorf("%s: %s=%s is on Secret %q, want %q", d.Name, key, e.Value, got, secret)
			}
		}
		fromSecret := map[string]string{"ETCD_USERNAME": "etcd-user", "ETCD_PASSWORD": "etcd-user", "MICRO_BROKER_ADDRESS": "nats-address"}
		if d.Name == "web" {
			fromSecret["PORTAL_CACHE_ADDRESS"] = "redis-addresses"
		} else {
			fromSecret["MICRO_STORE_ADDRESS"] = "redis-addresses"
		}
		for key, secret := range fromSecret {
			e := env(&c, key)
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != secret {
				t.Errorf("%s: %s is not from Secret %s: %+v", d.Name, key, secret, e)
			}
		}
		if e := env(&c, "MICRO_REGISTRY_ADDRESS"); e == nil || e.Value != "https://etcd.db:2379" {
			t.Errorf("%s: MICRO_REGISTRY_ADDRESS %+v", d.Name, e)
		}
		for _, e := range c.Env {
			for _, bundled := range []string{"etcd:2379", "redis:6379", "nats:4222"} {
				if strings.HasSuffix(e.Value, bundled) && !strings.Contains(e.Value, ".") {
					t.Errorf("%s: %s=%s is a bundled backend's address", d.Name, e.Name, e.Value)
				}
			}
		}
	}
}

// TestExternalNeedsAddress: an external backend without an address fails
// the render with a message naming the value.
func TestExternalNeedsAddress(t *testing.T) {
	for _, b := range []string{"etcd", "redis", "nats"} {
		_, _, err := Render(chartDir, "portal", "portal", map[string]any{b: map[string]any{"bundled": false}})
		if err == nil || !strings.Contains(err.Error(), b+".address") {
			t.Errorf("%s external without an address: %v", b, err)
		}
	}
}
