// Package shebang reads the interpreter a script names on its #! line,
// for drover init's guesses (which programs have a JIT, which scripts PM2
// would run with node).
//
// Spec: execve(2), "Interpreter scripts"; env(1) for -S.
package shebang
