package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go-micro.dev/v4/config/source"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdKey is where the whole config lives in etcd, as one yaml document.
const EtcdKey = "/micro/config/portal"

// etcdTimeout bounds each read of the config from etcd.
const etcdTimeout = 3 * time.Second

// etcdSource is a go-micro config source on one etcd key holding a yaml
// document. go-micro's etcd source plugin maps keys under a prefix onto
// nested paths (so one document at one key lands under a path made of the
// key's segments), and its Load blocks forever while etcd is down.
type etcdSource struct {
	cli *clientv3.Client
	key string
}

func newEtcdSource(cfg clientv3.Config, key string) (*etcdSource, error) {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = etcdTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("config: etcd %v: %w", cfg.Endpoints, err)
	}
	return &etcdSource{cli: cli, key: key}, nil
}

func (s *etcdSource) changeSet(data []byte) *source.ChangeSet {
	cs := &source.ChangeSet{Timestamp: time.Now(), Source: s.String(), Format: "yaml", Data: data}
	cs.Checksum = cs.Sum()
	return cs
}

// Read returns the document, or an error when etcd does not answer in time.
// A missing key reads as an empty document: the built-in defaults.
func (s *etcdSource) Read() (*source.ChangeSet, error) {
	ctx, cancel := context.WithTimeout(context.Background(), etcdTimeout)
	defer cancel()
	rsp, err := s.cli.Get(ctx, s.key)
	if err != nil {
		return nil, fmt.Errorf("config: etcd get %s: %w", s.key, err)
	}
	if len(rsp.Kvs) == 0 {
		return s.changeSet([]byte("{}")), nil
	}
	return s.changeSet(rsp.Kvs[0].Value), nil
}

// Write replaces the document.
func (s *etcdSource) Write(cs *source.ChangeSet) error {
	ctx, cancel := context.WithTimeout(context.Background(), etcdTimeout)
	defer cancel()
	_, err := s.cli.Put(ctx, s.key, string(cs.Data))
	return err
}

// Watch follows the key. The watch ends (Next fails) when etcd's stream
// breaks; go-micro's loader then watches again.
func (s *etcdSource) Watch() (source.Watcher, error) {
	ctx, cancel := context.WithCancel(context.Background())
	// RequireLeader: a partitioned member closes the watch instead of
	// leaving it silent.
	ch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.key)
	return &etcdWatcher{src: s, ch: ch, cancel: cancel}, nil
}

// String names the source.
func (s *etcdSource) String() string { return "etcd" }

// Close releases the etcd client.
func (s *etcdSource) Close() error { return s.cli.Close() }

type etcdWatcher struct {
	src    *etcdSource
	ch     clientv3.WatchChan
	cancel context.CancelFunc
}

var errWatchClosed = errors.New("config: etcd watch closed")

func (w *etcdWatcher) Next() (*source.ChangeSet, error) {
	for rsp := range w.ch {
		if err := rsp.Err(); err != nil {
			return nil, err
		}
		if len(rsp.Events) == 0 {
			continue
		}
		ev := rsp.Events[len(rsp.Events)-1]
		if ev.Type == clientv3.EventTypeDelete {
			return w.src.changeSet([]byte("{}")), nil
		}
		return w.src.changeSet(ev.Kv.Value), nil
	}
	return nil, errWatchClosed
}

func (w *etcdWatcher) Stop() error {
	w.cancel()
	return nil
}

// OpenEtcd keeps the settings in step with the yaml document at key in the
// etcd cfg reaches (its endpoints, TLS, credentials). When etcd cannot be
// read at start it does not wait: it starts on the built-in defaults, logs
// why, and keeps trying in the background; the document applies as soon as
// it can be read.
func OpenEtcd(cfg clientv3.Config, key string, log *slog.Logger) (*Center, error) {
	src, err := newEtcdSource(cfg, key)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("etcd %v %s", cfg.Endpoints, key)
	c, err := openWith(src, name, log, true)
	if err != nil {
		src.Close()
		return nil, err
	}
	c.closers = append(c.closers, src.Close)
	c.kind = "etcd"
	c.write = func(doc []byte) error { return src.Write(src.changeSet(doc)) }
	return c, nil
}
