package main

import (
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Annotations on a command that change how normalizeArgs reads its
// arguments.
const (
	// annotationCommandAt: from the positional argument with this index
	// on, everything is a worker command and its arguments, flags or not,
	// even without "--": drover run node app.js --port 3 (index 0) and
	// drover init NAME /usr/bin/myapp -v (index 1) mean what they meant
	// when drover's flags had to come first.
	annotationCommandAt = "drover/command-at"
	// annotationNegativeArgs: -N is an argument, not a flag: drover scale
	// myapp -2.
	annotationNegativeArgs = "drover/negative-args"
)

var negativeNumberRE = regexp.MustCompile(`^-[0-9]+$`)

// normalizeArgs prepares a command line for cobra, which parses flags
// anywhere (drover status myapp --json) and nothing after "--". It
//   - rewrites single-dash long flags (-json, -control=PATH) to the
//     double-dash form, as Go's flag package took both and drover used it
//     before cobra; only names the command knows, so shorthand clusters
//     (-fn 10) stay what they are, and --n, --f (the old one-letter
//     names) become -n, -f;
//   - inserts "--" where a command's worker command starts
//     (annotationCommandAt), so its arguments are never read as drover's;
//   - moves negative numbers to after "--" for commands that take them
//     (annotationNegativeArgs), with the positional arguments after them
//     so their order is kept.
//
// Nothing after "--" is touched.
func normalizeArgs(root *cobra.Command, args []string) []string {
	out := make([]string, 0, len(args)+1)
	root.InitDefaultHelpFlag()
	i := 0
	for ; i < len(args) && isFlagArg(args[i]); i++ {
		// The root's flags (--help, --version) take no value.
		out = append(out, longDashes(root.Flags(), args[i]))
	}
	if i == len(args) {
		return out
	}
	sub := subcommand(root, args[i])
	if sub == nil {
		return append(out, args[i:]...)
	}
	out = append(out, args[i])
	i++
	sub.InitDefaultHelpFlag()
	fs := sub.Flags()
	commandAt := -1
	switch sub.Annotations[annotationCommandAt] {
	case "0":
		commandAt = 0
	case "1":
		commandAt = 1
	}
	negative := sub.Annotations[annotationNegativeArgs] != ""
	var moved []string // positional arguments to put after "--"
	positional := 0
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if moved != nil {
				out = append(out, "--")
				out = append(out, moved...)
				return append(out, args[i+1:]...)
			}
			return append(out, args[i:]...)
		case negative && negativeNumberRE.MatchString(a), moved != nil && !isFlagArg(a):
			moved = append(moved, a)
		case !isFlagArg(a):
			if positional == commandAt {
				out = append(out, "--")
				return append(out, args[i:]...)
			}
			positional++
			out = append(out, a)
		default:
			a = longDashes(fs, a)
			out = append(out, a)
			if takesNextArg(fs, a) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	if moved != nil {
		out = append(out, "--")
		out = append(out, moved...)
	}
	return out
}

// isFlagArg is pflag's test: "-" alone is an argument.
func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// subcommand finds root's command called name (or an alias of it).
func subcommand(root *cobra.Command, name string) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// longDashes gives a flag argument the dashes pflag wants.
func longDashes(fs *pflag.FlagSet, a string) string {
	if strings.HasPrefix(a, "--") {
		name, _, _ := strings.Cut(a[2:], "=")
		if len(name) == 1 && fs.Lookup(name) == nil && fs.ShorthandLookup(name) != nil {
			return a[1:] // --n 10: the flag package's -n
		}
		return a
	}
	name, _, _ := strings.Cut(a[1:], "=")
	if len(name) > 1 && fs.Lookup(name) != nil {
		return "-" + a
	}
	return a
}

// takesNextArg says whether pflag reads the argument after a (a flag
// argument, already through longDashes) as a's value.
func takesNextArg(fs *pflag.FlagSet, a string) bool {
	if strings.HasPrefix(a, "--") {
		name, _, hasValue := strings.Cut(a[2:], "=")
		f := fs.Lookup(name)
		return !hasValue && f != nil && f.NoOptDefVal == ""
	}
	// A cluster of shorthands (-fn 10): the first one that takes a value
	// takes the rest of the cluster, or the next argument.
	for j := 1; j < len(a); j++ {
		f := fs.ShorthandLookup(a[j : j+1])
		if f == nil {
			return false // pflag rejects it
		}
		if f.NoOptDefVal == "" {
			return j == len(a)-1
		}
	}
	return false
}
