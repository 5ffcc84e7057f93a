# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled showplan reader: ``showplan._python_statements`` (statements and operator trees) in C.

Reading a plan through lxml from Python costs about 200 ns per attribute and a proxy object per child
element, and a plan corpus has tens of thousands of them. This module walks the same tree lxml built,
through the ``_c_node`` pointers of lxml's public C API (struct fields only: nothing links against
libxml2), and builds exactly the model objects the Python reader builds. ``showplan.py`` stays the
reference: ``tests/unit/plans/test_showplan_compiled.py`` requires both to give equal models for every
plan of the corpus, for edited and for damaged plans, so a change to one without the other fails
(ADR 0004).

Rare parts (operator and statement warnings, the PSP dispatcher, scalar UDF notes, the hash-key text,
the less common QueryPlan children) call the reference functions with an lxml element, so they exist
once. Built by ``hatch_build.py`` at install; without a C compiler planmon runs on the Python reader.
"""

from libc.string cimport strcmp
from lxml.includes cimport tree
from lxml.includes.etreepublic cimport _Document, _Element, elementFactory, import_lxml__etree

import_lxml__etree()

cdef extern from *:
    """
    #ifndef PLANMON_SOURCE_SHA256
    #define PLANMON_SOURCE_SHA256 ""
    #endif
    """
    const char* PLANMON_SOURCE_SHA256

cdef extern from "lxml-version.h":
    const char* LXML_VERSION_STRING

# sha256 of the .pyx this module was compiled from, and the lxml it was compiled against: showplan.py
# uses this module only when both still match (a stale build falls back to the reference reader).
SOURCE_SHA256 = PLANMON_SOURCE_SHA256.decode("ascii")
BUILT_AGAINST_LXML = LXML_VERSION_STRING.decode("ascii")

import dataclasses

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject

from planmon.errors import PlanParseError
from planmon.plans.model import (
    MemoryGrant,
    MissingIndex,
    ObjectRef,
    Parameter,
    PlanNode,
    PlanStatement,
    Predicate,
    ThreadRuntime,
    WaitStat,
)

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        pass
    int PyMember_SetOne(char* address, PyMemberDef* member, object value) except -1

cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef class _Constructor:
    """Builds instances of a slotted model dataclass without running its generated ``__init__``.

    ``__init__`` is Python code (about 0.5-1 us a call, frozen classes more); tens of thousands of
    operators, thread rows and predicates per corpus made it a third of this module's time. Each slot
    is set through CPython's own member descriptor (``PyMember_SetOne``), in the field order given,
    which must be exactly the dataclass's fields: a model class that gains a field, loses ``slots``
    or gets a ``__post_init__`` makes this module refuse to import, and planmon uses the Python reader.
    """

    cdef object cls
    cdef object allocate
    cdef Py_ssize_t count
    cdef PyMemberDef** members

    def __cinit__(self, cls, tuple names):
        fields = tuple(field.name for field in dataclasses.fields(cls))
        if fields != names or hasattr(cls, "__post_init__"):
            raise ImportError(f"planmon's compiled reader does not match the model class {cls.__name__}")
        self.cls = cls
        self.allocate = cls.__new__
        self.count = len(names)
        self.members = <PyMemberDef**>PyMem_Malloc(self.count * sizeof(PyMemberDef*))
        if self.members is NULL:
            raise MemoryError()
        for index, name in enumerate(names):
            descriptor = cls.__dict__.get(name)
            if type(descriptor).__name__ != "member_descriptor":
                raise ImportError(f"planmon's compiled reader needs {cls.__name__} to be a slotted dataclass")
            self.members[index] = (<PyMemberDescrObject*><PyObject*>descriptor).d_member

    def __dealloc__(self):
        PyMem_Free(self.members)

    cdef object make(self, tuple values):
        instance = self.allocate(self.cls)
        cdef Py_ssize_t index
        for index in range(self.count):
            PyMember_SetOne(<char*><PyObject*>instance, self.members[index], values[index])
        return instance


cdef _Constructor _PLAN_NODE = _Constructor(PlanNode, (
    "node_id", "physical_op", "logical_op", "object", "estimated_rows", "estimated_cost", "estimated_io",
    "estimated_cpu", "estimated_executions", "actual_rows", "actual_executions", "actual_elapsed_ms",
    "actual_cpu_ms", "actual_logical_reads", "per_thread", "parallel", "predicates", "warnings",
    "properties", "children",
))
cdef _Constructor _THREAD_RUNTIME = _Constructor(ThreadRuntime, (
    "thread", "rows", "executions", "elapsed_ms", "cpu_ms", "logical_reads",
))
cdef _Constructor _PREDICATE = _Constructor(Predicate, ("kind", "text"))
cdef _Constructor _OBJECT_REF = _Constructor(ObjectRef, (
    "table", "schema", "database", "index", "alias", "index_kind",
))
cdef _Constructor _PLAN_STATEMENT = _Constructor(PlanStatement, (
    "index", "text", "statement_type", "root", "is_actual", "engine_query_hash", "engine_plan_hash",
    "estimated_cost", "estimated_rows", "optimizer_level", "early_abort_reason", "non_parallel_reason",
    "dop", "cardinality_estimator_version", "memory_grant", "compile_cpu_ms", "compile_memory_kb",
    "query_cpu_ms", "query_elapsed_ms", "planning_ms", "waits", "parameters", "missing_indexes",
    "warnings", "properties",
))

cdef object _reference = None  # planmon.plans.showplan, imported on first use (it imports this module)

cdef tuple _RELOP_PROPERTIES  # (name, name as bytes) pairs
# The RelOp attributes _node reads, looked up in one pass over the attribute list: the ten with a
# neutral field (in _RELOP_FIELDS order), then _RELOP_PROPERTIES. The bytes objects stay referenced.
cdef tuple _RELOP_FIELDS = (
    b"EstimateRebinds", b"EstimateRewinds", b"NodeId", b"PhysicalOp", b"LogicalOp", b"EstimateRows",
    b"EstimatedTotalSubtreeCost", b"EstimateIO", b"EstimateCPU", b"Parallel",
)
cdef enum:
    _MAX_RELOP_NAMES = 32
cdef const char* _RELOP_NAMES[_MAX_RELOP_NAMES]
cdef Py_ssize_t _RELOP_NAME_COUNT = 0
cdef frozenset _BOOLEAN_ATTRIBUTES
cdef tuple _SUMMED_COUNTERS  # (name, name as bytes) pairs
cdef tuple _THREAD_TEXT_COUNTERS  # (name, name as bytes) pairs
cdef dict _SCAN_TYPES
cdef object _strip_literals
cdef object _INTEGER
cdef frozenset _STATEMENT_FIELDS
cdef frozenset _QUERY_PLAN_FIELDS
cdef dict _DEFAULT_TYPES
cdef dict _QUERY_PLAN_CHILDREN


cdef object _load_reference():
    """Take the constants and the rare-path functions from the reference module, once."""
    global _reference, _RELOP_PROPERTIES, _BOOLEAN_ATTRIBUTES, _SUMMED_COUNTERS, _THREAD_TEXT_COUNTERS
    global _SCAN_TYPES, _strip_literals, _INTEGER
    global _STATEMENT_FIELDS, _QUERY_PLAN_FIELDS, _DEFAULT_TYPES, _QUERY_PLAN_CHILDREN
    if _reference is None:
        from planmon.plans import showplan

        _RELOP_PROPERTIES = tuple((name, name.encode("ascii")) for name in showplan._RELOP_PROPERTIES)
        _set_relop_names()
        _BOOLEAN_ATTRIBUTES = frozenset(showplan._BOOLEAN_ATTRIBUTES)
        _SUMMED_COUNTERS = tuple((name, name.encode("ascii")) for name in showplan._SUMMED_COUNTERS)
        _THREAD_TEXT_COUNTERS = tuple((name, name.encode("ascii")) for name in showplan._THREAD_TEXT_COUNTERS)
        _SCAN_TYPES = dict(showplan._SCAN_TYPES)
        _strip_literals = showplan.strip_literals
        _INTEGER = showplan._INTEGER
        _STATEMENT_FIELDS = frozenset(showplan._STATEMENT_FIELDS)
        _QUERY_PLAN_FIELDS = frozenset(showplan._QUERY_PLAN_FIELDS)
        _DEFAULT_TYPES = dict(showplan._DEFAULT_TYPES)
        _QUERY_PLAN_CHILDREN = dict(showplan._QUERY_PLAN_CHILDREN)
        _reference = showplan
    return _reference


cdef void _set_relop_names() except *:
    global _RELOP_NAME_COUNT
    cdef tuple names = _RELOP_FIELDS + tuple(encoded for _name_text, encoded in _RELOP_PROPERTIES)
    if len(names) > _MAX_RELOP_NAMES:
        raise ImportError("planmon's compiled reader: too many RelOp attributes for its name table")
    cdef Py_ssize_t index
    for index in range(len(names)):
        _RELOP_NAMES[index] = <bytes>names[index]
    _RELOP_NAME_COUNT = len(names)


# --- libxml2 nodes ------------------------------------------------------------------------------------


cdef inline bint _same(const char* name, const char* wanted) noexcept:
    """Equal names; the first bytes are compared inline, so most mismatches cost no call."""
    return name[0] == wanted[0] and strcmp(name, wanted) == 0


cdef inline tree.xmlNode* _first_element(tree.xmlNode* node) noexcept:
    """The first child element of ``node`` (text and other nodes skipped), or NULL."""
    cdef tree.xmlNode* child = node.children
    while child is not NULL and child.type != tree.XML_ELEMENT_NODE:
        child = child.next
    return child


cdef inline tree.xmlNode* _next_element(tree.xmlNode* node) noexcept:
    """The next sibling element, or NULL."""
    cdef tree.xmlNode* sibling = node.next
    while sibling is not NULL and sibling.type != tree.XML_ELEMENT_NODE:
        sibling = sibling.next
    return sibling


cdef str _text(tree.xmlNode* first):
    """The value held by an attribute's child nodes (one text node for every document lxml accepts)."""
    if first is NULL:
        return ""
    if first.next is NULL and first.content is not NULL:
        return (<const char*>first.content).decode("utf-8")
    cdef list parts = []
    while first is not NULL:
        if first.content is not NULL:
            parts.append((<const char*>first.content).decode("utf-8"))
        first = first.next
    return "".join(parts)


cdef str _get(tree.xmlNode* node, const char* name):
    """``element.get(name)``: the value of the attribute without namespace called ``name``, or None."""
    cdef tree.xmlAttr* attribute = node.properties
    while attribute is not NULL:
        if attribute.ns is NULL and _same(<const char*>attribute.name, name):
            return _text(attribute.children)
        attribute = attribute.next
    return None


cdef inline void _find_attributes(
    tree.xmlNode* node, const char** names, Py_ssize_t count, tree.xmlAttr** found
) noexcept:
    """``found[i]``: the attribute without namespace called ``names[i]`` (NULL when absent), read in
    one pass over the attribute list instead of one ``_get`` per name."""
    cdef Py_ssize_t index
    for index in range(count):
        found[index] = NULL
    cdef tree.xmlAttr* attribute = node.properties
    while attribute is not NULL:
        if attribute.ns is NULL:
            for index in range(count):
                if found[index] is NULL and _same(<const char*>attribute.name, names[index]):
                    found[index] = attribute
                    break
        attribute = attribute.next


cdef inline str _found(tree.xmlAttr* attribute):
    """The value of an attribute ``_find_attributes`` found, or None."""
    return None if attribute is NULL else _text(attribute.children)


cdef inline str _name(const tree.xmlChar* name):
    """An element or attribute name as text."""
    return (<const char*>name).decode("utf-8")


cdef str _qualified_name(tree.xmlAttr* attribute):
    """An attribute's name as lxml gives it: ``{uri}name`` when it has a namespace."""
    if attribute.ns is NULL or attribute.ns.href is NULL:
        return (<const char*>attribute.name).decode("utf-8")
    return "{%s}%s" % ((<const char*>attribute.ns.href).decode("utf-8"), (<const char*>attribute.name).decode("utf-8"))


cdef list _items(tree.xmlNode* node):
    """``element.items()``: (name, value) pairs in document order."""
    cdef list pairs = []
    cdef tree.xmlAttr* attribute = node.properties
    while attribute is not NULL:
        if attribute.ns is NULL:
            pairs.append((_name(attribute.name), _text(attribute.children)))
        else:
            pairs.append((_qualified_name(attribute), _text(attribute.children)))
        attribute = attribute.next
    return pairs


# --- values (showplan._value, _float, _boolean, strip_brackets) ------------------------------------


cdef inline bint _ascii_digits(str text, Py_ssize_t start):
    """True when ``text[start:]`` is one or more ASCII digits."""
    cdef Py_ssize_t index, length = len(text)
    cdef Py_UCS4 character
    if start >= length:
        return False
    for index in range(start, length):
        character = text[index]
        if character < 48 or character > 57:
            return False
    return True


cdef bint _ascii_decimal(str text, Py_ssize_t length):
    """``showplan._DECIMAL.fullmatch`` for ASCII text: ``-?(?:\\d+\\.\\d*|\\.\\d+|\\d+)(?:[eE][-+]?\\d+)?``."""
    cdef Py_ssize_t index = 0, whole = 0, fraction = 0, exponent = 0
    cdef bint dot = False
    if index < length and text[index] == u"-":
        index += 1
    while index < length and 48 <= text[index] <= 57:
        index += 1
        whole += 1
    if index < length and text[index] == u".":
        dot = True
        index += 1
        while index < length and 48 <= text[index] <= 57:
            index += 1
            fraction += 1
    if whole == 0 and not (dot and fraction > 0):
        return False
    if index < length and (text[index] == u"e" or text[index] == u"E"):
        index += 1
        if index < length and (text[index] == u"-" or text[index] == u"+"):
            index += 1
        while index < length and 48 <= text[index] <= 57:
            index += 1
            exponent += 1
        if exponent == 0:
            return False
    return index == length


cdef object _value(str name, str value):
    """``showplan._value``: int, float, bool (known boolean attributes) or the text itself.

    ASCII text is decided here; anything else (non-ASCII digits) by the reference function.
    """
    if name in _BOOLEAN_ATTRIBUTES and value in ("true", "false", "1", "0"):
        return value in ("true", "1")
    if not value.isascii():
        return _reference._value(name, value)
    cdef Py_ssize_t length = len(value)
    if length == 0:
        return value
    cdef Py_UCS4 first = value[0]
    if 48 <= first <= 57:
        if _ascii_digits(value, 0):
            return int(value)
    elif first != 45 and first != 46:  # "-", "."
        return value
    if first == 45 and _ascii_digits(value, 1):  # showplan._INTEGER
        return int(value)
    if _ascii_decimal(value, length):
        return float(value)
    return value


cdef object _float(str value):
    """``showplan._float``: a number, None when absent or not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


cdef inline bint _boolean(str value):
    return value == "true" or value == "1" or value == "True"


cdef str _strip_brackets(str identifier):
    """``showplan.strip_brackets``."""
    if identifier is None:
        return None
    if len(identifier) >= 2 and identifier[0] == u"[" and identifier[len(identifier) - 1] == u"]":
        return identifier[1 : len(identifier) - 1].replace("]]", "]")
    return identifier


cdef object _node_id(str text):
    """``int(NodeId)`` when it is an integer (``showplan._INTEGER``), else -1."""
    if text.isascii():
        if _ascii_digits(text, 1 if text.startswith("-") else 0):
            return int(text)
        return -1
    return int(text) if _INTEGER.fullmatch(text) else -1


# --- the tree -----------------------------------------------------------------------------------------


cdef class _TreeReader:
    """One QueryPlan's operators (``showplan._operator_tree``): RelOps become PlanNodes linked to the
    nearest RelOp above them."""

    cdef _Document document
    cdef tree.xmlNode* query_plan
    cdef dict nodes  # RelOp node address -> PlanNode
    cdef bint has_runtime

    def __cinit__(self, _Document document):
        self.document = document
        self.query_plan = NULL
        self.nodes = {}
        self.has_runtime = False

    cdef _Element _proxy(self, tree.xmlNode* node):
        """The lxml element of a node, for the parts the reference module reads."""
        return elementFactory(self.document, node)

    cdef tree.xmlNode* _owning_relop(self, tree.xmlNode* node) noexcept:
        cdef tree.xmlNode* parent = node.parent
        while parent is not NULL and parent is not self.query_plan and parent.type == tree.XML_ELEMENT_NODE:
            if _same(<const char*>parent.name, b"RelOp"):
                return parent
            parent = parent.parent
        return NULL

    cdef tuple read(self):
        """Walk every element below the QueryPlan in document order (as ``iter`` does)."""
        cdef tree.xmlNode* top = self.query_plan
        cdef tree.xmlNode* current = top
        cdef tree.xmlNode* owner
        root = None
        while True:
            if current.type == tree.XML_ELEMENT_NODE and current is not top:
                if _same(<const char*>current.name, b"RelOp"):
                    node = self._node(current)
                    self.nodes[<size_t>current] = node
                    owner = self._owning_relop(current)
                    if owner is not NULL and <size_t>owner in self.nodes:
                        self.nodes[<size_t>owner].children.append(node)
                    elif root is None:
                        root = node
                elif _same(<const char*>current.name, b"UserDefinedFunction"):
                    owner = self._owning_relop(current)
                    if owner is not NULL and <size_t>owner in self.nodes:
                        _reference._note_udf(self.nodes[<size_t>owner], self._proxy(current))
            # next in document order: first child, else next sibling, else a sibling of an ancestor
            if current.children is not NULL and current.type == tree.XML_ELEMENT_NODE:
                current = current.children
                continue
            while current is not top and current.next is NULL:
                current = current.parent
            if current is top:
                break
            current = current.next
        return root, self.has_runtime

    cdef object _node(self, tree.xmlNode* relop):
        """``showplan._node``."""
        cdef tree.xmlAttr* found[_MAX_RELOP_NAMES]
        _find_attributes(relop, _RELOP_NAMES, _RELOP_NAME_COUNT, found)  # _RELOP_FIELDS order, then properties
        rebinds = _float(_found(found[0]))
        rewinds = _float(_found(found[1]))
        node_id = _found(found[2])
        physical_op = _found(found[3])
        node = _PLAN_NODE.make((
            _node_id("-1" if node_id is None else node_id),  # node_id
            "" if physical_op is None else physical_op,  # physical_op
            _found(found[4]),  # logical_op
            None,  # object
            _float(_found(found[5])),  # estimated_rows
            _float(_found(found[6])),  # estimated_cost
            _float(_found(found[7])),  # estimated_io
            _float(_found(found[8])),  # estimated_cpu
            None if rebinds is None and rewinds is None else 1.0 + (rebinds or 0.0) + (rewinds or 0.0),
            None, None, None, None, None,  # actual rows, executions, elapsed, cpu, logical reads
            [],  # per_thread
            _boolean(_found(found[9])),  # parallel
            [], [], {}, [],  # predicates, warnings, properties, children
        ))
        cdef dict properties = node.properties
        cdef Py_ssize_t index = len(_RELOP_FIELDS)
        for name, _encoded in _RELOP_PROPERTIES:
            if found[index] is not NULL:
                properties[name] = _value(name, _text(found[index].children))
            index += 1
        cdef tree.xmlNode* child = _first_element(relop)
        while child is not NULL:
            if _same(<const char*>child.name, b"RunTimeInformation"):
                self._runtime(node, child)
                self.has_runtime = True
            elif _same(<const char*>child.name, b"Warnings"):
                node.warnings.extend(_reference._warnings(self._proxy(child)))
            elif _same(<const char*>child.name, b"MemoryFractions"):
                properties["MemoryFractions"] = _attributes(child)
            elif (
                not _same(<const char*>child.name, b"OutputList")
                and not _same(<const char*>child.name, b"RunTimePartitionSummary")
                and not _same(<const char*>child.name, b"InternalInfo")
            ):
                self._operator(node, child)
            child = _next_element(child)
        return node

    cdef void _runtime(self, object node, tree.xmlNode* runtime) except *:
        """``showplan._apply_runtime``: per-thread rows kept, totals into the actual_* fields."""
        cdef list rows = []
        cdef tree.xmlNode* child = _first_element(runtime)
        while child is not NULL:
            if _same(<const char*>child.name, b"RunTimeCountersPerThread"):
                rows.append(<size_t>child)
            child = _next_element(child)
        cdef tree.xmlNode* first = <tree.xmlNode*><size_t>rows[0] if rows else NULL
        # every thread of an operator carries the same set of counters: look at the first row only
        # (a counter is "present" when the row has it as an attribute without namespace, as in keys())
        cdef list extras = [] if first is NULL else [
            (name, encoded) for name, encoded in _SUMMED_COUNTERS if _get(first, encoded) is not None
        ]
        cdef dict totals = dict.fromkeys([name for name, _encoded in extras], 0.0)
        cdef list threads = []
        cdef _Totals sums
        sums.rows = sums.executions = sums.cpu_ms = sums.logical_reads = sums.elapsed_ms = 0.0
        sums.cpu_known = sums.reads_known = sums.elapsed_known = False
        try:
            for address in rows:
                threads.append(
                    _thread_runtime(<tree.xmlNode*><size_t>address, extras, totals, &sums)
                )
        except ValueError as exc:
            raise PlanParseError(
                f"operator {node.node_id} has a run-time counter that is not a number ({exc})",
                hint="the plan was edited or damaged; capture it again from SQL Server",
            ) from exc
        cdef dict properties = node.properties
        for name, encoded in _THREAD_TEXT_COUNTERS:
            text = None if first is NULL else _get(first, encoded)
            if text is not None:
                properties[name] = _value(name, text)
        node.per_thread = threads
        # what sum() and max() give over the threads (sum() of no threads is the int 0)
        node.actual_rows = sums.rows if threads else 0
        node.actual_executions = sums.executions if threads else 0
        node.actual_elapsed_ms = sums.elapsed_ms if sums.elapsed_known else None
        node.actual_cpu_ms = sums.cpu_ms if sums.cpu_known else None
        node.actual_logical_reads = sums.logical_reads if sums.reads_known else None
        properties.update(totals)

    cdef void _operator(self, object node, tree.xmlNode* element) except *:
        """``showplan._apply_operator``: the operator element's attributes, object and predicates."""
        cdef dict properties = node.properties
        properties["Operator"] = _name(element.name)
        for name, value in _items(element):
            properties[name] = _value(name, value)
        cdef list objects = []
        cdef dict hash_keys = {}
        cdef list predicates = node.predicates
        cdef tree.xmlNode* child = _first_element(element)
        cdef const char* kind
        while child is not NULL:
            kind = <const char*>child.name
            if _same(kind, b"Predicate"):
                _scalar_predicate(predicates, node, child, "filter")
            elif _same(kind, b"SeekPredicates"):
                seek = _first_element(child)
                while seek is not NULL:
                    _single_seek(predicates, seek)
                    seek = _next_element(seek)
            elif _same(kind, b"SeekPredicateNew") or _same(kind, b"SeekPredicate"):
                _single_seek(predicates, child)
            elif (
                _same(kind, b"BuildResidual")
                or _same(kind, b"ProbeResidual")
                or _same(kind, b"Residual")
            ):
                _scalar_predicate(predicates, node, child, "residual")
            elif _same(kind, b"PassThru"):
                _scalar_predicate(predicates, node, child, "pass_thru")
            elif _same(kind, b"Object"):
                _collect_object(node, child, objects)
            elif (
                _same(kind, b"HashKeysBuild")
                or _same(kind, b"HashKeysProbe")
                or _same(kind, b"OuterSideJoinColumns")
                or _same(kind, b"InnerSideJoinColumns")
            ):
                hash_keys[_name(child.name)] = _column_texts(child)
            child = _next_element(child)
        if objects:
            node.object = objects[0]
            if len(objects) > 1:
                properties["Objects"] = [obj.qualified for obj in objects]
        if hash_keys:
            predicates.extend(_reference._key_predicates(hash_keys))


cdef dict _attributes(tree.xmlNode* node):
    """``showplan._attributes``."""
    return {name: _value(name, value) for name, value in _items(node)}


cdef void _scalar_predicate(list predicates, object node, tree.xmlNode* element, str kind) except *:
    """``showplan._scalar_predicate``: the ScalarString of the first ScalarOperator, literals stripped."""
    cdef tree.xmlNode* child = _first_element(element)
    while child is not NULL and not _same(<const char*>child.name, b"ScalarOperator"):
        child = _next_element(child)
    if child is NULL:
        return
    text = _get(child, b"ScalarString")
    if text is None:
        return
    if kind == "filter" and node.physical_op == "Nested Loops":
        kind = "join"  # a Nested Loops predicate is evaluated per pair of rows: it is the join condition
    predicates.append(_PREDICATE.make((kind, _strip_literals(text))))


cdef void _single_seek(list predicates, tree.xmlNode* seek) except *:
    """``showplan._single_seek``: Prefix/StartRange/EndRange at or below ``seek``, in document order."""
    cdef list parts = []
    cdef tree.xmlNode* current = seek
    while True:
        if current.type == tree.XML_ELEMENT_NODE and (
            _same(<const char*>current.name, b"Prefix")
            or _same(<const char*>current.name, b"StartRange")
            or _same(<const char*>current.name, b"EndRange")
        ):
            part = _seek_range(current)
            if part:
                parts.append(part)
        if current.children is not NULL and current.type == tree.XML_ELEMENT_NODE:
            current = current.children
            continue
        while current is not seek and current.next is NULL:
            current = current.parent
        if current is seek:
            break
        current = current.next
    text = " AND ".join(parts)
    if text:
        predicates.append(_PREDICATE.make(("seek", _strip_literals(text))))


cdef str _seek_range(tree.xmlNode* seek_range):
    """``showplan._seek_range``: ``col1 = expr1 AND col2 = expr2``."""
    scan_type = _get(seek_range, b"ScanType")
    operator = _SCAN_TYPES.get("" if scan_type is None else scan_type, "?" if scan_type is None else scan_type)
    cdef list columns = []
    cdef list expressions = []
    cdef tree.xmlNode* child = _first_element(seek_range)
    cdef tree.xmlNode* operand
    while child is not NULL:
        if _same(<const char*>child.name, b"RangeColumns"):
            columns.extend(_column_texts(child))
        elif _same(<const char*>child.name, b"RangeExpressions"):
            operand = _first_element(child)
            while operand is not NULL:
                if _same(<const char*>operand.name, b"ScalarOperator"):
                    text = _get(operand, b"ScalarString")
                    expressions.append("?" if text is None else text)
                operand = _next_element(operand)
        child = _next_element(child)
    if len(columns) > len(expressions):
        expressions.extend(["?"] * (len(columns) - len(expressions)))
    return " AND ".join([f"{column} {operator} {expression}" for column, expression in zip(columns, expressions)])


cdef list _column_texts(tree.xmlNode* element):
    """``showplan._column_text`` of every ColumnReference child."""
    cdef list texts = []
    cdef tree.xmlNode* column = _first_element(element)
    while column is not NULL:
        if _same(<const char*>column.name, b"ColumnReference"):
            texts.append(_column_text(column))
        column = _next_element(column)
    return texts


cdef str _column_text(tree.xmlNode* column):
    """A column the way ScalarString writes it: ``[db].[schema].[table].[col] as [alias].[col]``."""
    name = _get(column, b"Column")
    if name is None:
        name = ""
    bracketed = name if name.startswith("[") else f"[{name}]"
    owner = [part for part in (_get(column, b"Database"), _get(column, b"Schema"), _get(column, b"Table")) if part is not None]
    owner.append(bracketed)
    text = ".".join(owner)
    alias = _get(column, b"Alias")
    return f"{text} as {alias}.{bracketed}" if alias else text


cdef void _collect_object(object node, tree.xmlNode* element, list objects) except *:
    """``showplan._collect_object``."""
    table = _get(element, b"Table")
    if table is None:
        return
    obj = _OBJECT_REF.make((
        _strip_brackets(table) or "",  # table
        _strip_brackets(_get(element, b"Schema")),  # schema
        _strip_brackets(_get(element, b"Database")),  # database
        _strip_brackets(_get(element, b"Index")),  # index
        _strip_brackets(_get(element, b"Alias")),  # alias
        _get(element, b"IndexKind"),  # index_kind
    ))
    objects.append(obj)
    cdef dict properties = node.properties
    if obj.table.startswith("@"):
        properties["TableVariable"] = True
    elif obj.table.startswith("#"):
        properties["TempTable"] = True
    for name, encoded in (("Storage", b"Storage"), ("Filtered", b"Filtered")):
        value = _get(element, encoded)
        if value is not None:
            properties.setdefault(name, _value(name, value))


cdef struct _Totals:
    # a node's run-time totals over its threads, added in thread order as sum() adds them
    double rows
    double executions
    double cpu_ms
    double logical_reads
    double elapsed_ms  # the largest one, as max() picks it (the first of equal ones)
    bint cpu_known
    bint reads_known
    bint elapsed_known


cdef object _thread_runtime(tree.xmlNode* row, list extras, dict totals, _Totals* sums):
    """``showplan._thread_runtime``: one thread's counters; the secondary ones added to ``totals``."""
    for name, encoded in extras:
        value = _get(row, <bytes>encoded)
        if value is not None:
            totals[name] += float(value)
    elapsed_text = _get(row, b"ActualElapsedms")
    cpu_text = _get(row, b"ActualCPUms")
    reads_text = _get(row, b"ActualLogicalReads")
    thread = int(_get(row, b"Thread") or 0)
    rows = float(_get(row, b"ActualRows") or 0)
    executions = float(_get(row, b"ActualExecutions") or 0)
    elapsed = None if elapsed_text is None else float(elapsed_text)
    cpu = None if cpu_text is None else float(cpu_text)
    reads = None if reads_text is None else float(reads_text)
    sums.rows += <double>rows
    sums.executions += <double>executions
    if elapsed is not None and (not sums.elapsed_known or <double>elapsed > sums.elapsed_ms):
        sums.elapsed_ms = <double>elapsed
        sums.elapsed_known = True
    if cpu is not None:
        sums.cpu_ms += <double>cpu
        sums.cpu_known = True
    if reads is not None:
        sums.logical_reads += <double>reads
        sums.reads_known = True
    return _THREAD_RUNTIME.make((thread, rows, executions, elapsed, cpu, reads))


def element_attributes(_Element element):
    """``showplan._python_attributes``: an element's attributes, integers and known booleans converted."""
    _load_reference()
    return _attributes(element._c_node)


# --- statements ---------------------------------------------------------------------------------------


cdef inline tree.xmlNode* _child(tree.xmlNode* element, const char* name) noexcept:
    """``showplan._child``: the first child element called ``name``, or NULL."""
    if element is NULL:
        return NULL
    cdef tree.xmlNode* child = _first_element(element)
    while child is not NULL and not _same(<const char*>child.name, name):
        child = _next_element(child)
    return child


cdef list _children(tree.xmlNode* element, const char* name):
    """``showplan._children``: addresses of the child elements called ``name``, in document order."""
    cdef list found = []
    cdef tree.xmlNode* child = _first_element(element)
    while child is not NULL:
        if _same(<const char*>child.name, name):
            found.append(<size_t>child)
        child = _next_element(child)
    return found


cdef class _StatementReader:
    """A document's statements in document order (``showplan._statement_spots`` and ``_statement``)."""

    cdef _Document document
    cdef list spots  # (statement element address, QueryPlan address or 0, context properties)

    def __cinit__(self, _Element root):
        self.document = root._doc
        self.spots = []

    cdef list read(self, tree.xmlNode* root):
        cdef Py_ssize_t batch_index = 0
        cdef list pending
        cdef list entry
        cdef tree.xmlNode* element
        for sequence in _children(root, b"BatchSequence"):
            for batch in _children(<tree.xmlNode*><size_t>sequence, b"Batch"):
                context = {"Batch": batch_index}
                batch_index += 1
                # a stack of [next statement to visit, context for it]: IF/ELSE and UDF bodies nest
                pending = [
                    [<size_t>_first_element(<tree.xmlNode*><size_t>block), context]
                    for block in reversed(_children(<tree.xmlNode*><size_t>batch, b"Statements"))
                ]
                while pending:
                    entry = pending[len(pending) - 1]
                    element = <tree.xmlNode*><size_t>entry[0]
                    if element is NULL:
                        pending.pop()
                        continue
                    entry[0] = <size_t>_next_element(element)
                    nested = self._expand(element, entry[1])
                    pending.extend(
                        [[<size_t>_first_element(<tree.xmlNode*><size_t>block), nested_context]
                         for block, nested_context in reversed(nested)]
                    )
        return [self._statement(spot, index) for index, spot in enumerate(self.spots)]

    cdef list _expand(self, tree.xmlNode* element, dict context):
        """``showplan._expand_statement``: record its spots; return the nested blocks to visit after it."""
        cdef tree.xmlNode* condition
        cdef tree.xmlNode* branch_element
        cdef list nested
        if _same(<const char*>element.name, b"StmtCond"):
            condition = _child(element, b"Condition")
            query_plan = _child(condition, b"QueryPlan") if condition is not NULL else NULL
            nested = self._function_blocks(condition, context) if condition is not NULL else []
            for branch, encoded in (("Then", b"Then"), ("Else", b"Else")):
                branch_element = _child(element, encoded)
                if branch_element is not NULL:
                    branch_context = {**context, "Branch": branch}
                    nested.extend([(block, branch_context) for block in _children(branch_element, b"Statements")])
            self.spots.append((<size_t>element, <size_t>query_plan, dict(context)))
            return nested
        if _same(<const char*>element.name, b"StmtCursor") or _same(<const char*>element.name, b"StmtReceive"):
            self._operation_spots(element, context)
            return []
        self.spots.append((<size_t>element, <size_t>_child(element, b"QueryPlan"), dict(context)))
        return self._function_blocks(element, context)

    cdef list _function_blocks(self, tree.xmlNode* element, dict context):
        """``showplan._function_blocks``: statement blocks of UDF and stored procedure bodies."""
        cdef list blocks = []
        cdef tree.xmlNode* child = _first_element(element)
        while child is not NULL:
            if _same(<const char*>child.name, b"UDF") or _same(<const char*>child.name, b"StoredProc"):
                nested_context = {**context, _name(child.name): _strip_brackets(_get(child, b"ProcName"))}
                blocks.extend([(block, nested_context) for block in _children(child, b"Statements")])
            child = _next_element(child)
        return blocks

    cdef void _operation_spots(self, tree.xmlNode* element, dict context) except *:
        """``showplan._operation_spots``: one statement per cursor (or RECEIVE) operation with a plan."""
        cdef tree.xmlNode* container = _child(element, b"CursorPlan")
        if container is NULL:
            container = _child(element, b"ReceivePlan")
        if container is NULL:
            self.spots.append((<size_t>element, 0, dict(context)))
            return
        base = {**context, **_attributes(container)}
        cdef Py_ssize_t count = 0
        for operation in _children(container, b"Operation"):
            properties = {**base, "CursorOperation": _get(<tree.xmlNode*><size_t>operation, b"OperationType")}
            self.spots.append((<size_t>element, <size_t>_child(<tree.xmlNode*><size_t>operation, b"QueryPlan"), properties))
            count += 1
        if count == 0:
            self.spots.append((<size_t>element, 0, base))

    cdef object _statement(self, tuple spot, Py_ssize_t index):
        """``showplan._statement``."""
        cdef tree.xmlNode* element = <tree.xmlNode*><size_t>spot[0]
        cdef tree.xmlNode* query_plan = <tree.xmlNode*><size_t>spot[1]
        kind = _name(element.name)
        statement_type = _get(element, b"StatementType")
        statement = _PLAN_STATEMENT.make((
            index,
            _get(element, b"StatementText"),  # text
            statement_type or _DEFAULT_TYPES.get(kind),  # statement_type
            None,  # root
            False,  # is_actual
            _get(element, b"QueryHash"),  # engine_query_hash
            _get(element, b"QueryPlanHash"),  # engine_plan_hash
            _float(_get(element, b"StatementSubTreeCost")),  # estimated_cost
            _float(_get(element, b"StatementEstRows")),  # estimated_rows
            _get(element, b"StatementOptmLevel"),  # optimizer_level
            _get(element, b"StatementOptmEarlyAbortReason"),  # early_abort_reason
            None,  # non_parallel_reason
            None,  # dop
            _get(element, b"CardinalityEstimationModelVersion"),  # cardinality_estimator_version
            None, None, None, None, None, None,  # memory grant, compile cpu/memory, query cpu/elapsed, planning
            [], [], [], [], {},  # waits, parameters, missing_indexes, warnings, properties
        ))
        cdef dict properties = statement.properties
        properties["StatementKind"] = kind
        properties.update(spot[2])
        for name, value in _items(element):
            if name not in _STATEMENT_FIELDS:
                properties[name] = _value(name, value)
        if "Database" in properties:  # StmtUseDb
            properties["Database"] = _strip_brackets(_get(element, b"Database"))
        cdef tree.xmlNode* dispatcher = _child(element, b"Dispatcher")
        if dispatcher is not NULL:
            properties["Dispatcher"] = _reference._dispatcher(elementFactory(self.document, dispatcher))
        if query_plan is not NULL:
            self._query_plan(statement, query_plan)
        return statement

    cdef void _query_plan(self, object statement, tree.xmlNode* query_plan) except *:
        """``showplan._apply_query_plan``: statement-level facts of a QueryPlan and its operator tree."""
        dop = _get(query_plan, b"DegreeOfParallelism")
        statement.dop = int(dop) if dop is not None and _INTEGER.fullmatch(dop) else None
        statement.non_parallel_reason = _get(query_plan, b"NonParallelPlanReason")
        statement.compile_cpu_ms = _float(_get(query_plan, b"CompileCPU"))
        statement.compile_memory_kb = _float(_get(query_plan, b"CompileMemory"))
        cdef dict properties = statement.properties
        for name, value in _items(query_plan):
            if name not in _QUERY_PLAN_FIELDS:
                properties[name] = _value(name, value)
        cdef tree.xmlNode* child = _first_element(query_plan)
        cdef const char* kind
        while child is not NULL:
            kind = <const char*>child.name
            if _same(kind, b"MemoryGrantInfo"):
                statement.memory_grant = MemoryGrant(
                    requested_kb=_float(_get(child, b"RequestedMemory")),
                    granted_kb=_float(_get(child, b"GrantedMemory")),
                    max_used_kb=_float(_get(child, b"MaxUsedMemory")),
                    desired_kb=_float(_get(child, b"DesiredMemory")),
                    serial_required_kb=_float(_get(child, b"SerialRequiredMemory")),
                )
                properties["MemoryGrantInfo"] = _attributes(child)
            elif _same(kind, b"QueryTimeStats"):
                statement.query_cpu_ms = _float(_get(child, b"CpuTime"))
                statement.query_elapsed_ms = _float(_get(child, b"ElapsedTime"))
                properties["QueryTimeStats"] = _attributes(child)
                statement.is_actual = True
            elif _same(kind, b"OptimizerHardwareDependentProperties"):
                properties["OptimizerHardwareDependentProperties"] = _attributes(child)
            elif _same(kind, b"ParameterList"):
                _parameter_list(statement, child)
            elif _same(kind, b"WaitStats"):
                _wait_stats(statement, child)
            elif _same(kind, b"MissingIndexes"):
                _missing_indexes(statement, child)
            elif _same(kind, b"OptimizerStatsUsage"):
                properties["OptimizerStatsUsage"] = _stats_usage(child)
            else:
                handler = _QUERY_PLAN_CHILDREN.get(_name(child.name))
                if handler is not None:  # the rarer ones: read by the reference module
                    handler(statement, elementFactory(self.document, child))
            child = _next_element(child)
        cdef _TreeReader operators = _TreeReader(self.document)
        operators.query_plan = query_plan
        root, has_runtime = operators.read()
        statement.root = root
        statement.is_actual = statement.is_actual or has_runtime


def statements(_Element root):
    """``showplan._python_statements``: every statement of a ShowPlanXML document, in document order."""
    _load_reference()
    return _StatementReader(root).read(root._c_node)


cdef void _parameter_list(object statement, tree.xmlNode* element) except *:
    """``showplan._parameter_list``: compiled and runtime values exactly as SQL Server wrote them."""
    cdef list parameters = statement.parameters
    for address in _children(element, b"ColumnReference"):
        column = <tree.xmlNode*><size_t>address
        name = _get(column, b"Column")
        parameters.append(
            Parameter(
                name="" if name is None else name,
                data_type=_get(column, b"ParameterDataType"),
                compiled_value=_get(column, b"ParameterCompiledValue"),
                runtime_value=_get(column, b"ParameterRuntimeValue"),
            )
        )


cdef void _wait_stats(object statement, tree.xmlNode* element) except *:
    """``showplan._wait_stats``: one WaitStat per wait type."""
    cdef list waits = statement.waits
    for address in _children(element, b"Wait"):
        wait = <tree.xmlNode*><size_t>address
        wait_type = _get(wait, b"WaitType")
        waits.append(
            WaitStat(
                wait_type="" if wait_type is None else wait_type,
                wait_ms=_float(_get(wait, b"WaitTimeMs")) or 0.0,
                wait_count=_float(_get(wait, b"WaitCount")) or 0.0,
            )
        )


cdef void _missing_indexes(object statement, tree.xmlNode* element) except *:
    """``showplan._missing_indexes``: the group's Impact applies to each index in it."""
    cdef list missing = statement.missing_indexes
    for group_address in _children(element, b"MissingIndexGroup"):
        group = <tree.xmlNode*><size_t>group_address
        impact = _float(_get(group, b"Impact"))
        for index_address in _children(group, b"MissingIndex"):
            index = <tree.xmlNode*><size_t>index_address
            columns = {"EQUALITY": [], "INEQUALITY": [], "INCLUDE": []}
            for column_group_address in _children(index, b"ColumnGroup"):
                column_group = <tree.xmlNode*><size_t>column_group_address
                names = [
                    _strip_brackets(_get(<tree.xmlNode*><size_t>column, b"Name")) or ""
                    for column in _children(column_group, b"Column")
                ]
                usage = _get(column_group, b"Usage")
                columns.setdefault("" if usage is None else usage, []).extend(names)
            missing.append(
                MissingIndex(
                    table=_strip_brackets(_get(index, b"Table")) or "",
                    impact=impact,
                    schema=_strip_brackets(_get(index, b"Schema")),
                    database=_strip_brackets(_get(index, b"Database")),
                    equality_columns=tuple(columns["EQUALITY"]),
                    inequality_columns=tuple(columns["INEQUALITY"]),
                    include_columns=tuple(columns["INCLUDE"]),
                )
            )


cdef list _stats_usage(tree.xmlNode* element):
    """``showplan._stats_usage``: the statistics the optimizer loaded, names without brackets."""
    cdef list usage = []
    for address in _children(element, b"StatisticsInfo"):
        entry = _attributes(<tree.xmlNode*><size_t>address)
        for name in ("Database", "Schema", "Table", "Statistics"):
            if name in entry:
                entry[name] = _strip_brackets(str(entry[name]))
        usage.append(entry)
    return usage
