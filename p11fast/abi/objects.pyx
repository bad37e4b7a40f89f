# The object handle table and what goes in and out of it.

from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF, PyObject
from libc.stdio cimport fprintf, stderr
from libc.stdlib cimport abort, calloc
from libc.string cimport memcpy, memset, strcmp, strlen

from p11fast._decl.openssl cimport ERR_clear_error, EVP_PKEY, d2i_PUBKEY
from p11fast._decl.pkcs11 cimport *
from p11fast._decl.posix cimport pthread_mutex_lock, pthread_mutex_unlock

cdef enum:
    OBJECT_BUCKETS = 1 << 16         # hash chains by identity (a power of two)
    MAX_ATTRIBUTE_LEN = 1 << 20      # bytes of one template value
    INDEX_MASK = (1 << HANDLE_INDEX_BITS) - 1


cdef bint objects_alloc() noexcept nogil:
    """The tables, at the first start (C_Initialize's or light mode's); False for no memory."""
    if g_abi.objects == NULL:
        g_abi.objects = <object_t *>calloc(MAX_OBJECTS, sizeof(object_t))
        g_abi.free_objects = <unsigned int *>calloc(MAX_OBJECTS, sizeof(unsigned int))
        g_abi.buckets = <unsigned int *>calloc(OBJECT_BUCKETS, sizeof(unsigned int))
    return g_abi.objects != NULL and g_abi.free_objects != NULL and g_abi.buckets != NULL


cdef void objects_reset() noexcept nogil:
    """Every start hands entries out from 1 again (what an earlier one bound is gone: its
    C_Finalize cleared the table, or a fork dropped it)."""
    forget_entries()
    g_abi.nobjects = 1


cdef unsigned int bucket_of(int slot, CK_ULONG cls, const char *key_id) noexcept nogil:
    """FNV-1a of the identity."""
    cdef unsigned int h = 2166136261u
    h = (h ^ <unsigned int>slot) * 16777619u
    h = (h ^ <unsigned int>cls) * 16777619u
    while key_id[0]:
        h = (h ^ <unsigned char>key_id[0]) * 16777619u
        key_id += 1
    return h & (OBJECT_BUCKETS - 1)


cdef unsigned int find_entry(int slot, CK_ULONG cls, const char *key_id) noexcept nogil:
    """The entry in use with this identity, 0 for none; the caller holds g_abi.lock."""
    cdef unsigned int i = g_abi.buckets[bucket_of(slot, cls, key_id)]
    cdef object_t *e
    while i:
        e = &g_abi.objects[i]
        if e.slot == slot and e.cls == cls and strcmp(e.key_id, key_id) == 0:
            return i
        i = e.next
    return 0


cdef void link(unsigned int i) noexcept nogil:
    cdef object_t *e = &g_abi.objects[i]
    cdef unsigned int b = bucket_of(e.slot, e.cls, e.key_id)
    e.next = g_abi.buckets[b]
    g_abi.buckets[b] = i


cdef void unlink(unsigned int i) noexcept nogil:
    cdef object_t *e = &g_abi.objects[i]
    cdef unsigned int *at = &g_abi.buckets[bucket_of(e.slot, e.cls, e.key_id)]
    while at[0] and at[0] != i:
        at = &g_abi.objects[at[0]].next
    if at[0] == i:
        at[0] = e.next
    e.next = 0


cdef CK_OBJECT_HANDLE entry_alloc() noexcept nogil:
    """A free entry's handle, 0 if the table is full; the caller holds g_abi.lock. Handles
    carry the entry's generation like session handles, so a destroyed object's handle stays
    invalid."""
    cdef CK_ULONG index
    if g_abi.nobjects < MAX_OBJECTS:
        index = g_abi.nobjects
        g_abi.nobjects += 1
    elif g_abi.nfree_objects:
        g_abi.nfree_objects -= 1
        index = g_abi.free_objects[g_abi.nfree_objects]
    else:
        return 0
    return (g_abi.objects[index].generation << HANDLE_INDEX_BITS) | index


cdef PyObject *entry_free(unsigned int i) noexcept nogil:
    """Frees entry i for entry_alloc to hand out again; returns its P11Object reference
    (taken)."""
    cdef PyObject *obj = g_abi.objects[i].obj
    cdef CK_ULONG generation = g_abi.objects[i].generation + 1
    cdef unsigned int bucket = bucket_of(g_abi.objects[i].slot, g_abi.objects[i].cls,
                                         g_abi.objects[i].key_id)
    unlink(i)
    memset(&g_abi.objects[i], 0, sizeof(object_t))
    g_abi.objects[i].generation = generation
    g_abi.free_objects[g_abi.nfree_objects] = i
    g_abi.nfree_objects += 1
    if P11F_DEBUG:
        objects_check(i, bucket)
    return obj


cdef void objects_check(unsigned int i, unsigned int bucket) noexcept nogil:
    """The table's invariants (objects.pxd) where a change to entry i touched them — the entry,
    the hash chain `bucket`, the free list's end — in P11FAST_DEBUG builds, after every change;
    the caller holds g_abi.lock. As cheap as a lookup, so a debug build runs the whole suite. A
    broken invariant aborts: the handle table is the one map from handle to object, and a wrong
    entry would sign with another key."""
    cdef object_t *e = &g_abi.objects[i]
    cdef CK_ULONG used = g_abi.nobjects - 1 - g_abi.nfree_objects
    cdef CK_ULONG chained = 0
    cdef bint in_chain = False
    cdef unsigned int j = g_abi.buckets[bucket]
    if e.handle != 0 and ((e.handle & INDEX_MASK) != i
                          or (e.handle >> HANDLE_INDEX_BITS) != e.generation
                          or (e.obj == NULL) == (e.recorded == NULL)
                          or find_entry(e.slot, e.cls, e.key_id) != i):
        check_failed(b"an entry in use", i)
    if e.handle == 0 and (e.obj != NULL or e.recorded != NULL or e.next != 0):
        check_failed(b"a free entry", i)
    while j:
        chained += 1
        in_chain = in_chain or j == i
        if (g_abi.objects[j].handle == 0 or chained > used
                or bucket_of(g_abi.objects[j].slot, g_abi.objects[j].cls,
                             g_abi.objects[j].key_id) != bucket):
            check_failed(b"a hash chain", j)
        j = g_abi.objects[j].next
    if in_chain != (e.handle != 0 and bucket_of(e.slot, e.cls, e.key_id) == bucket):
        check_failed(b"the chain of an entry", i)
    if g_abi.nfree_objects and g_abi.objects[g_abi.free_objects[g_abi.nfree_objects - 1]].handle:
        check_failed(b"the free list", g_abi.free_objects[g_abi.nfree_objects - 1])


cdef void check_failed(const char *what, CK_ULONG where) noexcept nogil:
    fprintf(stderr, b"p11fast: object handle table broken: %s (%lu)\n", what, where)
    abort()


cdef object taken(PyObject *ref):
    """The table's reference as an object, for the caller to release once g_abi.lock is not
    held (a P11Object's end may run arbitrary code); None for a recorded entry's."""
    if ref == NULL:
        return None
    obj = <object>ref
    Py_DECREF(obj)  # the table's; `obj` holds its own
    return obj


cdef bint object_copy(CK_OBJECT_HANDLE h, object_t *out) noexcept nogil:
    cdef CK_ULONG index = h & INDEX_MASK
    cdef bint found = False
    if h == 0 or g_abi.objects == NULL:
        return False
    pthread_mutex_lock(&g_abi.lock)
    if index < MAX_OBJECTS and g_abi.objects[index].handle == h:
        memcpy(out, &g_abi.objects[index], sizeof(object_t))
        found = True
    pthread_mutex_unlock(&g_abi.lock)
    return found


cdef CK_ULONG ulong_of(bytes value):
    """An encoded CK_ULONG attribute (attrs.ulong) back to its value."""
    cdef CK_ULONG v = 0
    if len(value) == sizeof(CK_ULONG):
        memcpy(&v, <const char *>value, sizeof(CK_ULONG))
    return v


cdef unsigned int nethsm_mechanism_bits(mechanisms) except? 0:
    cdef unsigned int bits = 0
    for i, name in enumerate(NETHSM_MECHANISMS):
        if name in mechanisms:
            bits |= 1u << i
    return bits


cdef void entry_fill(object_t *entry, int slot_index, obj) except *:
    """What the nogil paths read of obj (a P11Object), into a zeroed entry."""
    from p11fast.attrs import CKA_KEY_TYPE, CKA_PRIVATE
    from p11fast.der import ec_params_for_key_type, field_len

    cdef bytes key_id = obj.key_id.encode()
    if len(key_id) > KEY_ID_MAX:
        raise ValueError(f"key ID longer than {KEY_ID_MAX}: {obj.key_id!r}")
    entry.slot = slot_index
    entry.cls = obj.cls
    entry.key_type = ulong_of(obj.attrs.get(CKA_KEY_TYPE, b""))
    entry.nethsm_mechs = nethsm_mechanism_bits(obj.mechanisms)
    entry.bits = obj.bits
    # EC and Edwards keys only; RSA, secret keys and objects the module holds have no field
    entry.field_len = field_len(obj.key_type) if ec_params_for_key_type(obj.key_type) else 0
    entry.private = obj.attrs.get(CKA_PRIVATE) == b"\x01"
    memcpy(entry.key_id, <const char *>key_id, len(key_id))


cdef CK_OBJECT_HANDLE object_bind(int slot_index, obj) except 0:
    """Stable for the key ID and class while the module is initialised; the entry is refreshed
    so the sign path sees the key's current state (and a recorded entry gets its object)."""
    cdef object_t entry
    cdef PyObject *old = NULL
    memset(&entry, 0, sizeof(object_t))
    entry_fill(&entry, slot_index, obj)
    entry.obj = <PyObject *>obj
    Py_INCREF(obj)
    h = entry_bind(&entry, &old)
    if h == 0:
        Py_DECREF(obj)
        raise MemoryError("object table full")
    Py_XDECREF(old)
    return h


cdef CK_OBJECT_HANDLE entry_bind(object_t *entry, PyObject **old) noexcept nogil:
    """Binds entry (its fields and what it holds) to its identity's handle, else to a new one;
    0 when the table is full. *old gets the reference the entry held before, for the caller
    to release once g_abi.lock is not held."""
    cdef CK_OBJECT_HANDLE h
    cdef unsigned int index
    cdef bint bound
    pthread_mutex_lock(&g_abi.lock)
    index = find_entry(entry.slot, entry.cls, entry.key_id)
    bound = index != 0
    if bound:
        h = g_abi.objects[index].handle
        old[0] = g_abi.objects[index].obj
        entry.next = g_abi.objects[index].next
    else:
        h = entry_alloc()
        if h == 0:
            pthread_mutex_unlock(&g_abi.lock)
            return 0
        index = h & INDEX_MASK
    entry.handle = h
    entry.generation = g_abi.objects[index].generation
    memcpy(&g_abi.objects[index], entry, sizeof(object_t))
    if not bound:
        link(index)
    if P11F_DEBUG:
        objects_check(index, bucket_of(entry.slot, entry.cls, entry.key_id))
    pthread_mutex_unlock(&g_abi.lock)
    return h


cdef object object_of(CK_OBJECT_HANDLE h, int slot_index):
    cdef object_t *e
    obj = None
    if h == 0 or g_abi.objects == NULL:
        return None
    pthread_mutex_lock(&g_abi.lock)
    e = &g_abi.objects[h & INDEX_MASK]
    if e.handle == h and e.obj != NULL and (slot_index < 0 or e.slot == slot_index):
        obj = <object>e.obj
    pthread_mutex_unlock(&g_abi.lock)
    return obj


cdef bint user_may_see(int slot_index, obj) except -1:
    from p11fast.attrs import CKA_PRIVATE

    cdef slot_t *slot = &g_abi.slots[slot_index]
    cdef bint logged_in
    if obj.attrs.get(CKA_PRIVATE) != b"\x01":
        return True
    pthread_mutex_lock(&slot.lock)
    logged_in = slot_user_logged_in(slot) or slot.login_user == CKU_SO
    pthread_mutex_unlock(&slot.lock)
    return logged_in


cdef object visible_object(int slot_index, CK_OBJECT_HANDLE hObject):
    from p11fast.errors import ObjectHandleInvalid

    obj = object_of(hObject, slot_index)
    if obj is None or not user_may_see(slot_index, obj):
        raise ObjectHandleInvalid(f"object handle {hObject} is not an object of this token")
    return obj


cdef void objects_forget(int slot_index, str key_id, tuple classes) except *:
    """The objects of key_id that no longer exist lose their handles: the sign path stops
    finding them."""
    cdef bytes raw = key_id.encode()
    cdef unsigned int index
    cdef list released = []
    if len(raw) > KEY_ID_MAX:
        return
    pthread_mutex_lock(&g_abi.lock)
    for cls in classes:
        index = find_entry(slot_index, cls, raw)
        if index:
            released.append(taken(entry_free(index)))
    pthread_mutex_unlock(&g_abi.lock)


cdef void objects_rename(int slot_index, str old_id, str new_id, tuple classes) except *:
    """After a rename the key's objects keep their handles (a handle names an object, not an
    ID), now bound to the new key ID; a stale entry of the new ID goes."""
    cdef bytes old_raw = old_id.encode()
    cdef bytes new_raw = new_id.encode()
    cdef unsigned int index, clash, old_bucket
    cdef list released = []
    if old_id == new_id or len(old_raw) > KEY_ID_MAX:
        return
    if len(new_raw) > KEY_ID_MAX:
        raise ValueError(f"key ID longer than {KEY_ID_MAX}: {new_id!r}")
    pthread_mutex_lock(&g_abi.lock)
    for cls in classes:
        index = find_entry(slot_index, cls, old_raw)
        if not index:
            continue
        clash = find_entry(slot_index, cls, new_raw)
        if clash:
            released.append(taken(entry_free(clash)))
        old_bucket = bucket_of(slot_index, cls, old_raw)
        unlink(index)
        memset(g_abi.objects[index].key_id, 0, KEY_ID_MAX + 1)
        memcpy(g_abi.objects[index].key_id, <const char *>new_raw, len(new_raw))
        link(index)
        if P11F_DEBUG:
            objects_check(index, old_bucket)
            objects_check(index, bucket_of(slot_index, cls, new_raw))
    pthread_mutex_unlock(&g_abi.lock)


cdef list objects_recorded():
    """(slot, class, key ID) of every entry that holds a recorded object."""
    cdef CK_ULONG i
    cdef list found = []
    pthread_mutex_lock(&g_abi.lock)
    for i in range(1, g_abi.nobjects):
        if g_abi.objects[i].handle != 0 and g_abi.objects[i].recorded != NULL:
            found.append((g_abi.objects[i].slot, g_abi.objects[i].cls, g_abi.objects[i].key_id))
    pthread_mutex_unlock(&g_abi.lock)
    return found


cdef void objects_forget_recorded() noexcept nogil:
    cdef CK_ULONG i
    pthread_mutex_lock(&g_abi.lock)
    for i in range(1, g_abi.nobjects):
        if g_abi.objects[i].handle != 0 and g_abi.objects[i].recorded != NULL:
            entry_free(i)
    pthread_mutex_unlock(&g_abi.lock)


cdef void forget_entries() noexcept nogil:
    """Frees every entry, leaving their P11Object references to the caller."""
    cdef CK_ULONG i
    cdef object_t *e
    if g_abi.objects == NULL:
        return
    # Only entries below nobjects were ever written, and only the buckets they are in are
    # cleared: clearing the whole table (13 MB) would fault in every page of it.
    for i in range(1, g_abi.nobjects):
        e = &g_abi.objects[i]
        if e.handle != 0:
            g_abi.buckets[bucket_of(e.slot, e.cls, e.key_id)] = 0
    memset(g_abi.objects, 0, g_abi.nobjects * sizeof(object_t))
    g_abi.nfree_objects = 0


cdef void objects_clear() noexcept:
    cdef CK_ULONG i
    cdef list released = []
    if g_abi.objects == NULL:
        return
    pthread_mutex_lock(&g_abi.lock)
    for i in range(1, g_abi.nobjects):
        if g_abi.objects[i].handle != 0 and g_abi.objects[i].obj != NULL:
            released.append(taken(g_abi.objects[i].obj))
    forget_entries()
    pthread_mutex_unlock(&g_abi.lock)


cdef void objects_drop() noexcept nogil:
    forget_entries()


cdef list read_template(CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount):
    """The application's template as (type, value bytes) pairs. The one decoder of every
    template the module interprets (create, generate, set, find): a CK_BBOOL value must be 1
    byte and a CK_ULONG one sizeof(CK_ULONG), else CKR_ATTRIBUTE_VALUE_INVALID."""
    from p11fast.attrs import BOOL_ATTRS, ULONG_ATTRS
    from p11fast.errors import ArgumentsBad, AttributeValueInvalid

    template = []
    for i in range(ulCount):
        if pTemplate[i].pValue == NULL and pTemplate[i].ulValueLen != 0:
            raise ArgumentsBad(f"template entry {i} has a length but no value")
        kind = pTemplate[i].type
        if (kind in BOOL_ATTRS and pTemplate[i].ulValueLen != 1) or \
                (kind in ULONG_ATTRS and pTemplate[i].ulValueLen != sizeof(CK_ULONG)):
            raise AttributeValueInvalid(
                f"template entry {i}: attribute 0x{kind:x} of length {pTemplate[i].ulValueLen}")
        # Nothing a NetHSM stores comes near this; copying a wild length (0xFFFFFFFF with a
        # 3-byte buffer, as pkcs11-check sends) would read far past the caller's buffer.
        if pTemplate[i].ulValueLen > MAX_ATTRIBUTE_LEN:
            raise AttributeValueInvalid(
                f"template entry {i}: length {pTemplate[i].ulValueLen} exceeds {MAX_ATTRIBUTE_LEN}"
            )
        value = (<const char *>pTemplate[i].pValue)[:pTemplate[i].ulValueLen] if pTemplate[i].ulValueLen else b""
        template.append((kind, value))
    return template


cdef void *public_key(CK_OBJECT_HANDLE h) noexcept with gil:
    """The key object's public key (CKA_PUBLIC_KEY_INFO) as an EVP_PKEY the caller frees; NULL,
    logged, when it has none that OpenSSL reads."""
    cdef EVP_PKEY *pkey = NULL
    cdef const unsigned char *p
    cdef bytes spki
    try:
        from p11fast.attrs import CKA_PUBLIC_KEY_INFO

        obj = object_of(h, -1)
        spki = obj.attrs.get(CKA_PUBLIC_KEY_INFO, b"") if obj is not None else b""
        p = <const unsigned char *><const char *>spki
        pkey = d2i_PUBKEY(NULL, &p, len(spki))
        ERR_clear_error()
        if pkey == NULL:
            raise ValueError(f"object {h}: no public key OpenSSL can read")
    except BaseException as exc:
        rv_for(exc, b"public key")
    return pkey
