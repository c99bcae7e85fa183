package check

import (
	"errors"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Pod is a pod template of a rendered workload.
type Pod struct {
	Owner string // Kind/name of the workload
	Spec  *corev1.PodTemplateSpec
}

// Pods returns the pod templates of the workloads among objs.
func Pods(objs []Object) []Pod {
	var pods []Pod
	for _, o := range objs {
		var t *corev1.PodTemplateSpec
		switch v := o.Value.(type) {
		case *appsv1.Deployment:
			t = &v.Spec.Template
		case *appsv1.StatefulSet:
			t = &v.Spec.Template
		case *batchv1.Job:
			t = &v.Spec.Template
		default:
			continue
		}
		pods = append(pods, Pod{Owner: o.Kind + "/" + o.Name, Spec: t})
	}
	return pods
}

// Restricted returns every way the pod breaks the restricted Pod Security
// Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
// plus Portal's own rules: a read-only root filesystem and no service
// account token.
func Restricted(p Pod) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(p.Owner+": "+format, a...)) }
	s := p.Spec.Spec
	if s.HostNetwork || s.HostPID || s.HostIPC {
		bad("shares a host namespace")
	}
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		bad("mounts a service account token")
	}
	for _, v := range s.Volumes {
		if v.ConfigMap == nil && v.Secret == nil && v.EmptyDir == nil && v.Projected == nil &&
			v.DownwardAPI == nil && v.PersistentVolumeClaim == nil && v.CSI == nil && v.Ephemeral == nil {
			bad("volume %s has a type the restricted profile forbids", v.Name)
		}
	}
	psc := s.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		bad("runs as uid 0")
	}
	for _, c := range slices.Concat(s.InitContainers, s.Containers) {
		csc := c.SecurityContext
		if csc == nil {
			bad("container %s has no securityContext", c.Name)
			continue
		}
		if !isTrue(csc.RunAsNonRoot) && !(csc.RunAsNonRoot == nil && isTrue(psc.RunAsNonRoot)) {
			bad("container %s may run as root (runAsNonRoot)", c.Name)
		}
		if csc.RunAsUser != nil && *csc.RunAsUser == 0 {
			bad("container %s runs as uid 0", c.Name)
		}
		if isTrue(csc.Privileged) {
			bad("container %s is privileged", c.Name)
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			bad("container %s allows privilege escalation", c.Name)
		}
		if !isTrue(csc.ReadOnlyRootFilesystem) {
			bad("container %s has a writable root filesystem", c.Name)
		}
		if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
			bad("container %s does not drop ALL capabilities", c.Name)
		} else if len(csc.Capabilities.Add) > 0 {
			bad("container %s adds capabilities %v", c.Name, csc.Capabilities.Add)
		}
		sp := csc.SeccompProfile
		if sp == nil {
			sp = psc.SeccompProfile
		}
		if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			bad("container %s has no RuntimeDefault seccomp profile", c.Name)
		}
		for _, port := range c.Ports {
			if port.HostPort != 0 {
				bad("container %s uses a host port", c.Name)
			}
		}
	}
	return errors.Join(errs...)
}

func isTrue(b *bool) bool { return b != nil && *b }

// Sources says who a NetworkPolicy rule lets in: Outside when any address
// or another namespace may (no from, an ipBlock, a namespaceSelector), and
// which of the release's own pods otherwise.
type Sources struct {
	Outside bool
	Pods    []string // owners, Kind/name
	Ports   []string
}

// Ingress returns who the NetworkPolicies among objs let into pod p, one
// Sources per rule, and false when no policy selects p (all traffic in).
func Ingress(objs []Object, pods []Pod, p Pod) ([]Sources, bool, error) {
	var out []Sources
	selected := false
	for _, o := range objs {
		np, ok := o.Value.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		match, err := selects(&np.Spec.PodSelector, p.Spec.Labels)
		if err != nil {
			return nil, false, fmt.Errorf("NetworkPolicy %s: %w", np.Name, err)
		}
		if !match || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		selected = true
		for _, r := range np.Spec.Ingress {
			var s Sources
			for _, port := range r.Ports {
				if port.Port != nil {
					s.Ports = append(s.Ports, port.Port.String())
				}
			}
			if len(r.From) == 0 {
				s.Outside = true
			}
			for _, peer := range r.From {
				if peer.IPBlock != nil || peer.NamespaceSelector != nil || peer.PodSelector == nil {
					s.Outside = true
					continue
				}
				for _, q := range pods {
					m, err := selects(peer.PodSelector, q.Spec.Labels)
					if err != nil {
						return nil, false, fmt.Errorf("NetworkPolicy %s: %w", np.Name, err)
					}
					if m {
						s.Pods = append(s.Pods, q.Owner)
					}
				}
			}
			out = append(out, s)
		}
	}
	return out, selected, nil
}

func selects(sel *metav1.LabelSelector, l map[string]string) (bool, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(l)), nil
}
