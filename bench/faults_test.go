package main

import (
	"errors"
	"testing"
	"time"
)

// TestFaultStats: requests, failures, the slowest request and the recovery
// (from the fault's end to the last failure) are what was recorded.
func TestFaultStats(t *testing.T) {
	began := time.Unix(1000, 0)
	s := &faultStats{name: "etcd down", began: began}
	s.clear(began)
	if got := s.row(); got[1] != "0" || got[2] != "0" || got[4] != "-" || got[5] != "0" {
		t.Fatalf("empty row %v", got)
	}
	s.record(began.Add(time.Second), 20*time.Millisecond, nil)
	s.record(began.Add(2*time.Second), 300*time.Millisecond, errors.New("503"))
	s.clear(began.Add(3 * time.Second))
	s.record(began.Add(4*time.Second), 100*time.Millisecond, errors.New("503"))
	s.record(began.Add(5*time.Second), 10*time.Millisecond, nil)
	if got, want := s.recovery(), 1100*time.Millisecond; got != want {
		t.Fatalf("recovery %v, want %v", got, want)
	}
	s.lost = append(s.lost, "registration x")
	got := s.row()
	if got[1] != "4" || got[2] != "2" || got[3] != "300 ms" || got[4] != "1100 ms" || got[5] != "registration x" {
		t.Fatalf("row %v", got)
	}
	if s.errors["during the fault: 503"] != 1 || s.errors["after the fault: 503"] != 1 {
		t.Fatalf("errors %v", s.errors)
	}
}
