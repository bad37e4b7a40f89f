"""abi_build.py: the ABI's entry points and function table, written from include/pkcs11f.h."""

from pathlib import Path

import pytest

import abi_build

REPO = Path(__file__).resolve().parents[2]

SIGN = ("C_Sign", "CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData", "hSession, pData")


def test_the_pxi_is_written_only_when_its_text_changes(tmp_path):
    target = tmp_path / "_entry_points.pxi"
    assert abi_build.write(str(target))
    assert not abi_build.write(str(target))
    target.write_text(target.read_text() + "# edited\n")
    assert abi_build.write(str(target))
    assert target.read_text() == abi_build.render()


def test_the_built_pxi_is_the_current_header_and_pieces():
    assert (REPO / "p11fast" / "_entry_points.pxi").read_text() == abi_build.render()


def test_every_function_of_the_header_is_defined_and_in_the_table_in_its_order():
    names = [name for name, _, _ in abi_build.functions()]
    text = abi_build.render()
    assert len(names) == len(set(names)) and {"C_Initialize", "C_MessageVerifyFinal"} <= set(names)
    assert [line.split()[2].split("(")[0] for line in text.splitlines()
            if line.startswith("cdef CK_RV C_")] == names  # fmt: skip
    assert [line.split()[0][len("t."):] for line in text.splitlines()
            if line.startswith("    t.C_")] == names  # fmt: skip
    assert "void *" not in text


def test_a_nogil_implementation_is_called_after_the_initialisation_check():
    text = abi_build.wrapper(*SIGN, {"c_sign": False})
    assert text.splitlines()[1:] == [
        "    if not p11f_is_initialized():",
        "        return CKR_CRYPTOKI_NOT_INITIALIZED",
        "    return c_sign(hSession, pData)",
    ]


def test_a_cold_path_implementation_gets_its_check_the_gil_the_error_template_and_finish():
    declared = {"c_sign": True, "c_sign_check": False, "c_sign_finish": False}
    body = abi_build.wrapper(*SIGN, declared).splitlines()
    check = body.index("    rv = c_sign_check(&call, hSession, pData)")
    gil = body.index("    with gil:")
    assert body.index("    if not p11f_is_initialized():") < check < gil
    assert body[gil + 1 :] == [
        "        try:",
        "            rv = c_sign(&call, hSession, pData)",
        "        except BaseException as exc:",
        '            rv = rv_for(exc, b"C_Sign")',
        "    return c_sign_finish(&call, rv, hSession, pData)",
    ]


def test_the_functions_the_loader_answers_have_no_initialisation_check():
    text = abi_build.wrapper(
        "C_GetInterface", "CK_FLAGS flags", "flags", {"c_get_interface": False}
    )
    assert "p11f_is_initialized" not in text


def test_a_function_no_piece_implements_stops_the_build(tmp_path):
    (tmp_path / "sign.pxd").write_text(
        "cdef CK_RV c_sign_init(CK_SESSION_HANDLE h) noexcept nogil\n"
    )
    declared = abi_build.declarations(str(tmp_path))
    assert declared == {"c_sign_init": False}
    with pytest.raises(SystemExit, match="declares c_sign"):
        abi_build.wrapper(*SIGN, declared)
