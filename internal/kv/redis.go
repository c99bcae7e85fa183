package kv

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/go-redis/redis/v8"
)

// Redis is a Store in Redis, in the key space of go-micro's redis store
// plugin (the table glued to the key), so that the plugin reads what it
// writes. An index is a sorted set at "<table>#<index>", every member with
// score 0, read in byte order (ZRANGEBYLEX). Apply is one Lua script: Redis
// runs it atomically, and every script is idempotent under a retry (a claim
// recognises its own value), so the client may retry it after a timeout.
type Redis struct {
	cli     goredis.UniversalClient
	table   string
	timeout time.Duration
}

// NewRedis is a Store on cli under table; each call is bounded by timeout
// (the store plugin ignores contexts: this is what bounds a hung Redis).
func NewRedis(cli goredis.UniversalClient, table string, timeout time.Duration) *Redis {
	return &Redis{cli: cli, table: table, timeout: timeout}
}

// Close closes the client NewRedis was given: a Redis made for a service
// owns its client.
func (r *Redis) Close() error { return r.cli.Close() }

func (r *Redis) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

func (r *Redis) ixKey(index string) string { return r.table + "#" + index }

// Get implements Store (one MGET).
func (r *Redis) Get(keys ...string) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ctx, cancel := r.ctx()
	defer cancel()
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.table + k
	}
	vals, err := r.cli.MGet(ctx, full...).Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case string:
			out[i] = []byte(v)
		case nil:
		default:
			return nil, fmt.Errorf("kv: MGET %s: unexpected %T", full[i], v)
		}
	}
	return out, nil
}

// applyScript checks every condition, then writes. KEYS are the ops' keys;
// ARGV, five per op: kind, value, ttl (ms), condition, expected value.
var applyScript = goredis.NewScript(`
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local cond, val, exp = ARGV[b + 4], ARGV[b + 2], ARGV[b + 5]
  if cond ~= "0" then
    local cur = redis.call("GET", KEYS[i])
    if cond == "1" and not cur then return 0 end
    if cond == "2" and cur then return 0 end
    if cond == "3" and cur and cur ~= val then return 0 end
    if cond == "4" and cur ~= exp then return 0 end
  end
end
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local kind, val, ttl = ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3])
  if kind == "1" then
    if ttl > 0 then redis.call("SET", KEYS[i], val, "PX", ttl) else redis.call("SET", KEYS[i], val) end
  elseif kind == "2" then redis.call("DEL", KEYS[i])
  elseif kind == "3" then redis.call("ZADD", KEYS[i], 0, val)
  elseif kind == "4" then redis.call("ZREM", KEYS[i], val)
  elseif kind == "5" then redis.call("ZREMRANGEBYLEX", KEYS[i], "-", "(" .. val)
  elseif kind == "6" then
    if redis.call("INCR", KEYS[i]) == 1 and ttl > 0 then redis.call("PEXPIRE", KEYS[i], ttl) end
  end
end
return 1
`)

// Apply implements Store.
func (r *Redis) Apply(ops ...Op) (bool, error) {
	if len(ops) == 0 {
		return true, nil
	}
	keys := make([]string, len(ops))
	args := make([]interface{}, 0, 5*len(ops))
	for i, o := range ops {
		keys[i] = r.table + o.Key
		if o.Kind >= Add && o.Kind <= TrimBelow {
			keys[i] = r.ixKey(o.Key)
		}
		ttl := int64(0)
		if o.TTL > 0 {
			ttl = max(o.TTL.Milliseconds(), 1)
		}
		args = append(args, strconv.Itoa(int(o.Kind)), o.Value, ttl, strconv.Itoa(int(o.If)), o.Expect)
	}
	ctx, cancel := r.ctx()
	defer cancel()
	n, err := applyScript.Run(ctx, r.cli, keys, args...).Int()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// lexBounds are r's bounds as ZRANGEBYLEX takes them.
func lexBounds(r Range) (min, max string) {
	min, max = "-", "+"
	if r.After != "" {
		min = "(" + r.After
	}
	if r.Before != "" {
		max = "(" + r.Before
	}
	return min, max
}

// Members implements Store: one ZRANGEBYLEX (ZREVRANGEBYLEX).
func (r *Redis) Members(index string, rg Range) ([]string, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	lo, hi := lexBounds(rg)
	by := &goredis.ZRangeBy{Min: lo, Max: hi, Offset: int64(rg.Offset), Count: int64(rg.Max())}
	if rg.Desc {
		return r.cli.ZRevRangeByLex(ctx, r.ixKey(index), by).Result()
	}
	return r.cli.ZRangeByLex(ctx, r.ixKey(index), by).Result()
}

// Count implements Store: one ZLEXCOUNT.
func (r *Redis) Count(index, from string, max int) (int, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	lo := "-"
	if from != "" {
		lo = "[" + from
	}
	n, err := r.cli.ZLexCount(ctx, r.ixKey(index), lo, "+").Result()
	if max > 0 {
		n = min(n, int64(max))
	}
	return int(n), err
}
