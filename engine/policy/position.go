package policy

import (
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
)

// positions finds where the fields of one YAML document are, so that an
// error points at its field rather than at the object. It reads the
// document with yaml/v3, whose nodes know their line and column (v2, which
// decodes the objects, does not).
type positions struct {
	root *yaml3.Node // the document's top mapping; nil if it does not parse
}

func newPositions(doc []byte) positions {
	var n yaml3.Node
	if err := yaml3.Unmarshal(doc, &n); err != nil || n.Kind != yaml3.DocumentNode || len(n.Content) == 0 {
		return positions{}
	}
	return positions{root: n.Content[0]}
}

// field returns the line and column (1-based, counted in the document) of a
// dotted field path such as spec.sources[1].query: of its key, or, for an
// element of a list, of the element. When the field is not written (a
// required field left out), it is the position of the nearest enclosing
// field that is; 0, 0 when not even the first part of the path is.
func (p positions) field(path string) (line, col int) {
	n := p.root
	if n == nil {
		return 0, 0
	}
	for _, part := range splitPath(path) {
		var at *yaml3.Node
		if part.key != "" {
			key, val := mappingEntry(n, part.key)
			if key == nil {
				return line, col
			}
			at, n = key, val
		} else {
			n = resolve(n)
			if n.Kind != yaml3.SequenceNode || part.index >= len(n.Content) {
				return line, col
			}
			n = n.Content[part.index]
			at = n
		}
		line, col = at.Line, at.Column
	}
	return line, col
}

// key returns the line, column and dotted path of the mapping key named
// name on the given line of the document (an unknown field, which the
// strict decoder reports by line and name); ok is false if there is none.
func (p positions) key(line int, name string) (col int, path string, ok bool) {
	var walk func(n *yaml3.Node, path string) bool
	walk = func(n *yaml3.Node, prefix string) bool {
		// Aliases are not followed: an unknown field is reported where it
		// is written, and a hostile document may nest them exponentially.
		switch n.Kind {
		case yaml3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if prefix != "" {
					p = prefix + "." + k.Value
				}
				if k.Line == line && k.Value == name {
					col, path = k.Column, p
					return true
				}
				if walk(v, p) {
					return true
				}
			}
		case yaml3.SequenceNode:
			for i, c := range n.Content {
				if walk(c, prefix+"["+strconv.Itoa(i)+"]") {
					return true
				}
			}
		}
		return false
	}
	if p.root == nil {
		return 0, "", false
	}
	ok = walk(p.root, "")
	return col, path, ok
}

// valueAt returns the dotted path and column of the deepest mapping key on
// the given line (where the decoder found a value of the wrong type).
func (p positions) valueAt(line int) (col int, path string, ok bool) {
	var walk func(n *yaml3.Node, prefix string)
	walk = func(n *yaml3.Node, prefix string) {
		switch n.Kind {
		case yaml3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if prefix != "" {
					p = prefix + "." + k.Value
				}
				if k.Line == line || v.Line == line && v.Kind == yaml3.ScalarNode {
					col, path, ok = k.Column, p, true
				}
				walk(v, p)
			}
		case yaml3.SequenceNode:
			for i, c := range n.Content {
				walk(c, prefix+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	if p.root != nil {
		walk(p.root, "")
	}
	return col, path, ok
}

// scalar returns the line, column and dotted path of the first mapping key
// whose value is the scalar v.
func (p positions) scalar(v string) (line, col int, path string, ok bool) {
	var walk func(n *yaml3.Node, prefix string) bool
	walk = func(n *yaml3.Node, prefix string) bool {
		switch n.Kind {
		case yaml3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, val := n.Content[i], n.Content[i+1]
				p := k.Value
				if prefix != "" {
					p = prefix + "." + k.Value
				}
				if val.Kind == yaml3.ScalarNode && val.Value == v {
					line, col, path = k.Line, k.Column, p
					return true
				}
				if walk(val, p) {
					return true
				}
			}
		case yaml3.SequenceNode:
			for i, c := range n.Content {
				if walk(c, prefix+"["+strconv.Itoa(i)+"]") {
					return true
				}
			}
		}
		return false
	}
	if p.root == nil {
		return 0, 0, "", false
	}
	ok = walk(p.root, "")
	return line, col, path, ok
}

// resolve follows an alias (a bounded number of times: a path has few parts).
func resolve(n *yaml3.Node) *yaml3.Node {
	for range 8 {
		if n.Kind != yaml3.AliasNode || n.Alias == nil {
			break
		}
		n = n.Alias
	}
	return n
}

func mappingEntry(n *yaml3.Node, name string) (key, val *yaml3.Node) {
	n = resolve(n)
	if n.Kind != yaml3.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

type pathPart struct {
	key   string // a mapping key, or "" for an index
	index int
}

// splitPath splits spec.sources[1].query into spec, sources, [1], query.
func splitPath(path string) []pathPart {
	var parts []pathPart
	for seg := range strings.SplitSeq(path, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		if name != "" {
			parts = append(parts, pathPart{key: name})
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil {
				break
			}
			parts = append(parts, pathPart{index: i})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return parts
}
