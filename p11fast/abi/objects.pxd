# objects: the object handle table — the one map from an object handle to its object: the C
# entry the nogil paths read (slot, class, key ID, key type, the NetHSM mechanisms) with a
# reference to the P11Object the cold path reads — and its index by identity (slot, class,
# key ID), so one object keeps one handle while the module is initialised; reading an
# application's template; the public key of an object for local work.
#
# Contract: every change takes g_abi.lock (never held across I/O or while waiting for the GIL)
# and keeps these invariants, which P11FAST_DEBUG builds check where each change touched them
# (objects_check): an entry in use has a non-zero handle naming its index and generation,
# holds a P11Object (or, bound by light mode's compiled search before Python ran, the
# recorded object it was found as: recorded) and is found by its identity; a free one holds nothing; a hash chain holds
# only entries in use of its bucket; the free list holds freed entries. A handle,
# once freed, stays invalid (the generation). object_copy is the nogil read (its copy's `obj`
# is not to be used); the others need the GIL.
# uses: state, errors, mechanisms

from cpython.ref cimport PyObject

from p11fast._decl.pkcs11 cimport CK_ATTRIBUTE_PTR, CK_OBJECT_HANDLE, CK_ULONG

cdef bint objects_alloc() noexcept nogil
cdef void objects_reset() noexcept nogil
cdef bint object_copy(CK_OBJECT_HANDLE h, object_t *out) noexcept nogil
# The handle of obj (a P11Object) in the slot: its identity's, else a new one.
cdef CK_OBJECT_HANDLE object_bind(int slot_index, obj) except 0
cdef void entry_fill(object_t *entry, int slot_index, obj) except *
cdef list objects_recorded()
cdef void objects_forget_recorded() noexcept nogil
# The same for a filled entry (holding obj or recorded), nogil; 0 when the table is full.
cdef CK_OBJECT_HANDLE entry_bind(object_t *entry, PyObject **old) noexcept nogil
# The P11Object of h in the slot (-1: any), or None.
cdef object object_of(CK_OBJECT_HANDLE h, int slot_index)
cdef object visible_object(int slot_index, CK_OBJECT_HANDLE hObject)
cdef bint user_may_see(int slot_index, obj) except -1
cdef void objects_forget(int slot_index, str key_id, tuple classes) except *
cdef void objects_rename(int slot_index, str old_id, str new_id, tuple classes) except *
# C_Finalize (with the GIL): every entry freed, its P11Object released.
cdef void objects_clear() noexcept
# A forked child: every entry dropped, no reference released (the interpreter may not be
# consistent yet).
cdef void objects_drop() noexcept nogil
cdef list read_template(CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
cdef void *public_key(CK_OBJECT_HANDLE h) noexcept with gil
