"""A pickle-opcode interpreter that runs nothing: the machine under ``deepwise.io.torch_format``.

Python's ``pickle`` module executes the callables a file names. ``PickleMachine`` reads the same
opcodes (protocols 0 to 5) but builds only plain values itself -- numbers, strings, bytes, ``None``,
lists, tuples, dicts and sets -- and hands every global, call, BUILD and persistent id to methods
that refuse unless a subclass admits them. Its resources are bounded: the program length, the stack
and marks, the memo, and each length field against the data, so a crafted program ends in an error
rather than in unbounded memory or time.
"""

from __future__ import annotations

import struct

__all__ = ["MAX_MEMO", "MAX_PICKLE_BYTES", "MAX_STACK", "PickleMachine", "short"]

MAX_PICKLE_BYTES = 256 * 2**20     # the object program (for a checkpoint: not its tensor data)
MAX_STACK = 1_000_000              # items on the stack (and marks)
MAX_MEMO = 10_000_000              # memo entries


def short(value, n=60) -> str:
    """``repr(value)``, cut to ``n`` characters (for error messages about hostile input)."""
    text = repr(value)
    return text if len(text) <= n else text[:n] + "..."


class PickleMachine:
    """Runs one pickle program over ``data`` (bytes or a memory map) from ``pos``.

    What a program may name and build is up to a subclass: ``find_global(module, name)`` (GLOBAL and
    STACK_GLOBAL), ``call(func, args)`` (REDUCE), ``build(target, state)`` (BUILD) and
    ``persistent_load(pid)`` (PERSID/BINPERSID) all refuse here. Errors are ``error`` (a ValueError
    subclass) naming ``source`` and the byte of the program."""

    def __init__(self, data, pos, source, error=ValueError):
        self.data = data
        self.pos = pos
        self.source = source
        self.error = error

    def fail(self, msg):
        raise self.error(f"{self.source}: {msg} (at byte {self.pos} of the pickle)")

    # ------------------------------------------------------------------ what a subclass admits
    def find_global(self, module, name):
        self.fail(f"refusing the global {module}.{name}")

    def call(self, func, args):
        self.fail(f"refusing to call {short(func)}")

    def build(self, target, state):
        self.fail(f"BUILD (setting the state of a {type(target).__name__}) is not supported")

    def persistent_load(self, pid):
        self.fail(f"refusing the persistent id {short(pid)}")

    def read(self, n):
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"the pickle ends early (needs {n} more bytes)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(chunk)

    def readline(self):
        end = self.data.find(b"\n", self.pos, min(len(self.data), self.pos + 4096))
        if end < 0:
            self.fail("a text field of the pickle has no end of line")
        chunk = bytes(self.data[self.pos:end])
        self.pos = end + 1
        return chunk

    def text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("a string is not valid UTF-8")

    def run(self, max_bytes=MAX_PICKLE_BYTES):
        data, read = self.data, self.read
        start = self.pos
        stack, marks, memo = [], [], {}

        def pop_mark():
            if not marks:
                self.fail("a MARK was expected on the stack")
            at = marks.pop()
            items = stack[at:]
            del stack[at:]
            return items

        def pop():
            if not stack or (marks and len(stack) <= marks[-1]):
                self.fail("the stack is empty")
            return stack.pop()

        def top():
            if not stack:
                self.fail("the stack is empty")
            return stack[-1]

        def put(index):
            if len(memo) >= MAX_MEMO and index not in memo:
                self.fail(f"more than {MAX_MEMO} memo entries")
            memo[index] = top()

        def get(index):
            if index not in memo:
                self.fail(f"memo entry {index} was never stored")
            stack.append(memo[index])

        def set_items(target, items):
            if not isinstance(target, dict):
                self.fail(f"SETITEM(S) on a {type(target).__name__}")
            if len(items) % 2:
                self.fail("SETITEMS with an odd number of items")
            for k, v in zip(items[0::2], items[1::2]):
                try:
                    target[k] = v
                except TypeError:
                    self.fail(f"a dict key of type {type(k).__name__} cannot be hashed")

        def global_(module, name):
            stack.append(self.find_global(module, name))

        while True:
            if self.pos - start > max_bytes:
                self.fail(f"the pickle is longer than {max_bytes} bytes")
            if len(stack) > MAX_STACK or len(marks) > MAX_STACK:
                self.fail(f"more than {MAX_STACK} items on the stack")
            if self.pos >= len(data):
                self.fail("the pickle ends without STOP")
            op = data[self.pos]
            self.pos += 1
            if op == 0x80:                                    # PROTO
                if read(1)[0] > 5:
                    self.fail("unknown pickle protocol")
            elif op == 0x95:                                  # FRAME: a length hint only
                read(8)
            elif op == 0x2E:                                  # STOP
                if len(stack) != 1 or marks:
                    self.fail("STOP with a malformed stack")
                return stack[0]
            elif op == 0x28:                                  # MARK
                marks.append(len(stack))
            elif op == 0x7D:                                  # EMPTY_DICT
                stack.append({})
            elif op == 0x5D:                                  # EMPTY_LIST
                stack.append([])
            elif op == 0x29:                                  # EMPTY_TUPLE
                stack.append(())
            elif op == 0x8F:                                  # EMPTY_SET
                stack.append(set())
            elif op == 0x74:                                  # TUPLE
                stack.append(tuple(pop_mark()))
            elif op in (0x85, 0x86, 0x87):                    # TUPLE1/2/3
                n = op - 0x84
                items = [pop() for _ in range(n)][::-1]
                stack.append(tuple(items))
            elif op == 0x6C:                                  # LIST
                stack.append(list(pop_mark()))
            elif op == 0x64:                                  # DICT
                d = {}
                set_items(d, pop_mark())
                stack.append(d)
            elif op == 0x61:                                  # APPEND
                value = pop()
                target = top()
                if not isinstance(target, list):
                    self.fail(f"APPEND to a {type(target).__name__}")
                target.append(value)
            elif op == 0x65:                                  # APPENDS
                items = pop_mark()
                target = top()
                if not isinstance(target, list):
                    self.fail(f"APPENDS to a {type(target).__name__}")
                target.extend(items)
            elif op == 0x73:                                  # SETITEM
                value, key = pop(), pop()
                set_items(top(), [key, value])
            elif op == 0x75:                                  # SETITEMS
                items = pop_mark()
                set_items(top(), items)
            elif op == 0x90:                                  # ADDITEMS
                items = pop_mark()
                target = top()
                if not isinstance(target, set):
                    self.fail(f"ADDITEMS to a {type(target).__name__}")
                try:
                    target.update(items)
                except TypeError:
                    self.fail("a set item cannot be hashed")
            elif op == 0x91:                                  # FROZENSET
                try:
                    stack.append(frozenset(pop_mark()))
                except TypeError:
                    self.fail("a frozenset item cannot be hashed")
            elif op == 0x30:                                  # POP
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    pop()
            elif op == 0x31:                                  # POP_MARK
                pop_mark()
            elif op == 0x32:                                  # DUP
                stack.append(top())
            elif op == 0x71:                                  # BINPUT
                put(read(1)[0])
            elif op == 0x72:                                  # LONG_BINPUT
                put(struct.unpack("<I", read(4))[0])
            elif op == 0x94:                                  # MEMOIZE
                put(len(memo))
            elif op == 0x70:                                  # PUT (text)
                put(self.int_line())
            elif op == 0x68:                                  # BINGET
                get(read(1)[0])
            elif op == 0x6A:                                  # LONG_BINGET
                get(struct.unpack("<I", read(4))[0])
            elif op == 0x67:                                  # GET (text)
                get(self.int_line())
            elif op == 0x4A:                                  # BININT
                stack.append(struct.unpack("<i", read(4))[0])
            elif op == 0x4B:                                  # BININT1
                stack.append(read(1)[0])
            elif op == 0x4D:                                  # BININT2
                stack.append(struct.unpack("<H", read(2))[0])
            elif op == 0x8A:                                  # LONG1
                stack.append(int.from_bytes(read(read(1)[0]), "little", signed=True))
            elif op == 0x8B:                                  # LONG4
                n = struct.unpack("<i", read(4))[0]
                if n < 0 or n > 1024:
                    self.fail(f"an integer of {n} bytes")
                stack.append(int.from_bytes(read(n), "little", signed=True))
            elif op == 0x49:                                  # INT (text), also True/False in protocol 0
                line = self.readline()
                stack.append({b"01": True, b"00": False}.get(line) if line in (b"01", b"00")
                             else self.parse_int(line))
            elif op == 0x4C:                                  # LONG (text)
                stack.append(self.parse_int(self.readline().rstrip(b"L")))
            elif op == 0x47:                                  # BINFLOAT
                stack.append(struct.unpack(">d", read(8))[0])
            elif op == 0x46:                                  # FLOAT (text)
                try:
                    stack.append(float(self.readline()))
                except ValueError:
                    self.fail("a malformed FLOAT")
            elif op == 0x4E:                                  # NONE
                stack.append(None)
            elif op == 0x88:                                  # NEWTRUE
                stack.append(True)
            elif op == 0x89:                                  # NEWFALSE
                stack.append(False)
            elif op == 0x58:                                  # BINUNICODE
                stack.append(self.text(read(struct.unpack("<I", read(4))[0])))
            elif op == 0x8C:                                  # SHORT_BINUNICODE
                stack.append(self.text(read(read(1)[0])))
            elif op == 0x8D:                                  # BINUNICODE8
                stack.append(self.text(read(self.length8())))
            elif op == 0x55:                                  # SHORT_BINSTRING (Python 2 str)
                stack.append(read(read(1)[0]).decode("latin-1"))
            elif op == 0x54:                                  # BINSTRING
                n = struct.unpack("<i", read(4))[0]
                stack.append(read(n).decode("latin-1"))
            elif op == 0x43:                                  # SHORT_BINBYTES
                stack.append(read(read(1)[0]))
            elif op == 0x42:                                  # BINBYTES
                stack.append(read(struct.unpack("<I", read(4))[0]))
            elif op == 0x8E:                                  # BINBYTES8
                stack.append(read(self.length8()))
            elif op == 0x63:                                  # GLOBAL "module\nname\n"
                module = self.readline().decode("ascii", "replace")
                name = self.readline().decode("ascii", "replace")
                global_(module, name)
            elif op == 0x93:                                  # STACK_GLOBAL
                name, module = pop(), pop()
                if not isinstance(name, str) or not isinstance(module, str):
                    self.fail("STACK_GLOBAL of values that are not strings")
                global_(module, name)
            elif op == 0x52:                                  # REDUCE
                args, func = pop(), pop()
                stack.append(self.call(func, args))
            elif op == 0x62:                                  # BUILD
                state = pop()
                self.build(top(), state)
            elif op == 0x51:                                  # BINPERSID
                stack.append(self.persistent_load(pop()))
            elif op == 0x50:                                  # PERSID (text)
                stack.append(self.persistent_load(self.readline().decode("ascii", "replace")))
            else:
                names = {0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x69: "INST", 0x6F: "OBJ", 0x81: "NEWOBJ",
                         0x92: "NEWOBJ_EX", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
                         0x53: "STRING", 0x56: "UNICODE"}
                what = names.get(op, f"unknown opcode 0x{op:02x}")
                self.fail(f"refusing pickle opcode {what}: it builds objects that plain values and containers "
                          "never need")

    def length8(self):
        n = struct.unpack("<Q", self.read(8))[0]
        if n > len(self.data):
            self.fail(f"a field of {n} bytes in a pickle of {len(self.data)}")
        return n

    def int_line(self):
        return self.parse_int(self.readline())

    def parse_int(self, line):
        try:
            if len(line) > 64:
                raise ValueError
            return int(line)
        except ValueError:
            self.fail(f"a malformed integer {short(line)}")
