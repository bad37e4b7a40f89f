# recorded: the recorded inventory (contract and file layout in recorded.pxd).

from libc.stdint cimport uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset
from posix.stat cimport struct_stat

from p11fast._decl.pkcs11 cimport *

cdef extern from *:
    """
    #include <fcntl.h>
    static const char p11f_record_magic[] = "P11FKEYS";
    static const char p11f_record_suffix[] = ".key-";
    """
    const char p11f_record_magic[]
    const char p11f_record_suffix[]  # <snapshot><suffix><slot>-<CKA_ID in hex>
    enum: O_RDONLY, O_NOFOLLOW, O_CLOEXEC
    # Prefixed: this piece shares the module's namespace with others that use these names.
    int posix_open "open"(const char *path, int flags) nogil
    int posix_close "close"(int fd) nogil
    Py_ssize_t posix_read "read"(int fd, void *buf, size_t n) nogil
    int posix_fstat "fstat"(int fd, struct_stat *st) nogil
    unsigned int posix_getuid "getuid"() nogil

cdef enum:
    RECORD_VERSION = 1
    RECORD_MAX_BYTES = 1 << 20
    RECORD_PATH_MAX = 4400

# Light mode's snapshot (records_start): the records beside it name it.
cdef char g_snapshot_path[RECORD_PATH_MAX]
cdef unsigned long g_snapshot_crc, g_snapshot_len
# The records loaded, newest first; changed under light mode's lock only.
cdef record_t *g_records


cdef uint32_t crc32_of(const unsigned char *p, size_t n) noexcept nogil:
    """CRC-32 (ISO-HDLC, as binascii.crc32), bit by bit: a record is a few kB, read once."""
    cdef uint32_t crc = 0xFFFFFFFFu
    cdef int k
    while n:
        crc ^= p[0]
        for k in range(8):
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)))
        p += 1
        n -= 1
    return crc ^ 0xFFFFFFFFu


cdef bint recordable_template(CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_ULONG *cls,
                              const unsigned char **cka_id, size_t *cka_id_len) noexcept nogil:
    cdef CK_ULONG i
    cdef bint have_cls = False, have_id = False
    if ulCount != 2 or pTemplate == NULL:
        return False
    for i in range(ulCount):
        if pTemplate[i].type == CKA_CLASS and not have_cls:
            if pTemplate[i].pValue == NULL or pTemplate[i].ulValueLen != sizeof(CK_ULONG):
                return False
            memcpy(cls, pTemplate[i].pValue, sizeof(CK_ULONG))
            have_cls = (cls[0] == CKO_PRIVATE_KEY or cls[0] == CKO_PUBLIC_KEY
                        or cls[0] == CKO_SECRET_KEY)
        elif pTemplate[i].type == CKA_ID and not have_id:
            if (pTemplate[i].pValue == NULL or pTemplate[i].ulValueLen == 0
                    or pTemplate[i].ulValueLen > RECORD_CKA_ID_MAX):
                return False
            cka_id[0] = <const unsigned char *>pTemplate[i].pValue
            cka_id_len[0] = pTemplate[i].ulValueLen
            have_id = True
        else:
            return False
    return have_cls and have_id


cdef bint answer_normalised(const char *body, size_t n, char **out, size_t *out_len) noexcept nogil:
    cdef const char *value
    cdef size_t value_len, before, after
    cdef int rc = json_get_number(body, n, b"operations", &value, &value_len)
    if rc == -2:
        return False
    if rc == -1:
        value = body + n
        value_len = 0
    before = <size_t>(value - body)
    after = n - before - value_len
    out[0] = <char *>malloc(n + 1)
    if out[0] == NULL:
        return False
    memcpy(out[0], body, before)
    # Without the count a present member would be a malformed document; 0 keeps it one.
    if rc == 0:
        out[0][before] = c'0'
        before += 1
    memcpy(out[0] + before, value + value_len, after)
    out_len[0] = before + after
    return True


cdef bint recorded_matches(const recorded_object *obj, CK_ULONG cls,
                           const unsigned char *cka_id, size_t cka_id_len) noexcept nogil:
    """P11Object.matches for recordable_template's template."""
    cdef const recorded_attr *a = recorded_attribute(obj, CKA_CLASS)
    if (a == NULL or a.sensitive or a.len != sizeof(CK_ULONG)
            or memcmp(a.value, &cls, sizeof(CK_ULONG)) != 0):
        return False
    a = recorded_attribute(obj, CKA_ID)
    return (a != NULL and not a.sensitive and a.len == cka_id_len
            and memcmp(a.value, cka_id, cka_id_len) == 0)


cdef const recorded_attr *recorded_attribute(const recorded_object *obj,
                                             CK_ULONG kind) noexcept nogil:
    """The attribute (sensitive: without a value), NULL when the object has none."""
    cdef CK_ULONG i
    for i in range(obj.nattrs):
        if obj.attrs[i].type == kind:
            return &obj.attrs[i]
    return NULL


cdef void records_start(const char *snapshot_path, unsigned long crc,
                        unsigned long length) noexcept nogil:
    global g_snapshot_crc, g_snapshot_len
    records_free()
    g_snapshot_path[0] = 0
    if snapshot_path != NULL:
        snprintf(g_snapshot_path, RECORD_PATH_MAX, b"%s", snapshot_path)
    g_snapshot_crc = crc
    g_snapshot_len = length


cdef void records_free() noexcept nogil:
    global g_records
    cdef record_t *r
    while g_records != NULL:
        r = g_records
        g_records = r.next
        record_release(r)


cdef void records_drop() noexcept nogil:
    global g_records
    g_records = NULL
    g_snapshot_path[0] = 0


cdef void record_release(record_t *r) noexcept nogil:
    cdef CK_ULONG i
    if r.objects != NULL:
        for i in range(r.nobjects):
            free(r.objects[i].attrs)
    free(r.objects)
    free(r.data)
    free(r)


cdef record_t *record_for(int slot, const unsigned char *cka_id, size_t cka_id_len) noexcept nogil:
    """The record of this search, loaded once; NULL when there is none that names this
    snapshot and is intact."""
    global g_records
    cdef record_t *r = g_records
    while r != NULL:
        if r.slot == slot and r.cka_id_len == cka_id_len and memcmp(r.cka_id, cka_id, cka_id_len) == 0:
            return r
        r = r.next
    r = record_load(slot, cka_id, cka_id_len)
    if r != NULL:
        r.next = g_records
        g_records = r
    return r


cdef size_t record_path(char *path, size_t size, int slot, const unsigned char *cka_id,
                        size_t cka_id_len) noexcept nogil:
    cdef size_t n = <size_t>snprintf(path, size, b"%s%s%d-", g_snapshot_path, p11f_record_suffix,
                                     slot)
    cdef size_t i
    for i in range(cka_id_len):
        if n + 3 > size:
            return 0
        snprintf(path + n, 3, b"%02x", cka_id[i])
        n += 2
    return n


cdef unsigned char *file_read(const char *path, size_t *n) noexcept nogil:
    """The file when it is ours, not writable by others and not larger than a record may be."""
    cdef struct_stat st
    cdef unsigned char *data
    cdef Py_ssize_t got
    cdef size_t have = 0
    cdef int fd = posix_open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    if fd < 0:
        return NULL
    if (posix_fstat(fd, &st) != 0 or st.st_uid != posix_getuid() or (st.st_mode & 0o022)
            or st.st_size <= 0 or st.st_size > RECORD_MAX_BYTES):
        posix_close(fd)
        return NULL
    data = <unsigned char *>malloc(st.st_size)
    while data != NULL and have < <size_t>st.st_size:
        got = posix_read(fd, data + have, st.st_size - have)
        if got <= 0:
            free(data)
            data = NULL
        else:
            have += got
    posix_close(fd)
    n[0] = have
    return data


cdef struct reader:
    const unsigned char *p
    const unsigned char *end
    bint bad


cdef uint64_t take(reader *r, size_t size) noexcept nogil:
    """A little-endian integer of `size` bytes."""
    cdef uint64_t v = 0
    cdef size_t i
    if r.bad or <size_t>(r.end - r.p) < size:
        r.bad = True
        return 0
    for i in range(size):
        v |= (<uint64_t>r.p[i]) << (8 * i)
    r.p += size
    return v


cdef const unsigned char *take_blob(reader *r, size_t *n) noexcept nogil:
    cdef const unsigned char *start
    n[0] = take(r, 4)
    if r.bad or <size_t>(r.end - r.p) < n[0]:
        r.bad = True
        return NULL
    start = r.p
    r.p += n[0]
    return start


cdef record_t *record_load(int slot, const unsigned char *cka_id, size_t cka_id_len) noexcept nogil:
    cdef char path[RECORD_PATH_MAX + 2 * RECORD_CKA_ID_MAX + 32]
    cdef size_t n = 0, key_id_len = 0
    cdef CK_ULONG i
    cdef reader rd
    cdef record_t *rec
    cdef const unsigned char *key_id
    if g_snapshot_path[0] == 0 or not record_path(path, sizeof(path), slot, cka_id, cka_id_len):
        return NULL
    rec = <record_t *>calloc(1, sizeof(record_t))
    if rec == NULL:
        return NULL
    rec.data = file_read(path, &n)
    if rec.data != NULL and n >= 4:
        rd.p = rec.data + n - 4
        rd.end = rec.data + n
        rd.bad = False
    if rec.data == NULL or n < 4 or take(&rd, 4) != crc32_of(rec.data, n - 4):
        record_release(rec)
        return NULL
    rd.p = rec.data
    rd.end = rec.data + n - 4
    rd.bad = <size_t>(rd.end - rd.p) < 8 or memcmp(rd.p, p11f_record_magic, 8) != 0
    rd.p += 8
    if (take(&rd, 4) != RECORD_VERSION or take(&rd, 4) != g_snapshot_crc
            or take(&rd, 4) != g_snapshot_len):
        rd.bad = True
    key_id = take_blob(&rd, &key_id_len)
    rec.status = <long>take(&rd, 4)
    rec.answer = take_blob(&rd, &rec.answer_len)
    if rd.bad or not key_id_valid(key_id, key_id_len) \
            or (rec.status != 200 and rec.status != 404) or not objects_read(&rd, rec, slot) \
            or rd.p != rd.end:
        record_release(rec)
        return NULL
    memcpy(rec.key_id, key_id, key_id_len)
    for i in range(rec.nobjects):
        memcpy(rec.objects[i].entry.key_id, key_id, key_id_len)
    memcpy(rec.cka_id, cka_id, cka_id_len)
    rec.cka_id_len = cka_id_len
    rec.slot = slot
    return rec


cdef bint key_id_valid(const unsigned char *key_id, size_t n) noexcept nogil:
    """p11fast.keyid.is_valid_key_id: the ID goes into a request path."""
    cdef size_t i
    if n == 0 or n > KEY_ID_MAX:
        return False
    for i in range(n):
        if not (c'a' <= key_id[i] <= c'z' or c'A' <= key_id[i] <= c'Z'
                or c'0' <= key_id[i] <= c'9' or (i > 0 and key_id[i] in b"_.-")):
            return False
    return True


cdef bint objects_read(reader *rd, record_t *rec, int slot) noexcept nogil:
    cdef CK_ULONG i, j
    cdef recorded_object *o
    cdef size_t value_len
    rec.nobjects = take(rd, 4)
    if rd.bad or rec.nobjects > FOUND_MAX:
        return False
    rec.objects = <recorded_object *>calloc(rec.nobjects + 1, sizeof(recorded_object))
    if rec.objects == NULL:
        return False
    for i in range(rec.nobjects):
        o = &rec.objects[i]
        o.entry.slot = slot
        o.entry.cls = take(rd, 8)
        o.entry.key_type = take(rd, 8)
        o.entry.nethsm_mechs = <unsigned int>take(rd, 4)
        o.entry.bits = take(rd, 8)
        o.entry.field_len = take(rd, 8)
        o.entry.private = take(rd, 1) != 0
        o.nattrs = take(rd, 4)
        if rd.bad or o.nattrs > <CK_ULONG>(rd.end - rd.p) // 13:
            return False
        o.attrs = <recorded_attr *>calloc(o.nattrs + 1, sizeof(recorded_attr))
        if o.attrs == NULL:
            return False
        for j in range(o.nattrs):
            o.attrs[j].type = take(rd, 8)
            o.attrs[j].sensitive = take(rd, 1) != 0
            o.attrs[j].value = take_blob(rd, &value_len)
            o.attrs[j].len = value_len
            if rd.bad or (o.attrs[j].sensitive and value_len != 0):
                return False
    return True


cdef void record_find(int slot_index, bytes cka_id) except *:
    """After the cold path's search for recordable_template's template, in a process with a
    snapshot: the search's record, once per process and ID. What the record holds is what a
    process without a cached answer builds from the HSM's (no certificate fetched, no secret
    key length known). A failure to write only costs a later process time."""
    cdef char *normal = NULL
    cdef size_t normal_len = 0
    shared = _state.shared_presence
    if shared is None or (slot_index, cka_id) in _state.recorded:
        return
    _state.recorded.add((slot_index, cka_id))

    from p11fast.keyid import cka_id_to_key_id, is_reserved
    from p11fast.lean import parse_json
    from p11fast.model.objects import build_objects
    from p11fast.snapshot import replace_file

    try:
        key_id = cka_id_to_key_id(cka_id)
    except ValueError:
        return
    body = _state.inventories[slot_index].answer(key_id)
    objs = []
    answer = b""
    if body is not None:
        if not answer_normalised(body, len(body), &normal, &normal_len):
            return
        try:
            answer = normal[:normal_len]
        finally:
            free(normal)
        try:
            objs = [] if is_reserved(key_id) else build_objects(key_id, parse_json(answer))
        except ValueError:
            return  # a key the model cannot use: the cold path says why, each time
    data = record_encode(slot_index, key_id, 404 if body is None else 200, answer, objs, shared)
    try:
        replace_file(f"{shared.snapshot_path}{p11f_record_suffix.decode()}{slot_index}-"
                     f"{cka_id.hex()}", data)
    except OSError:
        pass


cdef bytes record_encode(int slot_index, str key_id, long status, bytes answer, list objs,
                         shared):
    from _struct import pack
    from binascii import crc32

    cdef object_t entry
    out = [p11f_record_magic[:8],
           pack("<III", RECORD_VERSION, shared.snapshot_crc, shared.snapshot_len),
           _blob(key_id.encode()), pack("<I", status), _blob(answer), pack("<I", len(objs))]
    for obj in objs:
        memset(&entry, 0, sizeof(object_t))
        entry_fill(&entry, slot_index, obj)
        out.append(pack("<QQIQQB", entry.cls, entry.key_type, entry.nethsm_mechs, entry.bits,
                        entry.field_len, entry.private))
        kinds = list(obj.attrs) + [t for t in obj.sensitive if t not in obj.attrs]
        out.append(pack("<I", len(kinds)))
        for kind in kinds:
            # A sensitive attribute's value is never written, whatever attrs holds.
            sensitive = kind in obj.sensitive
            out.append(pack("<QB", kind, sensitive) + _blob(b"" if sensitive else obj.attrs[kind]))
    data = b"".join(out)
    return data + pack("<I", crc32(data))


def _blob(bytes data):
    from _struct import pack

    return pack("<I", len(data)) + data


cdef void records_adopt() except *:
    """At promotion: each answer a compiled search matched goes into the slot's inventory, as
    fetched when it matched, and the objects the cold path builds from it take over the handles
    the search gave out. Then the records go: nothing points into them any more."""
    cdef record_t *r = g_records
    cdef list recorded = objects_recorded()
    adopted = {}
    while r != NULL:
        if r.fetched:  # matched a 200 answer
            adopted[(r.slot, r.key_id)] = _state.inventories[r.slot].adopt(
                r.key_id.decode(), r.answer[:r.answer_len], r.fetched)
        r = r.next
    for slot_index, cls, key_id in recorded:
        for obj in adopted.get((slot_index, key_id), ()):
            if obj.cls == cls:
                object_bind(slot_index, obj)
    # None is left by construction (the same answer, the same model); were one left, its
    # handle goes rather than point at a record that is gone.
    objects_forget_recorded()
    records_free()
