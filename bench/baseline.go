package main

import (
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	goredis "github.com/go-redis/redis/v8"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/user"
)

// baselineReady is the log line of a baseline that serves.
const baselineReady = "baseline ready"

// runBaseline is `bench baseline`: the monolith Portal is measured against.
// One process, a plain gin handler for GET /api/v1/me that does the same
// work as Portal's path: verify the same kind of RS256 token with the same
// public key (MICRO_AUTH_PUBLIC_KEY), read the same user record from the
// same Redis (the user service's table), answer the same JSON. It uses
// Portal's own token verifier and HTTP server settings, and Redis client
// bounds like the user service's store. It serves until killed.
func runBaseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	redisAddr := fs.String("redis", "127.0.0.1:6379", "the user service's Redis")
	table := fs.String("table", "portal:user:", "the user service's key prefix in Redis")
	listen := fs.String("listen", "127.0.0.1:0", "where to serve HTTP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	verifier, err := pauth.NewJWT(pauth.Keys{Public: os.Getenv("MICRO_AUTH_PUBLIC_KEY")}.Options()...)
	if err != nil {
		return err
	}
	rdb := goredis.NewClient(&goredis.Options{
		Addr:        *redisAddr,
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		PoolTimeout: 500 * time.Millisecond,
		MaxRetries:  3, MinRetryBackoff: 8 * time.Millisecond, MaxRetryBackoff: 64 * time.Millisecond,
	})
	defer rdb.Close()

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/api/v1/me", func(c *gin.Context) {
		scheme, tok, _ := strings.Cut(c.GetHeader("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			c.JSON(http.StatusUnauthorized, gin.H{"code": "auth.unauthenticated", "message": "a token is required"})
			return
		}
		acc, err := verifier.Inspect(strings.TrimSpace(tok))
		if err != nil {
			c.JSON(http.StatusUnauthorized, gin.H{"code": "auth.invalid_token", "message": "the token is not valid"})
			return
		}
		b, err := rdb.Get(c.Request.Context(), *table+"user/"+acc.ID).Bytes()
		if errors.Is(err, goredis.Nil) {
			c.JSON(http.StatusUnauthorized, gin.H{"code": "auth.session_ended", "message": "the session has ended"})
			return
		} else if err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"code": "unavailable", "message": err.Error()})
			return
		}
		var u user.User
		if err := json.Unmarshal(b, &u); err != nil {
			c.JSON(http.StatusInternalServerError, gin.H{"code": "internal", "message": err.Error()})
			return
		}
		roles := u.Roles
		if roles == nil {
			roles = []string{}
		}
		c.JSON(http.StatusOK, gin.H{"id": u.ID, "username": u.Username, "roles": roles})
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	slog.New(slog.NewTextHandler(os.Stderr, nil)).Info(baselineReady, "http", ln.Addr().String())
	return portal.NewHTTPServer(r).Serve(ln)
}
