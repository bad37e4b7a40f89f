# The entry points and function table (generated: _entry_points.pxi) and the capsules the
# loader takes.

from posix import register_at_fork  # os re-exports it; os costs ~1 ms to import

from cpython.pycapsule cimport PyCapsule_New

from p11fast._decl.pkcs11 cimport *

include "../_entry_points.pxi"

cdef CK_FUNCTION_LIST_3_0 g_table

fill_table(&g_table)
function_table = PyCapsule_New(<void *>&g_table, b"p11fast._abi.function_table", NULL)
seed_presence = PyCapsule_New(<void *>seed_presence_from_light, b"p11fast._abi.seed_presence", NULL)
own_interpreter = PyCapsule_New(<void *>take_own_interpreter, b"p11fast._abi.own_interpreter", NULL)
# A forked child starts uninitialised in every host, Python or not: the loader registers
# reset_after_fork with pthread_atfork (not done here, under the GIL: see loader/fork.c), and
# os.fork's hook (the loader's own handler runs it too) drops the Python state as well.
after_fork_child = PyCapsule_New(<void *>reset_after_fork, b"p11fast._abi.after_fork_child", NULL)
register_at_fork(after_in_child=forget_state_after_fork)
