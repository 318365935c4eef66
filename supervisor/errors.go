package supervisor

import "errors"

// Sentinels callers may test with errors.Is.
var (
	// ErrUsage marks errors in what the user asked for (flags, addresses,
	// environment), as opposed to failures while running.
	ErrUsage = errors.New("usage")
	// ErrStartFailed: a worker failed before drover ever became ready.
	ErrStartFailed = errors.New("start failed")
	// ErrCrashLoop: a worker slot kept failing after drover was ready.
	ErrCrashLoop = errors.New("crash loop")
)

// usageError wraps err so that errors.Is(err, ErrUsage) holds while the
// message stays the one written for the user.
type usageError struct{ err error }

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{e.err, ErrUsage} }
func usage(err error) error          { return usageError{err} }
