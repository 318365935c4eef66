package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/droverd/drover/cmd/drover/shebang"
)

// jitPrograms are interpreters and runtimes that compile to machine code
// at run time, which needs memory both writable and executable: under
// MemoryDenyWriteExecute=yes they die or lose their JIT. The value says
// what happens, for the unit's comment.
var jitPrograms = map[string]string{
	"node":     "V8 dies with SIGTRAP under it",
	"nodejs":   "V8 dies with SIGTRAP under it",
	"deno":     "V8 dies with SIGTRAP under it",
	"bun":      "JavaScriptCore's JIT cannot allocate code",
	"java":     "the JVM cannot allocate its code cache",
	"dotnet":   "the CLR's JIT cannot allocate code",
	"mono":     "Mono's JIT cannot allocate code",
	"luajit":   "LuaJIT's compiler cannot allocate code",
	"pypy":     "PyPy's JIT cannot allocate code",
	"julia":    "Julia compiles every function and cannot start",
	"erl":      "the BEAM JIT (OTP 24+) cannot start",
	"beam.smp": "the BEAM JIT (OTP 24+) cannot start",
	"elixir":   "the BEAM JIT (OTP 24+) cannot start",
	"php":      "PCRE's JIT, on by default, fails and warns on every regular expression",
	"php-fpm":  "PCRE's JIT, on by default, fails and warns on every regular expression",
	"wasmtime": "it compiles WebAssembly to machine code",
	"wasmer":   "it compiles WebAssembly to machine code",
}

// program is what drover init knows of a command from its name.
type program struct {
	name string // the JIT program's name, "" when none was recognised
	why  string // what the JIT does under MemoryDenyWriteExecute=
	node bool   // Node.js: drover run --node applies
}

// inspectProgram recognises a JIT program by its base name without a
// version (node18, python3.11, luajit-2.1), also once symlinks are
// resolved (/usr/bin/nodejs, java through /etc/alternatives), and, for a
// script, by its shebang's interpreter (#!/usr/bin/env node).
func inspectProgram(path string) program {
	if p := byName(path); p.name != "" {
		return p
	}
	interp, err := shebang.Interpreter(path)
	if err != nil || interp == "" {
		return program{}
	}
	return byName(interp)
}

// byName looks a path and its symlink target up in jitPrograms.
func byName(path string) program {
	names := []string{path}
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		names = append(names, resolved)
	}
	for _, n := range names {
		base := strings.TrimRight(filepath.Base(n), "0123456789.-")
		if why, ok := jitPrograms[base]; ok {
			return program{name: base, why: why, node: base == "node" || base == "nodejs"}
		}
	}
	return program{}
}

// jitComment decides, from the command and --jit/--no-jit, whether the
// service leaves MemoryDenyWriteExecute= out; it returns the comment that
// says why in its place, "" to keep the setting.
func jitComment(p program, o *initOptions) (string, error) {
	switch {
	case o.jit && o.noJIT:
		return "", errors.New("--jit and --no-jit: choose one")
	case o.noJIT:
		return "", nil
	case p.name != "":
		return fmt.Sprintf("# No MemoryDenyWriteExecute=: %s's JIT needs writable and executable memory\n# (%s). --no-jit keeps it.", p.name, p.why), nil
	case o.jit:
		return "# No MemoryDenyWriteExecute=: the program has a JIT (drover init --jit), which\n# needs writable and executable memory.", nil
	}
	return "", nil
}
