# recording: the cold path writes the recorded inventory (layout and contract in recorded.pxd).

from libc.stdlib cimport free
from libc.string cimport memset

cdef void record_find(int slot_index, const search_t *search) except *:
    """After the cold path's search, in a process with a snapshot: the search's record, once per
    process and search. What the record holds is what a process without a cached answer asks
    and builds from the HSM's answers (certificates fetched only for a search for them, no
    secret key length known). A failure to write only costs a later process time."""
    cdef const unsigned char *value
    cdef size_t value_len
    cdef int by = record_by(search, &value, &value_len)
    shared = _state.shared_presence
    named = (slot_index, by, value[:value_len])
    if shared is None or named in _state.recorded:
        return
    _state.recorded.add(named)

    from p11fast.snapshot import replace_file

    exchanges = search_exchanges(_state.inventories[slot_index], by, named[2])
    if exchanges is None or len(exchanges) > RECORD_EXCHANGES_MAX:
        return
    try:
        objs = recorded_objects(exchanges)
    except ValueError:
        return  # a key or certificate the model cannot use: the cold path says why, each time
    if len(objs) > RECORD_OBJECTS_MAX:
        return
    data = record_encode(slot_index, exchanges, objs, shared)
    try:
        replace_file(f"{shared.snapshot_path}{p11f_record_suffix[by].decode()}{slot_index}-"
                     f"{named[2].hex()}", data)
    except OSError:
        pass


cdef list recorded_objects(list exchanges):
    """[(key ID, P11Object)] the model builds from the answers, each key once, with its
    certificate when the search fetched it; ValueError for one it cannot use."""
    from p11fast import der
    from p11fast.keyid import is_reserved
    from p11fast.lean import parse_json
    from p11fast.model.objects import build_objects

    objs = []
    seen = set()
    for i, (kind, key_id, status, answer) in enumerate(exchanges):
        if kind != EXCHANGE_KEY or status != 200 or key_id in seen or is_reserved(key_id):
            continue
        seen.add(key_id)
        cert = None
        if i + 1 < len(exchanges) and exchanges[i + 1][0] == EXCHANGE_CERT:
            if exchanges[i + 1][2] == 200:
                try:
                    cert = der.pem_to_der(exchanges[i + 1][3])
                except der.DERError as e:
                    raise ValueError(str(e)) from None
        objs += [(key_id, obj) for obj in build_objects(key_id, parse_json(answer), cert)]
    return objs


cdef list search_exchanges(inventory, int by, bytes value):
    """[(EXCHANGE_*, key ID, status, answer)]: the requests Inventory.find makes for this search
    in a process with nothing cached, answered as the search just was; None when the search
    makes none or its answers are not at hand."""
    from p11fast.keyid import cka_id_to_key_id, is_valid_key_id
    from p11fast.lean import parse_json
    from p11fast.model.inventory import label_listing

    cdef bint certs = by & RECORD_WITH_CERTS
    out = []
    fetched = set()  # the keys a fresh inventory holds at this point of the search
    if not by & RECORD_BY_LABEL:
        try:
            key_id = cka_id_to_key_id(value)
        except ValueError:
            return None
        return out if add_key(out, fetched, inventory, key_id, certs) else None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    listing = inventory.label_answer(text)
    if listing is None:
        return None
    status, body = listing
    listed = []
    if status == 200:
        try:
            listed = label_listing(parse_json(body))
        except ValueError:
            return None
    if is_valid_key_id(text) and not add_key(out, fetched, inventory, text, certs):
        return None
    out.append((EXCHANGE_LABEL_QUERY, "", status, bytes(body)))
    for key_id in listed:
        if key_id not in fetched and not add_key(out, fetched, inventory, key_id, certs):
            return None
    return out


cdef bint add_key(list out, set fetched, inventory, str key_id, bint certs) except -1:
    """The key's request, and its certificate's when the search is for certificates."""
    exchange = key_exchange(inventory, key_id)
    if exchange is None:
        return False
    out.append(exchange)
    if exchange[2] == 200:
        fetched.add(key_id)
        if certs:
            cert = inventory.cert_answer(key_id)
            if cert is None:
                return False
            out.append((EXCHANGE_CERT, key_id, cert[0], cert[1]))
    return True


cdef tuple key_exchange(inventory, str key_id):
    """GET /keys/{key_id} as the inventory last had it answered: its normalised answer, or a
    404 when it holds no such key; None when the answer is not a JSON object."""
    cdef char *normal = NULL
    cdef size_t normal_len = 0
    body = inventory.answer(key_id)
    if body is None:
        return (EXCHANGE_KEY, key_id, 404, b"")
    if not answer_normalised(body, len(body), &normal, &normal_len):
        return None
    try:
        return (EXCHANGE_KEY, key_id, 200, normal[:normal_len])
    finally:
        free(normal)


cdef bytes record_encode(int slot_index, list exchanges, list objs, shared):
    from _struct import pack
    from binascii import crc32

    cdef object_t entry
    out = [p11f_record_magic[:8],
           pack("<III", RECORD_VERSION, shared.snapshot_crc, shared.snapshot_len),
           pack("<I", len(exchanges))]
    for kind, key_id, status, answer in exchanges:
        out.append(pack("<B", kind) + _blob(key_id.encode()) + pack("<I", status) + _blob(answer))
    out.append(pack("<I", len(objs)))
    for key_id, obj in objs:
        memset(&entry, 0, sizeof(object_t))
        entry_fill(&entry, slot_index, obj)
        out.append(_blob(key_id.encode()))
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
