package system

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/kv"
)

// History is the config's history in the system service's store: every
// applied change as a numbered version (who, when, which keys old -> new, the
// whole document), the last HistoryKeep of them. The version number is an
// optimistic lock: a version is claimed by one atomic write conditional on
// the head still being the version the change was made from, so two admins
// (or two system instances on one store) cannot both claim it.
type History struct {
	kv kv.Store
}

// HistoryKeep is how many versions the history keeps.
const HistoryKeep = 100

// The history's keys: the head (the latest version's number), one record per
// version, and an index of the versions.
const (
	historyHead  = "config/head"
	historyIndex = "config/versions"
)

func historyKey(v int64) string { return "config/v/" + historyMember(v) }

// historyMember is v padded so that byte order is numeric order.
func historyMember(v int64) string { return fmt.Sprintf("%019d", v) }

// ErrVersionUnknown: no such version in the history (never, or trimmed).
var ErrVersionUnknown = errors.New("system: no such config version")

// NewHistory keeps the history in st, through k when st has an atomic
// layer (nil: one made for st).
func NewHistory(st store.Store, k kv.Store) *History {
	if k == nil {
		if sk, ok := st.(kv.Store); ok {
			k = sk
		} else {
			k = kv.NewLocal(st)
		}
	}
	return &History{kv: k}
}

// Version is one applied change of the config.
type Version struct {
	Version int64     `json:"version"`
	Time    time.Time `json:"time"`
	// Origin is edit, rollback, file, etcd or built-in.
	Origin     string          `json:"origin"`
	ActorID    string          `json:"actor_id,omitempty"`
	ActorName  string          `json:"actor_name,omitempty"`
	RollbackOf int64           `json:"rollback_of,omitempty"`
	Changes    []config.Change `json:"changes"`
	Document   string          `json:"document"`
}

// Head returns the latest version's number, 0 when there is none.
func (h *History) Head() (int64, error) {
	vs, err := h.kv.Get(historyHead)
	if err != nil || vs[0] == nil {
		return 0, err
	}
	return strconv.ParseInt(string(vs[0]), 10, 64)
}

// Get returns version v, or ErrVersionUnknown.
func (h *History) Get(v int64) (*Version, error) {
	vs, err := h.kv.Get(historyKey(v))
	if err != nil {
		return nil, err
	}
	if vs[0] == nil {
		return nil, ErrVersionUnknown
	}
	var out Version
	if err := json.Unmarshal(vs[0], &out); err != nil {
		return nil, fmt.Errorf("system: config version %d: %w", v, err)
	}
	return &out, nil
}

// List returns the versions kept, newest first.
func (h *History) List() ([]*Version, error) {
	members, err := h.kv.Members(historyIndex, kv.Range{Desc: true, Limit: HistoryKeep})
	if err != nil {
		return nil, err
	}
	out := make([]*Version, 0, len(members))
	for _, m := range members {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			continue
		}
		v, err := h.Get(n)
		if errors.Is(err, ErrVersionUnknown) {
			continue // trimmed since the index was read
		} else if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Append records v as version base+1 when the head is still base, and drops
// the version that falls out of the kept window. It reports false, writing
// nothing, when another change claimed base+1 first.
func (h *History) Append(base int64, v *Version) (bool, error) {
	v.Version = base + 1
	js, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	head := kv.CheckOp(historyHead, kv.Absent)
	if base > 0 {
		head = kv.CheckOp(historyHead, kv.Equal).WhenEqual([]byte(strconv.FormatInt(base, 10)))
	}
	ops := []kv.Op{head,
		kv.PutOp(historyHead, []byte(strconv.FormatInt(v.Version, 10)), 0),
		kv.PutOp(historyKey(v.Version), js, 0),
		kv.AddOp(historyIndex, historyMember(v.Version)),
	}
	if old := v.Version - HistoryKeep; old > 0 {
		ops = append(ops, kv.DeleteOp(historyKey(old)), kv.TrimOp(historyIndex, historyMember(old+1)))
	}
	return h.kv.Apply(ops...)
}

// Undo takes back version v, the head, when the change it recorded could
// not be applied after all. Versions that fell out of the window stay out.
func (h *History) Undo(v int64) error {
	head := kv.CheckOp(historyHead, kv.Equal).WhenEqual([]byte(strconv.FormatInt(v, 10)))
	prev := kv.PutOp(historyHead, []byte(strconv.FormatInt(v-1, 10)), 0)
	if v == 1 {
		prev = kv.DeleteOp(historyHead)
	}
	_, err := h.kv.Apply(head, prev, kv.DeleteOp(historyKey(v)), kv.RemoveOp(historyIndex, historyMember(v)))
	return err
}
