package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/endpoint"
)

// mountEndpoints serves, under /api/v1, the JSON route of every endpoint
// the services' tables expose: a public endpoint's in api, any other's in
// me, whose middleware needs a caller. The gateway only authenticates the
// caller and passes the token on: the service serving the RPC checks the
// permission its table names.
func (g *Gateway) mountEndpoints(api, me *gin.RouterGroup) {
	for _, t := range g.Endpoints {
		for i := range t.Endpoints {
			e := &t.Endpoints[i]
			group := me
			if e.Access == endpoint.Public {
				group = api
			}
			for _, r := range e.Routes {
				group.Handle(r.Method, r.Path, g.serveEndpoint(t.Service, e.Name, r))
			}
		}
	}
}

// serveEndpoint is the gin handler of one route.
func (g *Gateway) serveEndpoint(service, name string, r *endpoint.Route) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := r.Call(rpcContext(c), g.Client, service, name, input{c: c})
		var bad *endpoint.InputError
		switch {
		case errors.As(err, &bad):
			abortError(c, bad.Status, bad.Code, bad.Message)
		case err != nil:
			g.abortRPC(c, err)
		case body == nil:
			c.Status(r.Status)
		default:
			c.JSON(r.Status, body)
		}
	}
}

// input is an endpoint.Input over a gin request.
type input struct{ c *gin.Context }

func (in input) Param(name string) string { return in.c.Param(name) }
func (in input) Query(name string) string { return in.c.Query(name) }
func (in input) Language() string         { return langOf(in.c) }

func (in input) MediaType() string {
	mt, _, _ := mime.ParseMediaType(in.c.GetHeader("Content-Type"))
	return mt
}

func (in input) Body() ([]byte, error) {
	b, err := io.ReadAll(in.c.Request.Body)
	if err != nil {
		return nil, &endpoint.InputError{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge, Message: "the request body is over " + strconv.Itoa(maxBody) + " bytes"}
	}
	return b, nil
}

func (in input) DecodeJSON(v any) error {
	if err := readJSON(in.c, v); err != nil {
		return err
	}
	return nil
}
