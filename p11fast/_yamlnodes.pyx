# cython: language_level=3
"""YAML nodes from libyaml's events, without importing PyYAML.

`compose(text, max_depth)` returns what PyYAML's `CSafeLoader(text).get_single_node()` returns, as far as
p11fast.config reads it: nodes with `tag` (resolved as PyYAML's SafeLoader resolves YAML 1.1
plain scalars), `value` (str; list of nodes; list of (key, value) node pairs) and
`start_mark.line`. Importing PyYAML costs ~27 ms at module start-up (it pulls in `re`,
`datetime`, `enum`), more than the whole rest of a one-shot `C_Sign`; walking libyaml's events
here costs ~0.1 ms. The implicit resolvers below are PyYAML's regular expressions
(yaml/resolver.py) written out as code; tests/unit/test_yamlnodes.py checks both agree.
"""

cdef extern from "yaml.h" nogil:
    ctypedef enum yaml_event_type_t:
        YAML_NO_EVENT
        YAML_STREAM_START_EVENT
        YAML_STREAM_END_EVENT
        YAML_DOCUMENT_START_EVENT
        YAML_DOCUMENT_END_EVENT
        YAML_ALIAS_EVENT
        YAML_SCALAR_EVENT
        YAML_SEQUENCE_START_EVENT
        YAML_SEQUENCE_END_EVENT
        YAML_MAPPING_START_EVENT
        YAML_MAPPING_END_EVENT
    ctypedef enum yaml_error_type_t:
        YAML_NO_ERROR
        YAML_MEMORY_ERROR
        YAML_READER_ERROR
    ctypedef struct yaml_mark_t:
        size_t index
        size_t line
        size_t column
    ctypedef struct yaml_alias_t:
        unsigned char *anchor
    ctypedef struct yaml_scalar_t:
        unsigned char *anchor
        unsigned char *tag
        unsigned char *value
        size_t length
        int plain_implicit
    ctypedef struct yaml_collection_t:
        unsigned char *anchor
        unsigned char *tag
    ctypedef union yaml_event_data_t:
        yaml_alias_t alias
        yaml_scalar_t scalar
        yaml_collection_t sequence_start
        yaml_collection_t mapping_start
    ctypedef struct yaml_event_t:
        yaml_event_type_t type
        yaml_event_data_t data
        yaml_mark_t start_mark
    ctypedef struct yaml_parser_t:
        yaml_error_type_t error
        const char *problem
        size_t problem_offset
        int problem_value
        yaml_mark_t problem_mark
        const char *context
        yaml_mark_t context_mark
    int yaml_parser_initialize(yaml_parser_t *parser)
    void yaml_parser_delete(yaml_parser_t *parser)
    void yaml_parser_set_input_string(yaml_parser_t *parser, const unsigned char *input, size_t size)
    int yaml_parser_parse(yaml_parser_t *parser, yaml_event_t *event)
    void yaml_event_delete(yaml_event_t *event)


NULL_TAG = "tag:yaml.org,2002:null"
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
STR_TAG = "tag:yaml.org,2002:str"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
VALUE_TAG = "tag:yaml.org,2002:value"


class YamlError(Exception):
    """Invalid YAML: `line` (1-based, 0 when unknown) and `problem` as PyYAML words them."""

    def __init__(self, line, problem):
        super().__init__(line, problem)
        self.line = line
        self.problem = problem


cdef class Mark:
    cdef readonly Py_ssize_t line  # 0-based, as PyYAML's Mark


cdef class Node:
    cdef readonly str tag
    cdef readonly object value
    cdef readonly Mark start_mark

    def __repr__(self):
        return f"Node({self.tag!r}, {self.value!r})"


cdef Node _node(str tag, object value, const yaml_mark_t *mark):
    cdef Node n = Node.__new__(Node)
    cdef Mark m = Mark.__new__(Mark)
    m.line = mark.line
    n.tag = tag
    n.value = value
    n.start_mark = m
    return n


# ---------------------------------------------------------------- PyYAML's implicit resolvers
# Each function matches one of yaml/resolver.py's regular expressions over the whole value.

cdef inline bint _digit(Py_UCS4 c):
    return u'0' <= c <= u'9'


cdef bint _is_bool(str v):
    return v in ("yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
                 "FALSE", "on", "On", "ON", "off", "Off", "OFF")


cdef bint _is_null(str v):
    return v in ("", "~", "null", "Null", "NULL")


cdef Py_ssize_t _run(str v, Py_ssize_t i, str chars):
    """Index after the run of `chars` starting at i."""
    cdef Py_ssize_t n = len(v)
    while i < n and v[i] in chars:
        i += 1
    return i


cdef Py_ssize_t _sexagesimal(str v, Py_ssize_t i):
    """(?::[0-5]?[0-9])+ from i: the index after it, or -1."""
    cdef Py_ssize_t n = len(v)
    cdef Py_ssize_t start = i
    while i < n and v[i] == u':':
        i += 1
        if i + 1 < n and u'0' <= v[i] <= u'5' and _digit(v[i + 1]):
            i += 2
        elif i < n and _digit(v[i]):
            i += 1
        else:
            return -1
    return i if i > start else -1


cdef bint _is_int(str v):
    # [-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(?:0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+
    # | [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
    cdef Py_ssize_t n = len(v)
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t j
    if i < n and v[i] in u"-+":
        i += 1
    if i >= n or not _digit(v[i]):
        return False
    if v[i] == u'0':
        if i + 1 == n:
            return True
        if v[i + 1] == u'b':
            return i + 2 < n and _run(v, i + 2, u"01_") == n
        if v[i + 1] == u'x':
            return i + 2 < n and _run(v, i + 2, u"0123456789abcdefABCDEF_") == n
        return _run(v, i + 1, u"01234567_") == n
    j = _run(v, i + 1, u"0123456789_")
    if j == n:
        return True
    return _sexagesimal(v, j) == n


cdef bint _exponent_end(str v, Py_ssize_t i):
    """(?:[eE][-+][0-9]+)? then the end."""
    cdef Py_ssize_t n = len(v)
    if i == n:
        return True
    if v[i] not in u"eE" or i + 2 >= n or v[i + 1] not in u"-+":
        return False
    return _run(v, i + 2, u"0123456789") == n and i + 2 < n


cdef bint _is_float(str v):
    # [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)? | \.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    # | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    cdef Py_ssize_t n = len(v)
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t j
    if v in (".nan", ".NaN", ".NAN"):
        return True
    if n and v[0] == u'.' and n > 1 and _digit(v[1]):
        return _exponent_end(v, _run(v, 2, u"0123456789_"))
    if i < n and v[i] in u"-+":
        i += 1
    if v[i:] in (".inf", ".Inf", ".INF"):
        return True
    if i >= n or not _digit(v[i]):
        return False
    j = _run(v, i + 1, u"0123456789_")
    if j < n and v[j] == u'.':
        return _exponent_end(v, _run(v, j + 1, u"0123456789_"))
    j = _sexagesimal(v, j)
    return j > 0 and j < n and v[j] == u'.' and _run(v, j + 1, u"0123456789_") == n


cdef bint _is_timestamp(str v):
    # [0-9]{4}-[0-9]{2}-[0-9]{2}
    # | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?
    #   (?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?
    cdef Py_ssize_t n = len(v)
    cdef Py_ssize_t i
    cdef Py_ssize_t j
    if n < 8 or not (_digit(v[0]) and _digit(v[1]) and _digit(v[2]) and _digit(v[3])) \
            or v[4] != u'-':
        return False
    if n == 10 and _digit(v[5]) and _digit(v[6]) and v[7] == u'-' and _digit(v[8]) \
            and _digit(v[9]):
        return True
    i = _digits(v, 5, 1, 2)
    if i < 0 or i >= n or v[i] != u'-':
        return False
    i = _digits(v, i + 1, 1, 2)
    if i < 0 or i >= n:
        return False
    if v[i] in u"Tt":
        i += 1
    else:
        j = _run(v, i, u" \t")
        if j == i:
            return False
        i = j
    i = _digits(v, i, 1, 2)
    if i < 0 or i >= n or v[i] != u':':
        return False
    i = _digits(v, i + 1, 2, 2)
    if i < 0 or i >= n or v[i] != u':':
        return False
    i = _digits(v, i + 1, 2, 2)
    if i < 0:
        return False
    if i < n and v[i] == u'.':
        i = _run(v, i + 1, u"0123456789")
    if i == n:
        return True
    i = _run(v, i, u" \t")
    if i < n and v[i] == u'Z':
        return i + 1 == n
    if i >= n or v[i] not in u"-+":
        return False
    i = _digits(v, i + 1, 1, 2)
    if i < 0:
        return False
    if i == n:
        return True
    return v[i] == u':' and _digits(v, i + 1, 2, 2) == n


cdef Py_ssize_t _digits(str v, Py_ssize_t i, int least, int most):
    """Index after `least` to `most` digits from i (greedy), or -1."""
    cdef Py_ssize_t n = len(v)
    cdef int k = 0
    while k < most and i + k < n and _digit(v[i + k]):
        k += 1
    return i + k if k >= least else -1


cdef str _resolve(str v):
    """SafeLoader's tag for a plain scalar: resolvers keyed by the first character, in the
    order PyYAML registers them (bool, float, int, merge, null, timestamp, value)."""
    cdef Py_UCS4 c
    if not v:
        return NULL_TAG
    c = v[0]
    if c in u"yYnNtTfFoO" and _is_bool(v):
        return BOOL_TAG
    if c in u"-+0123456789." and _is_float(v):
        return FLOAT_TAG
    if c in u"-+0123456789" and _is_int(v):
        return INT_TAG
    if v == "<<":
        return MERGE_TAG
    if c in u"~nN" and _is_null(v):
        return NULL_TAG
    if _digit(c) and _is_timestamp(v):
        return TIMESTAMP_TAG
    if v == "=":
        return VALUE_TAG
    return STR_TAG


# ---------------------------------------------------------------- composing

cdef str _text(const unsigned char *s, Py_ssize_t n):
    return s[:n].decode("utf-8")


cdef str _explicit_tag(const unsigned char *tag):
    """The node's own tag, or None when it has none or the non-specific '!'."""
    if tag == NULL or (tag[0] == b'!' and tag[1] == 0):
        return None
    return _text(tag, len(<const char *>tag))


cdef class _Composer:
    cdef yaml_parser_t parser
    cdef yaml_event_t event
    cdef bint have_event
    cdef dict anchors
    cdef Py_ssize_t depth       # collections open around the current event
    cdef Py_ssize_t max_depth

    def __cinit__(self):
        if not yaml_parser_initialize(&self.parser):
            raise MemoryError()
        self.anchors = {}

    def __dealloc__(self):
        if self.have_event:
            yaml_event_delete(&self.event)
        yaml_parser_delete(&self.parser)

    cdef void next(self) except *:
        if self.have_event:
            yaml_event_delete(&self.event)
            self.have_event = False
        if not yaml_parser_parse(&self.parser, &self.event):
            self.fail()
        self.have_event = True

    cdef void fail(self) except *:
        cdef yaml_parser_t *p = &self.parser
        if p.error == YAML_MEMORY_ERROR:
            raise MemoryError()
        problem = p.problem.decode("utf-8", "replace") if p.problem != NULL else "?"
        if p.error == YAML_READER_ERROR:
            # PyYAML's ReaderError carries no line: the byte offset is what it reports.
            raise YamlError(0, f"{problem}: #x{p.problem_value:02x} at position {p.problem_offset}")
        mark = p.problem_mark if p.problem != NULL else p.context_mark
        raise YamlError(mark.line + 1, problem)

    cdef Node compose_node(self):
        cdef Node node
        if self.event.type == YAML_SEQUENCE_START_EVENT \
                or self.event.type == YAML_MAPPING_START_EVENT:
            # Composing recurses once per level; libyaml (before 0.2.6) has no nesting limit of
            # its own and spends time quadratic in the depth: stop at the first level too many.
            if self.depth == self.max_depth:
                raise YamlError(self.event.start_mark.line + 1,
                                f"nested deeper than {self.max_depth} levels")
            self.depth += 1
            node = self.compose_one()
            self.depth -= 1
            return node
        return self.compose_one()

    cdef Node compose_one(self):
        cdef yaml_event_t *e = &self.event
        cdef Node node
        cdef str tag
        cdef list items
        cdef Node key
        anchor = None
        if e.type == YAML_ALIAS_EVENT:
            name = _text(e.data.alias.anchor, len(<const char *>e.data.alias.anchor))
            if name not in self.anchors:
                raise YamlError(e.start_mark.line + 1, "found undefined alias")
            node = self.anchors[name]
            self.next()
            return node
        if e.type == YAML_SCALAR_EVENT:
            if e.data.scalar.anchor != NULL:
                anchor = _text(e.data.scalar.anchor, len(<const char *>e.data.scalar.anchor))
            value = _text(e.data.scalar.value, e.data.scalar.length)
            tag = _explicit_tag(e.data.scalar.tag)
            if tag is None:
                tag = _resolve(value) if e.data.scalar.plain_implicit == 1 else STR_TAG
            node = _node(tag, value, &e.start_mark)
            self.remember(anchor, node)
            self.next()
            return node
        if e.type == YAML_SEQUENCE_START_EVENT:
            if e.data.sequence_start.anchor != NULL:
                anchor = _text(e.data.sequence_start.anchor,
                               len(<const char *>e.data.sequence_start.anchor))
            tag = _explicit_tag(e.data.sequence_start.tag)
            items = []
            node = _node(tag if tag is not None else SEQ_TAG, items, &e.start_mark)
            self.remember(anchor, node)
            self.next()
            while self.event.type != YAML_SEQUENCE_END_EVENT:
                items.append(self.compose_node())
            self.next()
            return node
        # YAML_MAPPING_START_EVENT: libyaml sends nothing else here
        if e.data.mapping_start.anchor != NULL:
            anchor = _text(e.data.mapping_start.anchor,
                           len(<const char *>e.data.mapping_start.anchor))
        tag = _explicit_tag(e.data.mapping_start.tag)
        items = []
        node = _node(tag if tag is not None else MAP_TAG, items, &e.start_mark)
        self.remember(anchor, node)
        self.next()
        while self.event.type != YAML_MAPPING_END_EVENT:
            key = self.compose_node()
            items.append((key, self.compose_node()))
        self.next()
        return node

    cdef void remember(self, anchor, Node node) except *:
        if anchor is None:
            return
        if anchor in self.anchors:
            raise YamlError(node.start_mark.line + 1, "second occurrence")
        self.anchors[anchor] = node


def compose(bytes text, Py_ssize_t max_depth):
    """The single document in `text` as nodes, or None for an empty stream; YamlError if the
    text is not YAML, holds more than one document (as PyYAML's get_single_node), or nests
    sequences and mappings more than `max_depth` deep."""
    cdef _Composer c = _Composer()
    cdef Node document = None
    c.max_depth = max_depth
    yaml_parser_set_input_string(&c.parser, <const unsigned char *>text, len(text))
    c.next()  # stream start
    c.next()
    if c.event.type != YAML_STREAM_END_EVENT:
        c.next()  # document start
        document = c.compose_node()
        c.next()  # document end (the end event is current now)
        c.anchors = {}
    if c.event.type != YAML_STREAM_END_EVENT:
        raise YamlError(c.event.start_mark.line + 1, "but found another document")
    return document
