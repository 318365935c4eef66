package shebang

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Interpreter returns the interpreter a script's #! line names: the
// program itself, or what env runs (#!/usr/bin/env -S node --flag); ""
// when the file has no #! line.
func Interpreter(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 256).ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) && len(line) == 0 {
		return "", err
	}
	rest, ok := strings.CutPrefix(string(line), "#!")
	if !ok {
		return "", nil
	}
	words := strings.Fields(rest)
	if len(words) > 0 && filepath.Base(words[0]) == "env" {
		words = words[1:]
		for len(words) > 0 && (strings.HasPrefix(words[0], "-") || strings.Contains(words[0], "=")) {
			words = words[1:] // env's own flags (-S) and assignments
		}
	}
	if len(words) == 0 {
		return "", nil
	}
	return words[0], nil
}
