package events

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Every text that can reach PostgreSQL from outside (a trigger's reason, a person's
// name, a result's words) is checked where it enters: PostgreSQL refuses a NUL in text
// and jsonb (SQLSTATE 22P05), so a NUL accepted here would become a row that can never
// be written, and a message retried forever. Over-long values are refused too, so
// that one message cannot fill a row or a dashboard.

// Limits on the words of a result, beside MaxReasonLen and MaxRequestedByLen.
const (
	MaxErrorMessageLen = 1000
	MaxErrorDetailsLen = 16000
	MaxErrorsListed    = 200
	MaxErrorLen        = 2000
	// MaxResultText bounds any string inside results (a rule's name, a reason).
	MaxResultText = 4000
)

// CheckText says what is wrong with a text field, or nil: not valid UTF-8, a NUL or
// another control character (a tab and a newline are fine), longer than max characters.
func CheckText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8 text", ErrInvalidPayload, field)
	}
	if i := strings.IndexFunc(s, badRune); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		what := fmt.Sprintf("the control character U+%04X", r)
		if r == 0 {
			what = "a NUL character (U+0000)"
		}
		return fmt.Errorf("%w: %s contains %s, which cannot be stored", ErrInvalidPayload, field, what)
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("%w: %s is longer than %d characters (%d)", ErrInvalidPayload, field, max, n)
	}
	return nil
}

func badRune(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t' && r != '\r') || r == 0x7f
}

// CleanText makes a text a service produced storable: NULs and other control
// characters become U+FFFD, invalid UTF-8 likewise, and it is cut to max characters.
// The job services use it on what they publish (a server's reply, an error text), so
// that their own results always pass CheckText.
func CleanText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexFunc(s, badRune) >= 0 {
		s = strings.Map(func(r rune) rune {
			if badRune(r) {
				return '\uFFFD'
			}
			return r
		}, s)
	}
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}

// checkValue walks a JSON value (results) and checks every string in it, keys too.
func checkValue(field string, v any, depth int) error {
	if depth > 8 {
		return fmt.Errorf("%w: %s is nested more than 8 levels deep", ErrInvalidPayload, field)
	}
	switch x := v.(type) {
	case string:
		return CheckText(field, x, MaxResultText)
	case []any:
		if len(x) > 10_000 {
			return fmt.Errorf("%w: %s lists more than 10,000 items", ErrInvalidPayload, field)
		}
		for i, e := range x {
			if err := checkValue(fmt.Sprintf("%s[%d]", field, i), e, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range x {
			if err := CheckText(field+" key", k, 200); err != nil {
				return err
			}
			if err := checkValue(field+"."+k, e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanValue is checkValue's repair for what services produce.
func cleanValue(v any, depth int) any {
	switch x := v.(type) {
	case string:
		return CleanText(x, MaxResultText)
	case []any:
		for i := range x {
			x[i] = cleanValue(x[i], depth+1)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = cleanValue(e, depth+1)
		}
	}
	return v
}
