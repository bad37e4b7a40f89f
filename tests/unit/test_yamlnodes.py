"""p11fast._yamlnodes composes the same nodes as PyYAML's CSafeLoader (tags, values, lines)."""

import pytest
import yaml

from p11fast.config import MAX_NESTING

_yamlnodes = pytest.importorskip("p11fast._yamlnodes")

# Plain scalars around every boundary of PyYAML's implicit resolvers.
SCALARS = """
~ null Null NULL nULL '' yes Yes YES yEs no No NO true True TRUE tRUE false off Off OFF on ON y n
0 00 07 08 0o7 0b 0b101 0b102 -0b1 +0x1F 0x 0xg 0x_a 1_000 -12 +12 1_ _1 012_ 190:20:30 1:60 1:5
1:5:59 1:5:9 -1:20 1.0 1. .5 ._5 . -.5 +1.5e+10 1.5e10 1.5E-3 1e5 1.0e 1.0e+ 6.8523015e+5
685.230_15e+03 190:20:30.15 1:2.5 1:2:x .inf -.inf +.Inf .INF .iNf .nan .NaN -.nan .NAN
2001-12-14 2001-12-14t21:59:43.10-05:00 2001-12-14 21:59:43.10 -5 2001-12-15T02:59:43.1Z
2001-12-15 2:59:43.10 2002-12-14 2001-1-1 2001-1-1T1:00:00 2001-12-14T21:59:43+5
2001-12-14T21:59:43 +05:30 2001-12-14T21:59:43Z1 2001-12-14x 20011214 2001-12-14T21:59
<< <<< = == label 2024 12.5s 1.2.3 + -- +- 0x1F_ 1__0 éclair
""".split("\n")


def _plain(node):
    """(tag, value, line) all the way down; pairs of a mapping become tuples of those."""
    if node is None:
        return None
    value = node.value
    if isinstance(value, list):
        value = [
            (_plain(item[0]), _plain(item[1])) if isinstance(item, tuple) else _plain(item)
            for item in value
        ]
    return (node.tag, value, node.start_mark.line)


def _pyyaml(text):
    loader = yaml.CSafeLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _same(text):
    assert _plain(_yamlnodes.compose(text, MAX_NESTING)) == _plain(_pyyaml(text))


@pytest.mark.parametrize("scalar", [w for line in SCALARS for w in line.split(" ") if w])
def test_plain_scalars_resolve_as_pyyaml_does(scalar):
    _same(f"key: {scalar}\n".encode())
    _same(f"- {scalar}\n".encode())


def test_whole_scalars_with_spaces_and_quoted_and_tagged():
    _same(
        b"a: 2001-12-14 21:59:43.10 -5\nb: '1'\nc: \"true\"\nd: !!str 12\ne: !!int '12'\n"
        b"f: ! 12\ng: |\n  text\n  more\nh: >-\n  folded\n  line\ni:\nj: [1, x, {k: v}]\n"
        b"k: !custom val\n"
    )


def test_documents_collections_anchors_and_lines():
    _same(
        b"# comment\n---\nslots:\n  - label: a\n    instances: &inst\n      - url: https://h\n"
        b"        sha256_fingerprints: [AA, BB]\n  - label: b\n    instances: *inst\n"
        b"    retries: {count: 3, delay_seconds: 1}\n? complex key\n: value\n...\n"
    )
    _same(b"")
    _same(b"# only a comment\n")
    _same(b"--- 12\n")
    _same(b"\xef\xbb\xbfkey: value\n")  # BOM


@pytest.mark.parametrize(
    "text",
    [
        b"slots: [\n",
        b"a: 1\n---\nb: 2\n",
        b"a: *missing\n",
        b"a: &x 1\nb: &x 2\n",
        b"a: b: c\n",
        b"a:\n\t- b\n",
        b"key: 'unterminated\n",
        b"- a\nb: c\n",
    ],
)
def test_errors_name_the_same_line_and_problem(text):
    with pytest.raises(yaml.MarkedYAMLError) as ref:
        _pyyaml(text)
    mark = ref.value.problem_mark or ref.value.context_mark
    with pytest.raises(_yamlnodes.YamlError) as got:
        _yamlnodes.compose(text, MAX_NESTING)
    assert (got.value.line, got.value.problem) == (mark.line + 1, ref.value.problem)


def test_bytes_that_are_not_utf8_are_an_error():
    with pytest.raises(yaml.YAMLError):
        _pyyaml(b"a: \xff\xfe\n")
    with pytest.raises(_yamlnodes.YamlError):
        _yamlnodes.compose(b"a: \xff\xfe\n", MAX_NESTING)
