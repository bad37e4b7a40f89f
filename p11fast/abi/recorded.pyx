# recorded: the recorded inventory (contract and file layout in recorded.pxd).

from libc.stdint cimport uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset, strcmp, strlen
from posix.stat cimport struct_stat

from p11fast._decl.pkcs11 cimport *

cdef extern from *:
    """
    #include <fcntl.h>
    """
    enum: O_RDONLY, O_NOFOLLOW, O_CLOEXEC
    # Prefixed: this piece shares the module's namespace with others that use these names.
    int posix_open "open"(const char *path, int flags) nogil
    int posix_close "close"(int fd) nogil
    Py_ssize_t posix_read "read"(int fd, void *buf, size_t n) nogil
    int posix_fstat "fstat"(int fd, struct_stat *st) nogil
    unsigned int posix_getuid "getuid"() nogil

cdef enum:
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


cdef bint recordable_template(CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                              search_t *search) noexcept nogil:
    cdef CK_ULONG i
    cdef bint have_cls = False
    memset(search, 0, sizeof(search_t))
    if pTemplate == NULL or ulCount < 2 or ulCount > 3:
        return False
    for i in range(ulCount):
        if pTemplate[i].type == CKA_CLASS and not have_cls:
            if pTemplate[i].pValue == NULL or pTemplate[i].ulValueLen != sizeof(CK_ULONG):
                return False
            memcpy(&search.cls, pTemplate[i].pValue, sizeof(CK_ULONG))
            have_cls = True
        elif pTemplate[i].type == CKA_ID and search.cka_id == NULL:
            if not _value_recordable(&pTemplate[i]):
                return False
            search.cka_id = <const unsigned char *>pTemplate[i].pValue
            search.cka_id_len = pTemplate[i].ulValueLen
        elif pTemplate[i].type == CKA_LABEL and search.label == NULL:
            if not _value_recordable(&pTemplate[i]):
                return False
            search.label = <const unsigned char *>pTemplate[i].pValue
            search.label_len = pTemplate[i].ulValueLen
        else:
            return False
    search.certs = search.cls == CKO_CERTIFICATE
    return (have_cls and (search.cka_id != NULL or search.label != NULL)
            and (search.cls == CKO_PRIVATE_KEY or search.cls == CKO_PUBLIC_KEY
                 or search.cls == CKO_SECRET_KEY or search.certs))


cdef bint _value_recordable(const CK_ATTRIBUTE *a) noexcept nogil:
    return a.pValue != NULL and 0 < a.ulValueLen <= RECORD_VALUE_MAX


cdef int record_by(const search_t *search, const unsigned char **value,
                   size_t *value_len) noexcept nogil:
    # A CKA_ID decides the cold path's requests whatever the label (Inventory.find).
    cdef int certs = RECORD_WITH_CERTS if search.certs else 0
    if search.cka_id != NULL:
        value[0] = search.cka_id
        value_len[0] = search.cka_id_len
        return RECORD_BY_ID | certs
    value[0] = search.label
    value_len[0] = search.label_len
    return RECORD_BY_LABEL | certs


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


cdef bint answer_same(const recorded_exchange *e, long status, const char *body,
                      size_t n) noexcept nogil:
    cdef char *normal = NULL
    cdef size_t normal_len = 0
    cdef bint same
    if status != e.status:
        return False
    if e.kind != EXCHANGE_KEY:
        # The cold path reads the body of a 200 only; the label query's other statuses, it goes
        # on without, and a certificate's 404 is "none".
        return status != 200 or (n == e.answer_len and memcmp(body, e.answer, n) == 0)
    if status != 200:
        return True
    same = (answer_normalised(body, n, &normal, &normal_len) and normal_len == e.answer_len
            and memcmp(normal, e.answer, normal_len) == 0)
    free(normal)
    return same


cdef bint exchange_path(const record_t *rec, const recorded_exchange *e, char *path,
                        size_t size) noexcept nogil:
    """Inventory's own paths: the label percent-encoded byte by byte, as its _pct does."""
    cdef const char *hexdigits = b"0123456789ABCDEF"
    cdef size_t n, i
    cdef unsigned char c
    if e.kind == EXCHANGE_KEY:
        return <size_t>snprintf(path, size, b"/keys/%s", e.key_id) < size
    if e.kind == EXCHANGE_CERT:
        return <size_t>snprintf(path, size, b"/keys/%s/cert", e.key_id) < size
    n = <size_t>snprintf(path, size, b"/keys?label=")
    for i in range(rec.value_len):
        c = rec.value[i]
        if n + 4 > size:
            return False
        if c'A' <= c <= c'Z' or c'a' <= c <= c'z' or c'0' <= c <= c'9' or c in b"-._~":
            path[n] = <char>c
            n += 1
        else:
            path[n] = c'%'
            path[n + 1] = hexdigits[c >> 4]
            path[n + 2] = hexdigits[c & 15]
            n += 3
    path[n] = 0
    return True


cdef bint recorded_matches(const recorded_object *obj, const search_t *search) noexcept nogil:
    """P11Object.matches for recordable_template's template."""
    cdef const recorded_attr *a = recorded_attribute(obj, CKA_CLASS)
    if (a == NULL or a.sensitive or a.len != sizeof(CK_ULONG)
            or memcmp(a.value, &search.cls, sizeof(CK_ULONG)) != 0):
        return False
    return (_attribute_is(obj, CKA_ID, search.cka_id, search.cka_id_len)
            and _attribute_is(obj, CKA_LABEL, search.label, search.label_len))


cdef bint _attribute_is(const recorded_object *obj, CK_ULONG kind, const unsigned char *value,
                        size_t n) noexcept nogil:
    """True when the search does not pin kind (value NULL) or the object's is value."""
    cdef const recorded_attr *a
    if value == NULL:
        return True
    a = recorded_attribute(obj, kind)
    return a != NULL and not a.sensitive and a.len == n and memcmp(a.value, value, n) == 0


cdef bint certificates_agree(const record_t *rec) noexcept nogil:
    cdef const record_t *r = g_records
    while r != NULL:
        if r != rec and r.fetched and (r.by & RECORD_WITH_CERTS) != (rec.by & RECORD_WITH_CERTS):
            if (_certificate_unseen(r, rec) if rec.by & RECORD_WITH_CERTS
                    else _certificate_unseen(rec, r)):
                return False
        r = r.next
    return True


cdef bint _certificate_unseen(const record_t *plain, const record_t *certs) noexcept nogil:
    """A key plain fetched without its certificate, which certs found."""
    cdef CK_ULONG i, j
    for i in range(certs.nexchanges):
        if certs.exchanges[i].kind != EXCHANGE_CERT or certs.exchanges[i].status != 200:
            continue
        for j in range(plain.nexchanges):
            if (plain.exchanges[j].kind == EXCHANGE_KEY and plain.exchanges[j].status == 200
                    and strcmp(plain.exchanges[j].key_id, certs.exchanges[i].key_id) == 0):
                return True
    return False


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
    free(r.exchanges)
    free(r.data)
    free(r)


cdef record_t *record_for(int slot, int by, const unsigned char *value,
                          size_t value_len) noexcept nogil:
    """The record of this search, loaded once; NULL when there is none that names this
    snapshot and is intact."""
    global g_records
    cdef record_t *r = g_records
    while r != NULL:
        if (r.slot == slot and r.by == by and r.value_len == value_len
                and memcmp(r.value, value, value_len) == 0):
            return r
        r = r.next
    r = record_load(slot, by, value, value_len)
    if r != NULL:
        r.next = g_records
        g_records = r
    return r


cdef size_t record_path(char *path, size_t size, int slot, int by, const unsigned char *value,
                        size_t value_len) noexcept nogil:
    cdef size_t n = <size_t>snprintf(path, size, b"%s%s%d-", g_snapshot_path,
                                     p11f_record_suffix[by], slot)
    cdef size_t i
    for i in range(value_len):
        if n + 3 > size:
            return 0
        snprintf(path + n, 3, b"%02x", value[i])
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


cdef record_t *record_load(int slot, int by, const unsigned char *value,
                          size_t value_len) noexcept nogil:
    cdef char path[RECORD_PATH_MAX + 2 * RECORD_VALUE_MAX + 32]
    cdef size_t n = 0
    cdef reader rd
    cdef record_t *rec
    if g_snapshot_path[0] == 0 or not record_path(path, sizeof(path), slot, by, value, value_len):
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
    rec.slot = slot
    rec.by = by
    memcpy(rec.value, value, value_len)
    rec.value_len = value_len
    if rd.bad or not exchanges_read(&rd, rec) or not objects_read(&rd, rec) or rd.p != rd.end:
        record_release(rec)
        return NULL
    return rec


cdef bint exchanges_read(reader *rd, record_t *rec) noexcept nogil:
    """The requests, as Inventory makes them for this kind of search: by CKA_ID one key's; by
    CKA_LABEL one label query and keys'; for certificates, each key found followed by its
    certificate's (NetHSM key IDs: they go into a request path)."""
    cdef CK_ULONG i
    cdef recorded_exchange *e
    cdef const unsigned char *key_id
    cdef size_t key_id_len = 0
    cdef int queries = 0, keys = 0
    rec.nexchanges = take(rd, 4)
    if rd.bad or rec.nexchanges == 0 or rec.nexchanges > RECORD_EXCHANGES_MAX:
        return False
    rec.exchanges = <recorded_exchange *>calloc(rec.nexchanges, sizeof(recorded_exchange))
    if rec.exchanges == NULL:
        return False
    for i in range(rec.nexchanges):
        e = &rec.exchanges[i]
        e.kind = <int>take(rd, 1)
        key_id = take_blob(rd, &key_id_len)
        e.status = <long>take(rd, 4)
        e.answer = take_blob(rd, &e.answer_len)
        if rd.bad:
            return False
        if e.kind == EXCHANGE_LABEL_QUERY:
            queries += 1
            if key_id_len != 0:
                return False
            continue
        if (not key_id_valid(key_id, key_id_len) or (e.status != 200 and e.status != 404)
                or e.kind not in (EXCHANGE_KEY, EXCHANGE_CERT)):
            return False
        memcpy(e.key_id, key_id, key_id_len)
        if e.kind == EXCHANGE_KEY:
            keys += 1
        elif (not rec.by & RECORD_WITH_CERTS or i == 0 or rec.exchanges[i - 1].kind != EXCHANGE_KEY
              or rec.exchanges[i - 1].status != 200
              or strcmp(rec.exchanges[i - 1].key_id, e.key_id) != 0):
            return False  # a certificate's request follows its key's
    if rec.by & RECORD_BY_LABEL:
        return queries == 1
    return queries == 0 and keys == 1


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


cdef bint objects_read(reader *rd, record_t *rec) noexcept nogil:
    cdef CK_ULONG i, j
    cdef recorded_object *o
    cdef size_t value_len
    cdef const unsigned char *key_id
    rec.nobjects = take(rd, 4)
    if rd.bad or rec.nobjects > RECORD_OBJECTS_MAX:
        return False
    rec.objects = <recorded_object *>calloc(rec.nobjects + 1, sizeof(recorded_object))
    if rec.objects == NULL:
        return False
    for i in range(rec.nobjects):
        o = &rec.objects[i]
        key_id = take_blob(rd, &value_len)
        if rd.bad or not fetched_key(rec, key_id, value_len):
            return False
        memcpy(o.entry.key_id, key_id, value_len)
        o.entry.slot = rec.slot
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


cdef bint fetched_key(const record_t *rec, const unsigned char *key_id, size_t n) noexcept nogil:
    """An object's key is one the search fetched: a request of the record answered it."""
    cdef CK_ULONG i
    for i in range(rec.nexchanges):
        if (rec.exchanges[i].kind == EXCHANGE_KEY and rec.exchanges[i].status == 200
                and strlen(rec.exchanges[i].key_id) == n
                and memcmp(rec.exchanges[i].key_id, key_id, n) == 0):
            return True
    return False


cdef void records_adopt() except *:
    """At promotion: each key answer a compiled search matched goes into the slot's inventory,
    as fetched when it matched, and the objects the cold path builds from it take over the
    handles the search gave out. Then the records go: nothing points into them any more."""
    cdef record_t *r = g_records
    cdef const recorded_exchange *e
    cdef CK_ULONG i
    cdef list recorded = objects_recorded()
    adopted = {}
    with_cert = set()  # a key adopted with its certificate is not adopted again without
    while r != NULL:
        for i in range(r.nexchanges if r.fetched else 0):  # fetched: its answers matched
            e = &r.exchanges[i]
            if e.kind != EXCHANGE_KEY or e.status != 200 or (r.slot, e.key_id) in with_cert:
                continue
            cert = None
            if i + 1 < r.nexchanges and r.exchanges[i + 1].kind == EXCHANGE_CERT:
                cert = (r.exchanges[i + 1].status,
                        r.exchanges[i + 1].answer[:r.exchanges[i + 1].answer_len])
                with_cert.add((r.slot, e.key_id))
            adopted[(r.slot, e.key_id)] = _state.inventories[r.slot].adopt(
                e.key_id.decode(), e.answer[:e.answer_len], r.fetched, cert)
        r = r.next
    for slot_index, cls, key_id in recorded:
        for obj in adopted.get((slot_index, key_id), ()):
            if obj.cls == cls:
                object_bind(slot_index, obj)
    # None is left by construction (the same answers, the same model); were one left, its
    # handle goes rather than point at a record that is gone.
    objects_forget_recorded()
    records_free()
