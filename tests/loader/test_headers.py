"""Our include/ headers against the PKCS #11 headers installed on the system.

Each reference header is compiled in a translation unit of its own (their macros and type names
clash with ours), emitting tables of constant values and struct layouts under the same names; a
third unit compares the tables. Every constant name that a reference header and ours both define
must have the same value, every struct both define must have the same size and member offsets,
and every standard constant a reference defines must exist in ours.

References: p11-kit's pkcs11.h (libp11-kit-dev; PKCS #11 2.40) and, where installed, NSS's
(libnss3-dev; PKCS #11 3.0, the only one here with CK_FUNCTION_LIST_3_0 and CK_INTERFACE).
"""

import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INCLUDE = os.path.join(REPO, "include")
P11KIT = "/usr/include/p11-kit-1/p11-kit/pkcs11.h"
NSS_DIR = "/usr/include/nss"

CONSTANT = re.compile(r"^\s*#\s*define\s+(CK[A-Z]?_[A-Za-z0-9_]+)[ \t]+\S", re.M)
STRUCT = re.compile(r"typedef struct (CK_\w+) \{(.*?)\} \1;", re.S)
MEMBER = re.compile(r"(\w+)(?:\[\d+\])?;")
FUNCTION = re.compile(r"^CK_PKCS11_FUNCTION_INFO\((C_\w+),", re.M)

# Macros of the same spelling that are not integer constants.
NOT_CONSTANTS = {"CK_PTR", "CK_DEFINE_FUNCTION", "CK_DECLARE_FUNCTION", "CK_CALLBACK_FUNCTION",
                 "CK_DECLARE_FUNCTION_POINTER", "CK_PKCS11_FUNCTION_INFO", "CK_NEED_ARG_LIST",
                 "CK_PKCS11_2_0_ONLY"}

# Names a reference defines that are not in PKCS #11 3.0 (vendor or header-private spellings).
NOT_STANDARD = {
    "p11-kit": {"CKC_OPENPGP"},  # a vendor-defined value p11-kit names
    "nss": {"CKK_INVALID_KEY_TYPE"},  # NSS's own, as its header says
}

# Structs a reference lays out differently from the standard on purpose: NSS puts its own
# LibraryParameters member before pReserved. Still checked against p11-kit.
STRUCT_ERRATA = {"p11-kit": set(), "nss": {"CK_C_INITIALIZE_ARGS"}}

# Values a reference gets wrong. p11-kit's header (0.24) numbers these 0x1c0...0x1c4; PKCS #11
# 2.40 and 3.0 (and NSS) number them 0x1b5...0x1b9. Still checked against NSS.
REFERENCE_ERRATA = {
    "p11-kit": {"CKR_EXCEEDED_MAX_ITERATIONS", "CKR_FIPS_SELF_TEST_FAILED",
                "CKR_LIBRARY_LOAD_FAILED", "CKR_PIN_TOO_WEAK", "CKR_PUBLIC_KEY_INVALID"},
    "nss": set(),
}


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def our_constants() -> set[str]:
    return set(CONSTANT.findall(read(os.path.join(INCLUDE, "pkcs11t.h")))) - NOT_CONSTANTS


def our_structs() -> dict[str, list[str]]:
    text = read(os.path.join(INCLUDE, "pkcs11t.h"))
    structs = {name: MEMBER.findall(body) for name, body in STRUCT.findall(text)}
    functions = FUNCTION.findall(read(os.path.join(INCLUDE, "pkcs11f.h")))
    structs["CK_FUNCTION_LIST_3_0"] = ["version", *functions]
    last_240 = functions.index("C_WaitForSlotEvent")
    structs["CK_FUNCTION_LIST"] = ["version", *functions[: last_240 + 1]]
    return structs


def reference_text(name: str) -> str:
    if name == "p11-kit":
        return read(P11KIT)
    return "".join(read(os.path.join(NSS_DIR, f)) for f in ("pkcs11.h", "pkcs11t.h", "pkcs11f.h"))


def reference_prologue(name: str) -> str:
    if name == "p11-kit":
        return f'#include "{P11KIT}"\n'
    return f'#include "{NSS_DIR}/pkcs11.h"\n'  # it defines the platform macros itself


def table_unit(prologue: str, prefix: str, constants: list[str],
               structs: dict[str, list[str]]) -> str:
    rows = [f'    {{"{c}", (unsigned long long)({c})}},' for c in constants]
    layout = []
    for struct, members in structs.items():
        layout.append(f'    {{"{struct}", "sizeof", sizeof({struct})}},')
        layout += [f'    {{"{struct}", "{m}", offsetof({struct}, {m})}},' for m in members]
    return f"""{prologue}
#include <stddef.h>
struct constant {{ const char *name; unsigned long long value; }};
struct layout {{ const char *type, *member; size_t value; }};
const struct constant {prefix}_constants[] = {{
{chr(10).join(rows)}
    {{0, 0}}
}};
const struct layout {prefix}_layout[] = {{
{chr(10).join(layout)}
    {{0, 0, 0}}
}};
"""


COMPARE = r"""
#include <stdio.h>
#include <stddef.h>
#include <string.h>
struct constant { const char *name; unsigned long long value; };
struct layout { const char *type, *member; size_t value; };
extern const struct constant ours_constants[], ref_constants[];
extern const struct layout ours_layout[], ref_layout[];
int main(void) {
    int bad = 0, n = 0;
    for (int i = 0; ours_constants[i].name; i++, n++)
        if (ours_constants[i].value != ref_constants[i].value) {
            printf("%s: ours 0x%llx, reference 0x%llx\n", ours_constants[i].name,
                   ours_constants[i].value, ref_constants[i].value);
            bad++;
        }
    for (int i = 0; ours_layout[i].type; i++, n++)
        if (ours_layout[i].value != ref_layout[i].value) {
            printf("%s.%s: ours %zu, reference %zu\n", ours_layout[i].type, ours_layout[i].member,
                   ours_layout[i].value, ref_layout[i].value);
            bad++;
        }
    printf("checked %d\n", n);
    return bad != 0;
}
"""


def references() -> list[str]:
    found = []
    if os.path.exists(P11KIT):
        found.append("p11-kit")
    if os.path.exists(os.path.join(NSS_DIR, "pkcs11t.h")):
        found.append("nss")
    return found


def shared_structs(reference: str, ref_text: str) -> dict[str, list[str]]:
    """Our structs that the reference also names (p11-kit spells 2.40 members the standard way)."""
    return {s: m for s, m in our_structs().items() if re.search(rf"\b{s}\b", ref_text)
            and s not in STRUCT_ERRATA[reference]
            and (s != "CK_FUNCTION_LIST_3_0" or "C_GetInterface" in ref_text)}


@pytest.mark.parametrize("reference", ["p11-kit", "nss"])
def test_constants_and_layouts_agree(reference, tmp_path):
    if reference not in references():
        package = "libp11-kit-dev" if reference == "p11-kit" else "libnss3-dev"
        pytest.fail(f"the {reference} PKCS#11 header is missing: install {package}")
    ref_text = reference_text(reference)
    ref_names = set(CONSTANT.findall(ref_text)) - NOT_CONSTANTS
    ours = our_constants()
    constants = sorted(ours & ref_names - REFERENCE_ERRATA[reference])
    structs = shared_structs(reference, ref_text)
    assert len(constants) > 300 and "CK_TOKEN_INFO" in structs and "CK_FUNCTION_LIST" in structs

    (tmp_path / "ours.c").write_text(
        table_unit('#include "pkcs11.h"\n', "ours", constants, structs))
    (tmp_path / "ref.c").write_text(
        table_unit(reference_prologue(reference), "ref", constants, structs))
    (tmp_path / "compare.c").write_text(COMPARE)
    exe = tmp_path / "compare"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", f"-I{INCLUDE}", "-I/usr/include/nspr",
                    "-o", str(exe),
                    str(tmp_path / "ours.c"), str(tmp_path / "ref.c"), str(tmp_path / "compare.c")],
                   check=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout

    standard = re.compile(r"^CK[ACDFGHKMNOPRSUZ]_")
    missing = sorted(n for n in ref_names - ours
                     if standard.match(n) and n not in NOT_STANDARD[reference]
                     and "_VENDOR_" not in n and "NSS" not in n and "NETSCAPE" not in n)
    assert not missing, f"defined by {reference} but not by include/pkcs11t.h: {missing}"


def test_function_lists_follow_the_standard():
    functions = FUNCTION.findall(read(os.path.join(INCLUDE, "pkcs11f.h")))
    assert len(functions) == 92 and len(set(functions)) == 92
    assert functions.index("C_WaitForSlotEvent") == 67  # CK_FUNCTION_LIST has 68 functions
    assert functions[68:70] == ["C_GetInterfaceList", "C_GetInterface"]
    assert functions[-1] == "C_MessageVerifyFinal"
