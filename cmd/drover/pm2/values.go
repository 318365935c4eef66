package pm2

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The ecosystem file's values come as JSON or YAML decoded them: numbers
// are float64 (JSON) or int (YAML), and PM2 takes many options as either
// a number or a string ("4", "300M", "1m"). These helpers read one
// option, with the option's name in every error.

// stringValue reads a string option; numbers and bools are written as
// PM2 writes them into the environment (3000, true).
func stringValue(key string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%s: want a string, got %s", key, describe(v))
}

// intValue reads a whole number given as a number or a string of digits.
func intValue(key string, v any) (int64, error) {
	s, err := stringValue(key, v)
	if _, ok := v.(bool); ok || err != nil {
		return 0, fmt.Errorf("%s: want a number, got %s", key, describe(v))
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s: want a whole number, got %s", key, describe(v))
	}
	return int64(f), nil
}

// boolValue reads a bool; PM2's command line also writes "true".
func boolValue(key string, v any) (bool, error) {
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("%s: want true or false, got %s", key, describe(v))
}

// durationValue reads a time PM2 takes in milliseconds (1600) or, for
// some options, with a unit ("10s", "1m", "1h").
func durationValue(key string, v any) (time.Duration, error) {
	if ms, err := intValue(key, v); err == nil {
		if ms <= 0 || ms > int64(24*time.Hour/time.Millisecond) {
			return 0, fmt.Errorf("%s %d: want between 1 and 86400000 milliseconds", key, ms)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%s: want milliseconds, got %s", key, describe(v))
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, fmt.Errorf("%s %q: want milliseconds or a duration such as 10s, up to 24h", key, s)
	}
	return d, nil
}

// wordsValue reads args, node_args and the like: an array of strings, or
// one string split as a shell would split it.
func wordsValue(key string, v any) ([]string, error) {
	switch v := v.(type) {
	case []any:
		words := make([]string, len(v))
		for i, w := range v {
			s, err := stringValue(fmt.Sprintf("%s[%d]", key, i), w)
			if err != nil {
				return nil, err
			}
			words[i] = s
		}
		return words, nil
	case nil:
		return nil, nil
	}
	s, err := stringValue(key, v)
	if err != nil {
		return nil, err
	}
	words, err := splitWords(s)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", key, s, err)
	}
	return words, nil
}

// splitWords splits s on blanks, honouring single and double quotes and
// backslashes as sh does, so args: "--name 'a b'" is two words.
func splitWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			word.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("unterminated quote or backslash")
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
