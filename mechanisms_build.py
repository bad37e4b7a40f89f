"""The ABI's mechanism tables, written from p11fast/mechanisms.py into p11fast/_mechanisms.pxi.

setup.py calls `write()` before cythonize; `python mechanisms_build.py` does the same by hand.
The file is written only when its text changes, so an unchanged table rebuilds nothing.

What the ABI gets (every name below is used by its .pxi files):
- NETHSM_MECHANISMS and NM_<NAME>: the NetHSM key mechanisms and their bits in
  object_t.nethsm_mechs;
- p11f_{sign,decrypt,encrypt}_modes[], MODE_*/DMODE_*/EMODE_* indexes into them and
  p11f_*_mode_mechanisms[]: each request mode and the NetHSM mechanism a key needs for it;
  sign_mode_for_hash, decrypt_mode_for_hash, decrypt_mode_hash: PSS and OAEP modes by hash;
- nethsm_mechanisms_offering(t): the NetHSM mechanisms that give a key PKCS#11 mechanism t;
- p11f_mechanism_types[], p11f_mechanism_infos[], MECHANISM_COUNT: C_GetMechanismList/Info;
- mechanism_tables(): the above as Python values, for the test that they match the table.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "p11fast", "_mechanisms.pxi")
# The names the C side gives each operation's modes.
MODE_PREFIX = {"sign": "MODE_", "decrypt": "DMODE_", "encrypt": "EMODE_"}


def _table():
    sys.path.insert(0, HERE)
    try:
        from p11fast import attrs, mechanisms
    finally:
        sys.path.remove(HERE)
    return attrs, mechanisms


def _bit(name: str) -> str:
    return "NM_" + name.upper()


def _mode(operation: str, mode: str) -> str:
    return MODE_PREFIX[operation] + mode.upper()


def _nethsm(mechanisms) -> str:
    names = "".join(f'    "{m.name}",\n' for m in mechanisms.NETHSM)
    bits = "".join(f"    {_bit(m.name)} = 1 << {i}\n" for i, m in enumerate(mechanisms.NETHSM))
    return (
        "# NetHSM key mechanisms in the API's order: bit i of object_t.nethsm_mechs is entry i.\n"
        f"NETHSM_MECHANISMS = (\n{names})\n"
        f"cdef enum:\n{bits}"
    )


def _modes(mechanisms) -> str:
    c_arrays, declarations, enums = [], [], []
    for operation in MODE_PREFIX:
        rows = mechanisms.modes(operation)
        strings = ", ".join(f'"{m.mode}"' for m in rows)
        needs = ", ".join(f"1u << {mechanisms.NETHSM.index(m)}" for m in rows)
        c_arrays += [
            f"    static const char *const p11f_{operation}_modes[] = {{{strings}}};",
            f"    static const unsigned int p11f_{operation}_mode_mechanisms[] = {{{needs}}};",
        ]
        declarations += [f"    const char *const *p11f_{operation}_modes",
                         f"    const unsigned int *p11f_{operation}_mode_mechanisms"]
        enums += [f"    {_mode(operation, m.mode)} = {i}" for i, m in enumerate(rows)]
        enums.append(f"    {operation.upper()}_MODES = {len(rows)}")
    return (
        "# The `mode` of each operation's request (the API's SignMode, DecryptMode, EncryptMode)\n"
        "# and the NetHSM mechanism a key needs for it.\n"
        'cdef extern from *:\n    """\n' + "\n".join(c_arrays) + '\n    """\n'
        + "\n".join(declarations) + "\n\n"
        "cdef enum:\n" + "\n".join(enums) + "\n"
    )


def _by_hash(mechanisms, operation: str) -> str:
    """The mode of `operation` over hash h, and the hash of a mode (PSS, OAEP)."""
    rows = [m for m in mechanisms.modes(operation) if m.hash]
    to_mode = "".join(f"    if h == H_{m.hash}:\n        return {_mode(operation, m.mode)}\n"
                      for m in rows)
    to_hash = "".join(f"    if mode == {_mode(operation, m.mode)}:\n        return H_{m.hash}\n"
                      for m in rows)
    return (
        f"cdef int {operation}_mode_for_hash(int h) noexcept nogil:\n"
        f'    """The {operation} mode over hash h (an H_* of codec/hash); -1 for none."""\n'
        f"{to_mode}    return -1\n\n\n"
        f"cdef int {operation}_mode_hash(int mode) noexcept nogil:\n"
        f'    """The hash a {operation} mode names; H_NONE for none."""\n'
        f"{to_hash}    return H_NONE\n"
    )


def _offering(mechanisms) -> str:
    lines = []
    for m in mechanisms.PKCS11:
        holders = [n for n in mechanisms.NETHSM if m.type in n.pkcs11]
        if holders:
            bits = " | ".join(_bit(n.name) for n in holders)
            lines.append(f"    if t == {m.name}:\n        return {bits}\n")
    return (
        "cdef unsigned int nethsm_mechanisms_offering(CK_MECHANISM_TYPE t) noexcept nogil:\n"
        '    """The NetHSM mechanisms that give a key PKCS#11 mechanism t (its\n'
        '    CKA_ALLOWED_MECHANISMS lists t when it holds one of them)."""\n'
        + "".join(lines) + "    return 0\n"
    )


def _flag_names(attrs, flags: int) -> str:
    names = [name for name, value in vars(attrs).items()
             if name.startswith("CKF_") and name != "CKF_ARRAY_ATTRIBUTE" and flags & value]
    covered = 0
    for name in names:
        covered |= getattr(attrs, name)
    if covered != flags:
        raise ValueError(f"flags 0x{flags:x} have bits attrs.py does not name")
    return " | ".join(names) or "0"


def _mechanism_info(attrs, mechanisms) -> str:
    types = "".join(f"        {m.name},\n" for m in mechanisms.PKCS11)
    infos = "".join(
        f"        {{{m.min_key}UL, {m.max_key}UL, {_flag_names(attrs, m.flags)}}},"
        f"  /* {m.name} */\n"
        for m in mechanisms.PKCS11
    )
    return (
        "# C_GetMechanismList and C_GetMechanismInfo: what the module offers, in this order.\n"
        'cdef extern from *:\n    """\n    #include "pkcs11.h"\n'
        f"    static const CK_MECHANISM_TYPE p11f_mechanism_types[] = {{\n{types}    }};\n"
        f"    static const CK_MECHANISM_INFO p11f_mechanism_infos[] = {{\n{infos}    }};\n"
        '    """\n'
        "    const CK_MECHANISM_TYPE *p11f_mechanism_types\n"
        "    const CK_MECHANISM_INFO *p11f_mechanism_infos\n\n"
        f"cdef enum:\n    MECHANISM_COUNT = {len(mechanisms.PKCS11)}\n"
    )


def _tables(mechanisms) -> str:
    hashes = sorted({m.hash for m in mechanisms.NETHSM if m.hash})
    by_name = ", ".join(f'"{h}": H_{h}' for h in hashes)
    return f'''cdef list _modes_of(const char *const *modes, const unsigned int *needs, int n):
    cdef int i
    out = []
    for i in range(n):
        out.append((modes[i].decode(), needs[i]))
    return out


def mechanism_tables():
    """The compiled tables as Python values, for the test that they match p11fast.mechanisms."""
    cdef int i
    offering = {{}}
    for i in range(MECHANISM_COUNT):
        offering[p11f_mechanism_types[i]] = nethsm_mechanisms_offering(p11f_mechanism_types[i])
    hashes = {{{by_name}}}
    return {{
        "nethsm": NETHSM_MECHANISMS,
        "sign": _modes_of(p11f_sign_modes, p11f_sign_mode_mechanisms, SIGN_MODES),
        "decrypt": _modes_of(p11f_decrypt_modes, p11f_decrypt_mode_mechanisms, DECRYPT_MODES),
        "encrypt": _modes_of(p11f_encrypt_modes, p11f_encrypt_mode_mechanisms, ENCRYPT_MODES),
        "sign_by_hash": {{name: (sign_mode_for_hash(h), sign_mode_hash(sign_mode_for_hash(h)))
                         for name, h in hashes.items()}},
        "decrypt_by_hash": {{name: (decrypt_mode_for_hash(h),
                                   decrypt_mode_hash(decrypt_mode_for_hash(h)))
                            for name, h in hashes.items()}},
        "hashes": hashes,
        "offering": offering,
    }}
'''


def render() -> str:
    attrs, mechanisms = _table()
    parts = [
        "# Generated by mechanisms_build.py from p11fast/mechanisms.py: "
        "change the table, not this.",
        _nethsm(mechanisms),
        _modes(mechanisms),
        _by_hash(mechanisms, "sign"),
        _by_hash(mechanisms, "decrypt"),
        _offering(mechanisms),
        _mechanism_info(attrs, mechanisms),
        _tables(mechanisms),
    ]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


def write(target: str = TARGET) -> bool:
    """Writes the .pxi if its text changed; True when it did."""
    return write_if_changed(target, render())


def write_if_changed(target: str, text: str) -> bool:
    """A generated file is rewritten only when its text changes: an unchanged one must not
    make setuptools recompile what includes it. True when it was written."""
    try:
        with open(target, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    return True


if __name__ == "__main__":
    print(f"{TARGET}: {'written' if write() else 'unchanged'}")
