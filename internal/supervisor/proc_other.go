//go:build !unix

package supervisor

// killGroup and lockFile need Unix; so does go-micro's local runtime as the
// supervisor uses it (process groups).

func killGroup(int) error { return errNoProc }

func lockFile(string) (func(), error) { return nil, errNoProc }
