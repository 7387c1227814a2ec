package deploytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// dockerInstruction is one instruction of a Dockerfile, its continuation
// lines joined.
type dockerInstruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// dockerStage is a FROM and the instructions after it.
type dockerStage struct {
	image, name string
	instrs      []dockerInstruction
}

// parseDockerfile splits a Dockerfile into stages. It knows the syntax this
// repository uses: comments, continuation lines, FROM image [AS name].
func parseDockerfile(data []byte) ([]dockerStage, error) {
	var stages []dockerStage
	sc := bufio.NewScanner(bytes.NewReader(data))
	var cur strings.Builder
	start, n := 0, 0
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := dockerStage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				return fmt.Errorf("line %d: FROM %s: want FROM image [AS name]", in.line, in.args)
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				return fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			return nil
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") || (t == "" && cur.Len() > 0) {
			continue // a comment (inside a continuation too), or a blank line in one
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return stages, sc.Err()
}

// all returns the stage's instructions of kind cmd.
func (s dockerStage) all(cmd string) []dockerInstruction {
	var out []dockerInstruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// dockerCopy is a COPY instruction's flags, sources and destination.
type dockerCopy struct {
	from, chown, chmod string
	srcs               []string
	dest               string
}

func parseCopy(in dockerInstruction) (dockerCopy, error) {
	var c dockerCopy
	if strings.HasPrefix(in.args, "[") {
		return c, fmt.Errorf("line %d: COPY in JSON form is not read by this test", in.line)
	}
	f := strings.Fields(in.args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		switch k {
		case "from":
			c.from = v
		case "chown":
			c.chown = v
		case "chmod":
			c.chmod = v
		default:
			return c, fmt.Errorf("line %d: COPY --%s is not read by this test", in.line, k)
		}
		f = f[1:]
	}
	if len(f) < 2 {
		return c, fmt.Errorf("line %d: COPY %s: want sources and a destination", in.line, in.args)
	}
	c.srcs, c.dest = f[:len(f)-1], f[len(f)-1]
	return c, nil
}

// execForm decodes an instruction in JSON (exec) form, the only form that
// works without a shell, and scratch has none.
func execForm(in dockerInstruction) ([]string, error) {
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		return nil, fmt.Errorf("line %d: %s %s: want the exec form [\"...\"] (scratch has no shell)", in.line, in.cmd, in.args)
	}
	return argv, nil
}

// dockerignore is a parsed .dockerignore: Docker's rules (the
// moby/patternmatcher ones): patterns are relative to the context root, *
// and ? stay within a path element, ** spans any number of them, a pattern
// that matches a directory excludes what is inside it, ! re-includes, and
// the last matching pattern wins.
type dockerignore []ignorePattern

type ignorePattern struct {
	raw       string
	re        *regexp.Regexp
	exclusion bool
}

func parseDockerignore(data []byte) (dockerignore, error) {
	var out dockerignore
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			p.exclusion, line = true, strings.TrimSpace(rest)
		}
		if strings.ContainsAny(line, "[]") {
			return nil, fmt.Errorf(".dockerignore: %q: character classes are not read by this test", line)
		}
		line = path.Clean(line)
		if len(line) > 1 {
			line = strings.TrimPrefix(line, "/")
		}
		p.raw = line
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case c == '*' && i+1 < len(line) && line[i+1] == '*':
				i++
				if i+1 < len(line) && line[i+1] == '/' {
					i++
				}
				if i+1 == len(line) {
					re.WriteString(".*")
				} else {
					re.WriteString("(.*/)?")
				}
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			case c == '\\' && i+1 < len(line):
				i++
				re.WriteString(regexp.QuoteMeta(line[i : i+1]))
			default:
				re.WriteString(regexp.QuoteMeta(line[i : i+1]))
			}
		}
		re.WriteString("$")
		var err error
		if p.re, err = regexp.Compile(re.String()); err != nil {
			return nil, fmt.Errorf(".dockerignore: %q: %w", line, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// excluded tells whether rel (slash-separated, from the context root) is
// left out of the build context.
func (d dockerignore) excluded(rel string) bool {
	var parents []string
	if dir := path.Dir(rel); dir != "." {
		parents = strings.Split(dir, "/")
	}
	matched := false
	for _, p := range d {
		if p.exclusion != matched {
			continue // cannot change the outcome
		}
		m := p.re.MatchString(rel)
		for i := 0; !m && i < len(parents); i++ {
			m = p.re.MatchString(strings.Join(parents[:i+1], "/"))
		}
		if m {
			matched = !p.exclusion
		}
	}
	return matched
}

// hasExclusions tells whether a pattern re-includes something, so that an
// excluded directory must still be walked.
func (d dockerignore) hasExclusions() bool {
	for _, p := range d {
		if p.exclusion {
			return true
		}
	}
	return false
}
