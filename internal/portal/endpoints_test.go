package portal_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/supervisor"
	"github.com/portal-go/portal/internal/system"
	"github.com/portal-go/portal/internal/user"
	oidcpb "github.com/portal-go/portal/proto/oidc"
	runtimepb "github.com/portal-go/portal/proto/runtime"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// TestEveryRPCIsDeclared: each service's table and its proto name the same
// RPCs, so none is refused for want of a line, and no line is stale.
func TestEveryRPCIsDeclared(t *testing.T) {
	for _, tc := range []struct {
		table *endpoint.Table
		// svcs are the proto services one go-micro service serves.
		svcs []protoreflect.ServiceDescriptor
	}{
		{user.Endpoints, []protoreflect.ServiceDescriptor{
			userpb.File_proto_user_user_proto.Services().ByName("User"),
			userpb.File_proto_user_accounts_proto.Services().ByName("Accounts"),
			userpb.File_proto_user_passkeys_proto.Services().ByName("Passkeys"),
			// The user service serves the OpenID provider's RPCs too.
			oidcpb.File_proto_oidc_oidc_proto.Services().ByName("OIDC"),
		}},
		{system.Endpoints, []protoreflect.ServiceDescriptor{systempb.File_proto_system_system_proto.Services().ByName("System")}},
		{supervisor.Endpoints, []protoreflect.ServiceDescriptor{runtimepb.File_proto_runtime_runtime_proto.Services().ByName("Runtime")}},
	} {
		n := 0
		for _, svc := range tc.svcs {
			methods := svc.Methods()
			n += methods.Len()
			for i := range methods.Len() {
				name := string(svc.Name()) + "." + string(methods.Get(i).Name())
				if _, ok := tc.table.Lookup(name); !ok {
					t.Errorf("%s: %s is not in the endpoint table", tc.table.Service, name)
				}
			}
		}
		if len(tc.table.Endpoints) != n {
			t.Errorf("%s: %d lines for %d RPCs", tc.table.Service, len(tc.table.Endpoints), n)
		}
	}
}
