"""The boundary between the tests' process and the submission's: what crosses, and how.

Runs inside the sandbox (standard library only, Python >= 3.9), in both processes of an
assert judgement. A value crosses as *plain data*: None, bool, int, float, complex, str,
bytes, bytearray, and lists, tuples, dicts, sets and frozensets of plain data. A subclass
of one of those (a namedtuple, a Counter, an IntEnum member) crosses as its base type;
Fraction and Decimal cross as numbers rebuilt by the receiving side's own classes; the
built-in types themselves (`int`, `str`, ...) cross by name. Anything else that the
submission hands over (a function, a generator, an object of its own class) crosses as a
*handle*: an opaque reference that the tests' side can call, iterate, read and set
attributes of, each a new request answered with data again, but whose equality is
identity and which has no truth value. So nothing the submission defines ever runs in the
tests' process: the comparisons the tests make are between plain values built there.

Handles rather than failing every test that gets a non-plain value: they are as safe,
since what a handle does in the tests' process (equality, hash, truth value, repr) is the
tests' process's own code, and whatever it yields is again plain data or a handle; and
they keep right programs right (a generator the tests iterate, a function that returns a
function, an object of the submission's class that MBPP's setup builds a tree of). The
tests can hand the submission only plain data and its own handles: anything else fails the
test with the reason.

The encoding is pickle (protocol 5) with a receiving side that resolves no global but
this module's own constructors, each of which checks its arguments are plain (the
"restricting globals" pattern of the pickle documentation); handles are pickle's
persistent ids. Messages are length-prefixed frames on pipes.
"""

import decimal
import fractions
import io
import os
import pickle
import struct

_PLAIN = frozenset({type(None), bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset})
_BASES = (int, float, str, bytes, bytearray, tuple, list, frozenset, set, dict)
BUILTIN_TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bytearray, bool, list, tuple, dict, set, frozenset)}
_HEADER = struct.Struct("<Q")


class WireError(Exception):
    """A message that is not what the protocol allows (malformed, too large, truncated)."""


class Unsendable(TypeError):
    """A value of the tests' own that the submission's process cannot receive."""


# --- the constructors the receiving side resolves (each checks its arguments) -------------


def plain(value):
    """A container or scalar converted to its exact built-in type by the sender."""
    if type(value) not in _PLAIN:
        raise WireError("expected plain data, got %s" % type(value).__name__)
    return value


def number(kind, *parts):
    """complex(re, im), Fraction(n, d) or Decimal(text), built by the receiver's own classes."""
    types = {"complex": (float, float), "fraction": (int, int), "decimal": (str,)}
    if kind not in types or tuple(type(p) for p in parts) != types[kind]:
        raise WireError("malformed number %r" % (kind,))
    if kind == "complex":
        return complex(*parts)
    if kind == "fraction":
        return fractions.Fraction(*parts)
    return decimal.Decimal(parts[0])


def builtin_type(name):
    """One of the built-in types, by name."""
    if type(name) is not str or name not in BUILTIN_TYPES:
        raise WireError("not a built-in type: %r" % (name,))
    return BUILTIN_TYPES[name]


_CONSTRUCTORS = {"plain": plain, "number": number, "builtin_type": builtin_type}
_CONSTRUCTOR_IDS = frozenset(id(f) for f in _CONSTRUCTORS.values())


# --- encoding --------------------------------------------------------------------------


class _Encoder(pickle.Pickler):
    def __init__(self, file, handle_of):
        super().__init__(file, protocol=5)
        self._handle_of = handle_of  # obj -> (handle id, type name); may raise Unsendable

    def persistent_id(self, obj):
        t = type(obj)
        if t in _PLAIN or id(obj) in _CONSTRUCTOR_IDS or _convertible(obj):
            return None
        return ("h",) + tuple(self._handle_of(obj))

    def reducer_override(self, obj):
        t = type(obj)
        if t is type:
            return builtin_type, (obj.__name__,)
        if isinstance(obj, complex):
            return number, ("complex", float(obj.real), float(obj.imag))
        if t is fractions.Fraction:
            return number, ("fraction", int(obj.numerator), int(obj.denominator))
        if t is decimal.Decimal:
            return number, ("decimal", str(obj))
        for base in _BASES:
            if isinstance(obj, base):
                return plain, (base(obj),)
        return NotImplemented


def _convertible(obj):
    t = type(obj)
    if t is type:
        return BUILTIN_TYPES.get(getattr(obj, "__name__", None)) is obj
    return t in (fractions.Fraction, decimal.Decimal) or isinstance(obj, _BASES + (complex,))


class _Decoder(pickle.Unpickler):
    def __init__(self, file, resolve):
        super().__init__(file)
        self._resolve = resolve  # (handle id, type name) -> object

    def find_class(self, module, name):
        if module == __name__ and name in _CONSTRUCTORS:
            return _CONSTRUCTORS[name]
        raise WireError("the message names %s.%s, which does not cross the boundary" % (module, name))

    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) != 3 or pid[0] != "h" or type(pid[1]) is not int or type(pid[2]) is not str:
            raise WireError("malformed handle")
        return self._resolve(pid[1], pid[2])


def encode(value, handle_of):
    buffer = io.BytesIO()
    _Encoder(buffer, handle_of).dump(value)
    return buffer.getvalue()


def decode(data, resolve):
    try:
        return _Decoder(io.BytesIO(data), resolve).load()
    except WireError:
        raise
    except Exception as exc:  # whatever the bytes made the unpickler raise
        raise WireError("malformed message (%s: %s)" % (type(exc).__name__, exc)) from None


# --- framing ----------------------------------------------------------------------------


class Link:
    """One end of a request-reply channel: frames written on one pipe, read from another."""

    def __init__(self, read_fd, write_fd, handle_of, resolve, max_bytes):
        self.read_fd, self.write_fd = read_fd, write_fd
        self.handle_of, self.resolve, self.max_bytes = handle_of, resolve, max_bytes

    def send(self, value):
        data = encode(value, self.handle_of)
        _write_all(self.write_fd, _HEADER.pack(len(data)) + data)

    def receive(self):
        """The next message; None at end of file before a frame starts."""
        head = _read_exactly(self.read_fd, _HEADER.size, allow_eof=True)
        if head is None:
            return None
        (size,) = _HEADER.unpack(head)
        if size > self.max_bytes:
            raise WireError("a message of %d bytes exceeds the limit of %d" % (size, self.max_bytes))
        return decode(_read_exactly(self.read_fd, size), self.resolve)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd, size, allow_eof=False):
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            if allow_eof and left == size:
                return None
            raise EOFError("the other process closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
